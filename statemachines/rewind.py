"""Rewind: put an instance back where it was after an earlier history record, with feedback.

A reviewer rejects a draft and the process goes back to drafting with the reviewer's notes:
`engine.rewind(id, to="drafting", event="revise", payload={"notes": ...})`. In one transaction
(the instance row locked first, as `send` does, so a rewind, a send and a timer of the same
instance serialise and exactly one of any conflicting pair takes effect):

1. `to` is resolved: a history seq, or a state name meaning that state's latest entry;
2. the configuration (statecharts: every active state, in any region) and the context as they
   were after that record are restored, status `active`, version + 1, and one history record is
   appended with outcome `rewound` (the history is never rewritten);
3. the timers and effects of the states left are dropped/cancelled, and those of the restored
   states armed as fresh entries with the new record's seq, so callback tokens and effect keys of
   the old entries are stale; no entry action runs (the context is the recorded one);
4. `event`, when given, is applied to the restored state with `payload` like a `send` (a
   rejection or error there rolls the whole rewind back and is raised).

A state declared `state(max_rewinds=N)` may be restored N times per instance (`RewindLimit`).
Completed and cancelled instances are reopened only with `reopen=True`; failed ones always can be.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from persistence import Conflict
from statemachines import errors
from statemachines.apply import to_json, write_receipt
from statemachines.arguments import check_id, check_name, check_not_reserved, check_text
from statemachines.chart_apply import chart_json
from statemachines.names import did_you_mean
from statemachines.records import ACTIVE, CANCELLED, COMPLETED, Snapshot
from statemachines.rows import (
    CHART,
    DEF_VERSION,
    FINGERPRINT,
    LAST_SEQ,
    MACHINE,
    RECEIPT,
    STATE,
    STATUS,
    VERSION,
    chart_of,
    check_fingerprint,
    replay_receipt,
    snapshot_from_row,
)
from statemachines.runtime import Runtime

#: History outcome and event of a rewind.
REWOUND = "rewound"
REWIND_EVENT = "rewind"

# Columns of `Store.history` rows.
_SEQ, _EVENT, _SOURCE, _TARGET, _CONTEXT, _OUTCOME, _CONFIGURATION = 0, 1, 2, 3, 5, 8, 10


def rewind(
    rt: Runtime,
    instance_id: str,
    to: int | str,
    event: str | None,
    payload: Any,
    actor: str | None,
    reason: str | None,
    reopen: bool,
    key: str | None,
) -> Snapshot:
    """See the module docstring. Arguments are checked first: nothing is read before."""
    check_id(instance_id)
    check_text(actor, "actor")
    check_text(reason, "reason")
    if event is not None:
        check_name(event, "event")
        check_not_reserved(event)
    elif payload is not None:
        raise errors.InvalidArgument("rewind payload= is the payload of event=: give the event too")
    if key is not None:
        check_name(key, "idempotency_key")
    for attempt in range(3):
        try:
            return _rewind_once(rt, instance_id, to, event, payload, actor, reason, reopen, key)
        except Conflict:
            # A concurrent request with the same key committed first: its receipt wins.
            if key is None or attempt == 2:
                raise errors.StorageError(
                    f"conflicting concurrent write on instance {instance_id!r}"
                ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _rewind_once(
    rt: Runtime,
    iid: str,
    to: int | str,
    event: str | None,
    payload: Any,
    actor: str | None,
    reason: str | None,
    reopen: bool,
    key: str | None,
) -> Snapshot:
    try:  # what an idempotency key is bound to (the payload is validated again when applied)
        request = json.dumps({"to": to, "event": event, "payload": payload, "reopen": reopen}, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise errors.PayloadInvalid(event or REWIND_EVENT, f"not JSON-serialisable: {exc}") from None
    with rt.transaction() as cur:
        row = rt.store.lock_instance(cur, iid, key)
        if row is None:
            raise errors.InstanceNotFound(iid)
        cm = rt.compiled(row[MACHINE], row[DEF_VERSION])
        if row[RECEIPT] is not None:
            check_fingerprint(iid, key or "", row[FINGERPRINT], REWIND_EVENT, request)
            return replay_receipt(rt.db, row[RECEIPT], cm.model)
        if (row[CHART] is not None) != cm.is_chart:
            kind = "a statechart" if row[CHART] is not None else "a flat machine"
            raise errors.ConfigurationError(
                f"instance {iid!r} was started as {kind}, but machine {cm.name!r} is registered"
                " otherwise now: register the definition it runs on to rewind it"
            )
        if row[STATUS] in (COMPLETED, CANCELLED) and not reopen:
            closed = errors.InstanceClosed(iid, row[STATUS], row[STATE])
            closed.args = (f"{closed}; rewinding it reopens it: pass reopen=True (CLI: --reopen)",)
            raise closed
        records = rt.store.history(cur, iid)
        chosen = _resolve(cm, iid, records, to)
        configuration = _configuration(chosen)
        _check_restorable(cm, iid, chosen, configuration)
        _check_limit(cm, iid, records, configuration)
        now = rt.clock.now()
        seq = row[LAST_SEQ] + 1
        context = _checked_context(cm, chosen[_CONTEXT])
        doc = {"to": chosen[_SEQ], "event": event, "reason": reason, "reopened": row[STATUS]}
        if row[CHART] is not None:
            _restore_chart(rt, cur, cm, row, seq, chosen, configuration, context, doc, actor, reason, now)
        else:
            _restore_flat(rt, cur, cm, row, seq, chosen[_TARGET], context, doc, actor, reason, now)
        fresh = rt.store.lock_instance(cur, iid, None)
        snap: Snapshot = _snapshot(rt, cm, fresh)
        if event is not None:
            outcome = rt.applier.apply(cur, cm, fresh, event, payload, None, actor, now)
            if isinstance(outcome, errors.EventRejected):
                raise outcome  # rolls the rewind back with it: one transaction
            snap = outcome
        write_receipt(rt.store, cur, iid, key, seq, REWIND_EVENT, request, snap, now)
    return snap


def _resolve(cm: Any, iid: str, records: list[tuple[Any, ...]], to: int | str) -> tuple[Any, ...]:
    """The record `to` names: a seq, or the latest entry of a state."""
    if isinstance(to, int) and not isinstance(to, bool):
        if not 1 <= to <= len(records):
            raise errors.InvalidArgument(
                f"instance {iid!r} has no history record {to} (its records are 1..{len(records)})"
            )
        return records[to - 1]
    if not isinstance(to, str):
        raise errors.InvalidArgument(f"rewind to= takes a history seq (int) or a state name, got {to!r}")
    states = _state_names(cm)
    if to not in states:
        raise errors.InvalidArgument(
            f"machine {cm.name!r} has no state {to!r} to rewind to{did_you_mean(to, states)}"
        )
    previous: set[str] = set()
    entry = None
    for rec in records:
        active = _active_paths(_configuration(rec))
        if to in active and (to not in previous or rec[_OUTCOME] == REWOUND or _reentered(cm, rec, to)):
            entry = rec
        previous = active
    if entry is None:
        raise errors.InvalidArgument(f"instance {iid!r} never entered state {to!r}: nothing to rewind to")
    return entry


def _reentered(cm: Any, rec: tuple[Any, ...], state: str) -> bool:
    """Whether record `rec` of a flat machine entered `state` again from itself: an external
    self-transition (declared with the state as its target; a targetless one stays). Statecharts
    count a state as entered when it becomes active (docs/rewind-and-compensation.md)."""
    if cm.is_chart or rec[_OUTCOME] != "applied" or not rec[_SOURCE] == rec[_TARGET] == state:
        return False
    spec = cm.definition.spec.states.get(state)
    if spec is None:
        return False
    event = rec[_EVENT]
    declared = spec.on.get(event) or spec.after.get(event.removeprefix("after."), [])
    return any(t.target == state for t in declared)


def _state_names(cm: Any) -> list[str]:
    if cm.is_chart:
        return [p for p, kind in cm.kinds.items() if kind != "history"]
    return list(cm.definition.spec.states)


def _configuration(rec: tuple[Any, ...]) -> tuple[str, ...]:
    """The active atomic states after a history record (flat: its target)."""
    text = rec[_CONFIGURATION]
    return tuple(json.loads(text)) if text is not None else (rec[_TARGET],)


def _active_paths(configuration: tuple[str, ...]) -> set[str]:
    """The atomic states with every ancestor (`a.b.c` -> a, a.b, a.b.c)."""
    out: set[str] = set()
    for path in configuration:
        parts = path.split(".")
        out.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return out


def _check_restorable(cm: Any, iid: str, rec: tuple[Any, ...], configuration: tuple[str, ...]) -> None:
    """The record's configuration must exist in the machine and not be final (a final state
    arms nothing and accepts nothing: rewinding there would only close the instance)."""
    final = cm.top_final if cm.is_chart else cm.final
    known = set(_state_names(cm))
    for path in configuration:
        if path not in known:
            raise errors.InvalidArgument(
                f"history record {rec[_SEQ]} of instance {iid!r} left it in {path!r},"
                f" which machine {cm.name!r} no longer declares"
            )
        if path in final:
            raise errors.InvalidArgument(
                f"history record {rec[_SEQ]} of instance {iid!r} left it in final state {path!r}:"
                " rewind to an earlier record"
            )


def _check_limit(cm: Any, iid: str, records: list[tuple[Any, ...]], configuration: tuple[str, ...]) -> None:
    """`RewindLimit` when a restored state with `max_rewinds` was restored that often already."""
    restored = _active_paths(configuration)
    for path in sorted(restored):
        limit = _spec_of(cm, path).max_rewinds
        if limit is None:
            continue
        done = sum(
            1 for rec in records if rec[_OUTCOME] == REWOUND and path in _active_paths(_configuration(rec))
        )
        if done >= limit:
            raise errors.RewindLimit(iid, path, limit)


def _spec_of(cm: Any, path: str) -> Any:
    if cm.is_chart:
        return cm.tree.nodes[path].spec
    return cm.definition.spec.states[path]


def _checked_context(cm: Any, text: str) -> str:
    """The recorded context, checked against today's context model (it may have changed)."""
    if cm.model is not None:
        try:
            cm.model.model_validate_json(text)
        except ValueError as exc:
            raise errors.ContextInvalid(cm.name, f"the recorded context no longer fits: {exc}") from None
    return text


def _restore_flat(
    rt: Runtime, cur: Any, cm: Any, row: tuple[Any, ...], seq: int, state: str, context: str,
    doc: dict[str, Any], actor: str | None, reason: str | None, now: datetime,
) -> None:  # fmt: skip
    iid = row[0]
    rt.store.update_instance(
        cur, iid, cm.definition.version,
        state if state != row[STATE] else None,
        context,
        ACTIVE if row[STATUS] != ACTIVE else None,
        row[VERSION] + 1, seq, seq, now,
    )  # fmt: skip
    rt.store.insert_history(
        cur, iid, row[MACHINE], seq, REWIND_EVENT, row[STATE], state, to_json(REWIND_EVENT, doc),
        context, actor, now, REWOUND, reason,
    )  # fmt: skip
    rt.applier.disarm(cur, iid, now)
    rt.applier.arm(cur, cm, iid, state, seq, now)


def _restore_chart(
    rt: Runtime, cur: Any, cm: Any, row: tuple[Any, ...], seq: int, rec: tuple[Any, ...],
    configuration: tuple[str, ...], context: str, doc: dict[str, Any], actor: str | None,
    reason: str | None, now: datetime,
) -> None:  # fmt: skip
    """Every restored state (atomic ones and their ancestors) counts as entered by the rewind
    record; the history memory (what history states re-enter) is kept as it is now."""
    iid = row[0]
    old = chart_of(row) or {"active": {}, "history": {}}
    nodes = sorted((n for n in cm.active_nodes(configuration) if n.path), key=lambda n: n.order)
    active = {n.path: seq for n in nodes}
    armed = [p for p in active if cm.timers.get(p) or cm.effects.get(p) or p in cm.compensating]
    charts = rt.applier.charts
    state = rec[_TARGET]
    charts.rows.update_chart_instance(
        cur, iid, cm.definition.version,
        state if state != row[STATE] else None,
        context,
        ACTIVE if row[STATUS] != ACTIVE else None,
        chart_json(active, old["history"], armed), row[VERSION] + 1, seq, now,
    )  # fmt: skip
    charts.rows.insert_chart_history(
        cur, iid, row[MACHINE], seq, REWIND_EVENT, row[STATE], state, to_json(REWIND_EVENT, doc),
        context, actor, now, REWOUND, reason, json.dumps(list(configuration), separators=(",", ":")),
    )  # fmt: skip
    charts.rows.move_chart_states(cur, iid, row[MACHINE], list(old["active"]), list(active), seq)
    rt.schedule.disarm(cur, iid, now)
    rt.applier.drop_sent(cur, row)
    charts.arm(cur, cm, iid, armed, seq, now)


def _snapshot(rt: Runtime, cm: Any, row: tuple[Any, ...]) -> Snapshot:
    return snapshot_from_row(rt.db, row, cm.model)
