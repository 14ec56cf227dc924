"""`statemachines check`: what the definitions in code would break among the instances the
database holds, before they are deployed.

For each machine in code, the live instances (active or failed) of every version the code does
not register are compared with the code's latest version of that machine:

- error: a state they are in no longer exists (they need `migrate --map`);
- error: an event they wait on (declared by their state in their version) is gone from the state;
- error: their stored context does not validate against the new context model (a sample, or all);
  this one is checked for the versions the code does register too: a context model can change
  without the spec (which names it) changing;
- warning: their state exists but changed (an explicit `migrate` moves them; `compatible` won't);
- warning: they run on a version the code does not register at all (they raise
  `VersionNotRegistered` until migrated or registered again).

Reads only: nothing is registered or written (the schema is brought up to date when the
engine opens the database, as any process of the new code would).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from persistence.version_store import VersionStore
from statemachines.checks import RESERVED_PREFIXES
from statemachines.definition import Definition
from statemachines.runtime import Runtime
from statemachines.spec import MachineSpec
from statemachines.versions import unchanged_states

ERROR, WARNING = "error", "warning"
Report = Callable[[str, str, int], None]  # add(level, message, instances)


@dataclass(frozen=True, slots=True)
class Finding:
    level: str  # "error" or "warning"
    machine: str
    version: str  # the stored version whose instances are concerned
    message: str
    instances: int = 0


@dataclass(slots=True)
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # machines compared

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        lines = [f"{f.level}: {f.machine} version {f.version}: {f.message}" for f in self.findings]
        errors_, warnings_ = len(self.errors), len(self.findings) - len(self.errors)
        verdict = "FAILED" if errors_ else "ok"
        counts = f"{errors_} error(s), {warnings_} warning(s)"
        lines.append(f"check {verdict}: {len(self.checked)} machine(s) compared, {counts}")
        return "\n".join(lines)


def check(engine: Any, definitions: Sequence[Definition], sample: int | None = 1000) -> CheckReport:
    """Compare `definitions` (the code; the last of a name is its latest) with the database of
    `engine` (an `Engine`, or its runtime). `sample`: stored contexts validated per version (None:
    all). Registers nothing."""
    rt: Runtime = getattr(engine, "runtime", engine)
    report = CheckReport()
    by_name: dict[str, list[Definition]] = {}
    for d in definitions:
        by_name.setdefault(d.name, []).append(d)
    store = VersionStore(rt.db)
    for name, defs in sorted(by_name.items()):
        report.checked.append(name)
        with rt.read() as cur:
            stored = {v: MachineSpec.model_validate_json(s) for v, _, _, s in store.definitions(cur, name)}
            live = store.live_states(cur, name)
        in_code = {d.version: d for d in defs}
        per_version: dict[str, dict[str, int]] = {}
        for version, state, count in live:
            per_version.setdefault(version, {})[state] = count
        for version, states in sorted(per_version.items()):
            if version in in_code:  # same spec: only the context model may have changed under it
                _contexts(rt, store, in_code[version], version, sample, _adder(report, name, version))
            else:
                _compare(rt, store, report, defs[-1], version, stored.get(version), states, sample)
    return report


def _adder(report: CheckReport, machine: str, version: str) -> Report:
    def add(level: str, message: str, count: int) -> None:
        report.findings.append(Finding(level, machine, version, message, count))

    return add


def _compare(
    rt: Runtime,
    store: VersionStore,
    report: CheckReport,
    new: Definition,
    version: str,
    old: MachineSpec | None,
    states: dict[str, int],
    sample: int | None,
) -> None:
    total = sum(n for s, n in states.items() if "." not in s)
    add = _adder(report, new.name, version)
    add(
        WARNING,
        f"{total} live instance(s) run on this version, which the code does not register: they raise"
        f" VersionNotRegistered until migrated to {new.version!r} (register(..., migrate='compatible')"
        " moves those whose states are unchanged)",
        total,
    )
    new_states = dict(new.spec.walk())
    old_states = dict(old.walk()) if old is not None else {}
    same = unchanged_states(old, new.spec) if old is not None else frozenset()
    for state, count in sorted(states.items()):
        if state not in new_states:
            add(ERROR, f"state {state!r} was removed; {count} live instance(s) are in it: migrate"
                f" them with --map {state}=NEW", count)  # fmt: skip
            continue
        declared = old_states[state].on if state in old_states else {}
        waited = {e for e in declared if not e.startswith(RESERVED_PREFIXES)}
        gone = sorted(waited - set(new_states[state].on))
        if gone:
            add(ERROR, f"event(s) {gone} of state {state!r} were removed; {count} live instance(s) wait"
                " on them there", count)  # fmt: skip
        elif state not in same:
            add(WARNING, f"state {state!r} changed; its {count} live instance(s) move only by an explicit"
                " migrate", count)  # fmt: skip
    _contexts(rt, store, new, version, sample, add)


def _contexts(
    rt: Runtime, store: VersionStore, new: Definition, version: str, sample: int | None, add: Report
) -> None:
    """Validate stored contexts of `version` against the new context model."""
    model = new.context_model
    if model is None:
        return
    with rt.read() as cur:
        rows = store.sample_contexts(cur, new.name, version, sample if sample is not None else 2**62)
    failures: list[tuple[str, str]] = []
    for iid, text in rows:
        try:
            model.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            failures.append((iid, f"{where}: {first['msg']}"))
    if failures:
        iid, why = failures[0]
        add(ERROR, f"{len(failures)} of {len(rows)} stored context(s) checked do not validate against"
            f" {model.__name__} of version {new.version!r} (first: instance {iid!r}, {why}); give the"
            " new model a version of its own (machine(..., version=...)) and migrate them with a"
            " context function", len(failures))  # fmt: skip
