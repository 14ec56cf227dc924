"""Definition versions side by side: what is stored, who runs on what, and what a new version
would strand.

An instance is pinned to the version it started on (`Runtime.versions`, keyed by machine and
version); `register` adds a version without removing the others. This module answers the
questions around that: which versions a machine has and how many live instances sit in each of
their states (`statemachines versions`), which live instances a newly registered version would
strand (`register` warns), which states two versions share unchanged (`migrate="compatible"`),
and which instances no worker of this process can serve (the worker says so once).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from persistence.version_store import VersionStore
from statemachines import errors, migration
from statemachines.chart import CompiledChart
from statemachines.compiled import CompiledMachine
from statemachines.runtime import Runtime
from statemachines.spec import MachineSpec, StateSpec

log = logging.getLogger("statemachines.versions")
COMPATIBLE = "compatible"
UNSERVED_CHECK_EVERY = 300.0  # seconds between a worker's looks for instances it cannot serve


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One stored version of a machine."""

    version: str
    registered_at: datetime  # first registration
    latest: bool  # the last registered (what `start` uses in a process that registers them all)
    registered_here: bool  # registered in this process: its instances can move here
    live: dict[str, int] = field(default_factory=dict)  # state path -> live (active/failed) instances
    spec: MachineSpec | None = None

    @property
    def live_total(self) -> int:
        """Live instances (for a statechart, each counted once, at its top-level state)."""
        return sum(n for s, n in self.live.items() if "." not in s)


def stored_versions(rt: Runtime, machine: str) -> list[VersionInfo]:
    """Each stored version of `machine`, oldest registration first, with its live instances."""
    store = VersionStore(rt.db)
    with rt.read() as cur:
        stored = store.definitions(cur, machine)
        live = store.live_states(cur, machine)
    if not stored:
        raise errors.UnknownMachine(machine, rt.machines)
    per_version: dict[str, dict[str, int]] = {}
    for version, state, count in live:
        per_version.setdefault(version, {})[state] = count
    last = max(r for _, r, _, _ in stored)
    return [
        VersionInfo(version, at, revision == last, (machine, version) in rt.versions,
                    dict(sorted(per_version.get(version, {}).items())), MachineSpec.model_validate_json(spec))
        for version, revision, at, spec in stored
    ]  # fmt: skip


def check_migrate_option(migrate: object) -> None:
    if migrate not in (None, COMPATIBLE):
        raise errors.InvalidArgument(f"register(migrate=...) takes None or {COMPATIBLE!r}, got {migrate!r}")


def after_register(rt: Runtime, compiled: CompiledMachine | CompiledChart, migrate: str | None) -> None:
    """Warn about live instances of other versions in states `compiled` lacks; with
    `migrate="compatible"`, move those whose every active state it keeps unchanged."""
    definition = compiled.definition
    paths = {path for path, _ in definition.spec.walk()}
    store = VersionStore(rt.db)
    with rt.read() as cur:
        live = store.live_states(cur, compiled.name)
    stranded: dict[str, dict[str, int]] = {}
    others: set[str] = set()
    for version, state, count in live:
        if version != definition.version:
            others.add(version)
            if state not in paths:
                stranded.setdefault(version, {})[state] = count
    for version, states in sorted(stranded.items()):
        listed = ", ".join(f"{s} ({n})" for s, n in sorted(states.items()))
        log.warning(
            "machine %r version %r lacks states where live instances of version %r are: %s. They run"
            " on version %r wherever it is registered; move them with engine.migrate(...) or"
            " `statemachines migrate %s --to %s --map OLD=NEW` (see docs/versions.md)",
            compiled.name, definition.version, version, listed, version, compiled.name, definition.version,
        )  # fmt: skip
    if migrate == COMPATIBLE and others:
        migrate_compatible(rt, compiled, sorted(others))


def migrate_compatible(
    rt: Runtime, compiled: CompiledMachine | CompiledChart, versions: list[str]
) -> migration.MigrationReport:
    """Move the live instances of `versions` whose active states `compiled` declares unchanged."""
    store = VersionStore(rt.db)
    with rt.read() as cur:
        specs = {
            v: MachineSpec.model_validate_json(s) for v, _, _, s in store.definitions(cur, compiled.name)
        }
    unchanged = {v: unchanged_states(specs[v], compiled.definition.spec) for v in versions if v in specs}
    request = migration.Request(machine=compiled.name, to_version=compiled.definition.version,
                                actor="register", reason="compatible", unchanged=unchanged)  # fmt: skip
    report = migration.migrate(rt, None, request)
    log.info(
        "machine %r: migrated %d instance(s) to version %r (states unchanged); %d left on their version",
        compiled.name, len(report.migrated), compiled.definition.version, len(report.skipped),
    )  # fmt: skip
    return report


def unchanged_states(old: MachineSpec, new: MachineSpec) -> frozenset[str]:
    """The state paths both specs declare alike: same transitions, timers, effects, actions and
    kind (child states are compared as states of their own)."""
    new_states = dict(new.walk())
    return frozenset(
        path for path, st in old.walk() if path in new_states and _own(st) == _own(new_states[path])
    )


def _own(st: StateSpec) -> StateSpec:
    """A state without its children: what it declares itself (children's names kept)."""
    return st.model_copy(update={"states": {name: StateSpec() for name in st.states}})


class UnservedWatch:
    """Tells once, per machine version, that active instances wait on a version this process has
    not registered (of a machine it serves): a worker leaves their timers and effects alone, so
    without this line they would wait in silence. Looks again every `every` seconds."""

    def __init__(self, rt: Runtime, every: float = UNSERVED_CHECK_EVERY) -> None:
        self.rt = rt
        self.every = every
        self.told: set[tuple[str, str]] = set()
        self._next = 0.0

    def check(self) -> list[tuple[str, str, int]]:
        """Log (and return) what was not told yet; nothing before `every` seconds have passed."""
        now = time.monotonic()
        if now < self._next or not self.rt.machines:
            return []
        self._next = now + self.every
        with self.rt.read() as cur:
            counts = VersionStore(self.rt.db).active_versions(cur)
        new = [
            (m, v, n) for m, v, n in counts
            if m in self.rt.machines and (m, v) not in self.rt.versions and (m, v) not in self.told
        ]  # fmt: skip
        for machine, version, count in new:
            self.told.add((machine, version))
            log.warning(
                "%d active instance(s) of machine %r run on version %r, which this process has not"
                " registered: their timers and effects are left for a process that has (registered"
                " here: %s); or migrate them: `statemachines migrate %s --to VERSION`",
                count, machine, version, self.rt.registered_versions(machine), machine,
            )  # fmt: skip
        return new
