"""`engine.migrate(...)`: move instances to another definition version, deliberately and audited.

Each instance moves in its own transaction, under its row lock, like an event: a `send`, a timer
or an effect on the same instance runs entirely before or entirely after it, never in between,
and nothing else is locked meanwhile. The move is one history record (outcome `migrated`, with
both versions and the state map in its payload); the instance's timers and effects follow the
rules of `statemachines.migration_plan`; no entry or exit action runs; the context (converted by
an optional function) must validate against the target version's model. A bulk migration pages
through the machine's instances by key (`batch` at a time), so it never holds a long transaction
and can run while senders and workers are active. `dry_run=True` reads, plans and reports, and
writes nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from persistence.version_store import VersionStore
from statemachines import errors
from statemachines.apply import arm_state, effect_key
from statemachines.arguments import check_id, check_name, check_text
from statemachines.chart_apply import chart_effect_key, chart_json
from statemachines.durations import deadline
from statemachines.migration_plan import Plan, Unmovable, old_states, plan
from statemachines.records import ACTIVE, COMPLETED, FAILED
from statemachines.rows import (
    CHART,
    CONTEXT,
    DEF_VERSION,
    ENTERED_SEQ,
    LAST_SEQ,
    MACHINE,
    STATE,
    STATUS,
    VERSION,
)
from statemachines.runtime import Runtime, is_storage_failure

log = logging.getLogger("statemachines.versions")
MIGRATED = "migrated"  # the history outcome of a migration
MIGRATE_EVENT = "migrate"  # the event name of its history record
MAX_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Request:
    """What `engine.migrate` was asked (see there)."""

    machine: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    state_map: Mapping[str, str] = field(default_factory=dict)
    context: Callable[[Any], Any] | None = None
    dry_run: bool = False
    actor: str | None = None
    reason: str | None = None
    batch: int = 500
    #: `register(..., migrate="compatible")`: move only instances whose every active state the
    #: target declares exactly as their own version did. Version -> those states' paths.
    unchanged: Mapping[str, frozenset[str]] | None = None


@dataclass(frozen=True, slots=True)
class Moved:
    """One instance moved (or, in a dry run, that would be)."""

    instance_id: str
    from_version: str
    to_version: str
    source: str
    target: str
    timers_dropped: tuple[str, ...] = ()
    effects_cancelled: tuple[str, ...] = ()
    armed: tuple[str, ...] = ()  # states whose timers/effects were armed, "state: after.1h" for added timers


@dataclass(frozen=True, slots=True)
class Skipped:
    instance_id: str
    reason: str


@dataclass(slots=True)
class MigrationReport:
    to_version: str
    dry_run: bool
    migrated: list[Moved] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def __str__(self) -> str:
        verb = "would migrate" if self.dry_run else "migrated"
        lines = [f"{verb} {len(self.migrated)} instance(s) to version {self.to_version};"
                 f" skipped {len(self.skipped)}"]  # fmt: skip
        for m in self.migrated[:50]:
            extra = "".join(
                f"; {what}: {', '.join(items)}"
                for what, items in (("timers dropped", m.timers_dropped),
                                    ("effects cancelled", m.effects_cancelled), ("armed", m.armed))
                if items
            )  # fmt: skip
            lines.append(f"  {m.instance_id}: {m.source} ({m.from_version}) -> {m.target}{extra}")
        if len(self.migrated) > 50:
            lines.append(f"  ... and {len(self.migrated) - 50} more")
        lines += [f"  skipped {s.instance_id}: {s.reason}" for s in self.skipped[:50]]
        if len(self.skipped) > 50:
            lines.append(f"  ... and {len(self.skipped) - 50} more skipped")
        return "\n".join(lines)


def migrate(rt: Runtime, ids: Iterable[str] | None, request: Request) -> MigrationReport:
    """Move the instances `ids`, or every live one of `request.machine` (at `from_version`, else
    at any other version than the target), to the target version. Argument mistakes raise
    before anything is written; an instance that cannot move is skipped with the reason."""
    machine, targets, id_list = _check(rt, ids, request)
    target_version = targets.definition.version
    report = MigrationReport(target_version, request.dry_run)
    store = VersionStore(rt.db)
    if id_list is not None:
        for iid in id_list:
            _one(rt, store, iid, request, report, machine)
        return report
    after = store.first_key()
    same = request.from_version is not None
    version = request.from_version if same else target_version
    breathe = _Breather(rt.db.dialect == "sqlite" and not request.dry_run)
    while True:
        with rt.read() as cur:
            page = store.page(cur, targets.name, version, same, after, request.batch)  # type: ignore[arg-type]
        if not page:
            return report
        for iid, _ in page:
            _one(rt, store, iid, request, report, machine)
            breathe()
        after = (page[-1][1], page[-1][0])


class _Breather:
    """SQLite: one writer at a time, and its busy handler polls. A bulk migration that took the
    write lock again right after each commit would hold off every other writer (a `send` from
    another process, a worker) until it ended; pausing `BREATH` every `SLICE` of work lets them
    in (measured: ~10% longer migrations; a concurrent send waits well under a second)."""

    SLICE = 0.1  # seconds of migrating between pauses
    BREATH = 0.01

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = time.monotonic()

    def __call__(self) -> None:
        if self.enabled and time.monotonic() - self.last > self.SLICE:
            time.sleep(self.BREATH)
            self.last = time.monotonic()


def _check(rt: Runtime, ids: Iterable[str] | None, req: Request) -> tuple[str | None, Any, list[str] | None]:
    """Typed refusal of a request that cannot be carried out as a whole; the target compiled."""
    if ids is None and req.machine is None:
        raise errors.InvalidArgument("migrate() takes instance ids, or machine= (and from_version=)")
    if ids is not None and not isinstance(ids, str | Iterable):
        raise errors.InvalidArgument(f"ids must be an instance id or an iterable of them, got {ids!r}")
    id_list = None if ids is None else [check_id(i) for i in ([ids] if isinstance(ids, str) else ids)]
    if not isinstance(req.state_map, Mapping):
        raise errors.InvalidArgument(f"state_map must map old state names to new ones, got {req.state_map!r}")
    if req.machine is not None:
        check_name(req.machine, "machine name")
    for value, what in ((req.from_version, "from_version"), (req.to_version, "to_version")):
        if value is not None:
            check_name(value, what)
    check_text(req.actor, "actor")
    check_text(req.reason, "reason")
    if not isinstance(req.batch, int) or isinstance(req.batch, bool) or not 1 <= req.batch <= MAX_BATCH:
        raise errors.InvalidArgument(f"batch must be an integer from 1 to {MAX_BATCH}, got {req.batch!r}")
    if req.context is not None and not callable(req.context):
        raise errors.InvalidArgument(f"context must be a function of the stored context, got {req.context!r}")
    machine = req.machine
    if machine is None:  # ids only: they must share one machine, which names the target
        with rt.read() as cur:
            rows = [rt.store.get_instance(cur, iid) for iid in id_list or []]
        names = {r[MACHINE] for r in rows if r is not None}
        if len(names) > 1:
            raise errors.InvalidArgument(
                f"migrate() moves instances of one machine at a time, got {sorted(names)}"
            )
        if not names:
            raise errors.InstanceNotFound(id_list[0] if id_list else "")
        machine = names.pop()
    target = rt.compiled(machine, req.to_version)
    spec_paths = {path for path, _ in target.definition.spec.walk()}
    for old, new in req.state_map.items():
        check_name(old, "state_map key")
        check_name(new, "state_map value")
        if new not in spec_paths:
            raise errors.MigrationError(
                f"state_map maps {old!r} to {new!r}, which version {target.definition.version!r} of"
                f" {machine!r} does not declare; its states: {sorted(spec_paths)}"
            )
    if req.from_version is not None:
        with rt.read() as cur:
            text = rt.store.definition_spec(cur, machine, req.from_version)
        if text is None:
            raise errors.MigrationError(f"machine {machine!r} has no stored version {req.from_version!r}")
        from statemachines.spec import MachineSpec

        old_paths = {p for p, _ in MachineSpec.model_validate_json(text).walk()}
        unknown = sorted(set(req.state_map) - old_paths)
        if unknown:
            raise errors.MigrationError(
                f"state_map names {unknown}, which version {req.from_version!r} of {machine!r} does not"
                f" declare; its states: {sorted(old_paths)}"
            )
    return machine, target, id_list


def _one(
    rt: Runtime, store: VersionStore, iid: str, req: Request, report: MigrationReport, machine: str | None
) -> None:
    """Move one instance in its own transaction (a read-only one for a dry run)."""
    try:
        with rt.read() if req.dry_run else rt.transaction() as cur:
            row = rt.store.get_instance(cur, iid) if req.dry_run else rt.store.lock_instance(cur, iid, None)
            moved = _move(rt, store, cur, iid, row, req, machine)
    except Unmovable as exc:
        report.skipped.append(Skipped(iid, str(exc)))
        return
    except errors.StateMachineError as exc:  # this instance's (a timer past year 9999...): the others go on
        if is_storage_failure(exc):
            raise  # the database's: stop; running again resumes where this stopped
        report.skipped.append(Skipped(iid, f"{type(exc).__name__}: {exc}"))
        return
    report.migrated.append(moved)


def _move(
    rt: Runtime, store: VersionStore, cur: Any, iid: str, row: Any, req: Request, machine: str | None
) -> Moved:
    if row is None:
        raise Unmovable("no such instance")
    if machine is not None and row[MACHINE] != machine:
        raise Unmovable(f"it is an instance of {row[MACHINE]!r}, not {machine!r}")
    cm = rt.compiled(row[MACHINE], req.to_version)
    to_version = cm.definition.version
    from_version = row[DEF_VERSION]
    if from_version == to_version:
        raise Unmovable(f"already on version {to_version!r}")
    if req.from_version is not None and from_version != req.from_version:
        raise Unmovable(f"on version {from_version!r}, not {req.from_version!r}")
    if row[STATUS] not in (ACTIVE, FAILED):
        raise Unmovable(f"{row[STATUS]}: a closed instance is not migrated")
    active, history = old_states(row[STATE], row[ENTERED_SEQ], row[CHART])
    if req.unchanged is not None:
        same = req.unchanged.get(from_version, frozenset())
        changed = [p for p in active if p not in same]
        if changed:
            raise Unmovable(f"states {changed} differ in version {to_version!r}: migrate explicitly")
    seq = row[LAST_SEQ] + 1
    timers, effects = store.armed(cur, iid)
    where = plan(cm, active, history, row[STATUS], seq, req.state_map, timers, effects)
    context_json = _context(cm, row[CONTEXT], req.context)
    moved = Moved(
        iid, from_version, to_version, row[STATE], where.state,
        tuple(d for _, d in where.drop_timers), tuple(d for _, d in where.drop_effects),
        (*where.arm_entries, *(f"{p}: after.{x}" for p, _, added in where.arm_timers for x in added)),
    )  # fmt: skip
    if not req.dry_run:
        _write(rt, store, cur, cm, row, where, seq, context_json, req, from_version)
    return moved


def _context(cm: Any, stored: str, convert: Callable[[Any], Any] | None) -> str:
    """The stored context (converted by `convert`, given plain JSON data) as the target's JSON."""
    value: Any = json.loads(stored)
    if convert is not None:
        try:
            value = convert(value)
        except Exception as exc:
            raise Unmovable(f"the context function raised {type(exc).__name__}: {exc}") from None
    try:
        return cm.new_context(value)[1]
    except errors.ContextInvalid as exc:
        raise Unmovable(
            f"its context does not validate against version {cm.definition.version!r}: {exc}"
        ) from None


def _write(
    rt: Runtime, store: VersionStore, cur: Any, cm: Any, row: Any, where: Plan, seq: int,
    context_json: str, req: Request, from_version: str,
) -> None:  # fmt: skip
    iid = row[0]
    now = rt.clock.now()
    to_version = cm.definition.version
    store.drop(cur, iid, [t for t, _ in where.drop_timers], [e for e, _ in where.drop_effects], now)
    chart = None
    if cm.is_chart:
        armed = [p for p in where.active if cm.timers.get(p) or cm.effects.get(p) or p in cm.compensating]
        chart = chart_json(where.active, where.history, armed if where.status != COMPLETED else [])
    entered = 0 if cm.is_chart else next(iter(where.active.values()))
    store.move_instance(cur, iid, to_version, where.state, context_json, where.status, row[VERSION] + 1,
                        entered, seq, chart, now)  # fmt: skip
    _chart_states(rt, cur, cm, row, where)
    moved = {"from_version": from_version, "to_version": to_version, "state_map": dict(req.state_map)}
    payload = json.dumps(moved)
    reason = req.reason or f"migrated from version {from_version} to {to_version}"
    if cm.is_chart:
        rt.applier.charts.rows.insert_chart_history(
            cur, iid, cm.name, seq, MIGRATE_EVENT, row[STATE], where.state, payload, context_json,
            req.actor, now, MIGRATED, reason, json.dumps(where.configuration),
        )  # fmt: skip
    else:
        rt.store.insert_history(
            cur, iid, cm.name, seq, MIGRATE_EVENT, row[STATE], where.state, payload, context_json,
            req.actor, now, MIGRATED, reason,
        )  # fmt: skip
    _arm(rt, cur, cm, iid, where, seq, now)


def _chart_states(rt: Runtime, cur: Any, cm: Any, row: Any, where: Plan) -> None:
    """Bring `sm_chart_states` to the new configuration (a flat target has no rows there)."""
    old = old_states(row[STATE], row[ENTERED_SEQ], row[CHART])[0] if row[CHART] is not None else {}
    new = where.active if cm.is_chart else {}
    gone = [p for p, s in old.items() if new.get(p) != s]
    rows = rt.applier.charts.rows
    rows.move_chart_states(cur, row[0], cm.name, gone, [], 0)
    by_seq: dict[int, list[str]] = {}
    for path, entry in new.items():
        if old.get(path) != entry:
            by_seq.setdefault(entry, []).append(path)
    for entry, paths in by_seq.items():
        rows.move_chart_states(cur, row[0], cm.name, [], paths, entry)


def _arm(rt: Runtime, cur: Any, cm: Any, iid: str, where: Plan, seq: int, now: datetime) -> None:
    """Timers and effects of the states entered anew; timers the target adds to kept entries."""
    for path in where.arm_entries:
        key_of = partial(chart_effect_key, iid, seq, path) if cm.is_chart else partial(effect_key, iid, seq)
        arm_state(rt.schedule, cur, cm, iid, path, seq, now, key_of)
    for path, entry, labels in where.arm_timers:
        rt.schedule.arm_timers(
            cur, iid, cm.name, entry, path, [(f"after.{x}", deadline(now, x)) for x in labels]
        )
