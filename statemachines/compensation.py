"""Compensation (sagas): undo the effects that succeeded, newest first, through the outbox.

`Effect(fn, compensate=undo)`: once `fn` has succeeded, `undo(context, call)` is its
compensation. Entering a state declared `compensate=True` arms one compensation row per
succeeded, not yet compensated effect of the instance (in `sm_effects`, pointing at the effect it
undoes), newest success first. Only the first is due; each of the others `waits` for the one
before it to succeed, so the order is strict even with many workers. Each row has its own
idempotency key (stable over its attempts) and the retry policy of the effect it undoes.

- each success is a history record `done.compensate.<name>` (outcome `recorded`); when the last
  one succeeds the state receives `done.compensation` with `{"compensated": [names, in order]}`
  (nothing to compensate: it receives it at once, through a due timer);
- an exhausted compensation fails the instance with the reason; `engine.retry` runs it again
  (a new round of attempts) and the chain goes on from there;
- leaving the state cancels the compensations not yet done (like any effect); entering a
  compensating state again arms only what is still uncompensated;
- `cancel(id, compensate=True)` closes the instance as `cancelled` at once (nothing more can be
  sent) and arms the same chain on the state entry it was cancelled in; its compensations run on
  the cancelled instance, and `done.compensation` is recorded when they are all done.

Nothing here commits: callers pass their open transaction.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from persistence import saga_store
from persistence.schedule import Schedule
from statemachines import effect_audit
from statemachines.apply import apply_or_fail
from statemachines.checks import COMPENSATION_DONE
from statemachines.records import ACTIVE, CANCELLED
from statemachines.rows import CHART, DEF_VERSION, ENTERED_SEQ, MACHINE, STATE, STATUS, chart_of, holds_entry
from statemachines.runtime import Runtime
from statemachines.spec import EffectSpec

#: Name prefix of a compensation row: the compensation of `book_flight` is `compensate.book_flight`.
PREFIX = "compensate."
ACTOR = "effect"
_compact = json.JSONEncoder(separators=(",", ":")).encode


def done_payload(names: list[str]) -> dict[str, Any]:
    """The payload of `done.compensation`: the compensations that ran, in order (`[]` when there
    was nothing to undo, and the event came as a timer armed at the state's entry)."""
    return {"compensated": names}


def compensation_key(state: str, entered_seq: int, effect_key: str) -> str:
    """The idempotency key of one compensation: the state entry that armed it and the parts of
    the key of the effect it undoes, as compact JSON, e.g.
    `["compensate","undo",4,"t1",2,"book_hotel"]`. Stable over its attempts; a later arming (the
    state entered again) gets a new one."""
    try:
        parts = json.loads(effect_key)
    except ValueError:
        parts = None
    if not isinstance(parts, list):  # a key of the older "<id>:<seq>:<name>" format
        parts = [effect_key]
    return _compact(["compensate", state, entered_seq, *parts])


def undo_spec(cm: Any, state: str, name: str) -> EffectSpec | None:
    """The declaration of effect `name` of `state` (its `compensate` callable, retry, lease)."""
    return next((e for e in cm.effects.get(state, ()) if e.name == name), None)


def arm_compensations(
    schedule: Schedule,
    cur: Any,
    cm: Any,
    instance_id: str,
    state: str,
    entered_seq: int,
    now: datetime,
    *,
    signal_when_none: bool = True,
) -> int:
    """Queue the compensations of the instance's succeeded, uncompensated effects on the entry
    (`state`, `entered_seq`); returns how many. None to run and `signal_when_none`: the state
    gets `done.compensation` through a timer due now (a worker delivers it in its own
    transaction, as it would after the last compensation)."""
    store = saga_store.for_database(schedule.db)
    queued = 0
    for effect_id, effect_state, name, key in store.uncompensated(cur, instance_id):
        spec = undo_spec(cm, effect_state, name)
        if spec is None or spec.compensate is None:
            continue  # nothing declared to undo it (or no longer declared)
        store.insert_compensation(
            cur, instance_id, cm.name, entered_seq, state, PREFIX + name,
            compensation_key(state, entered_seq, key), effect_id, queued > 0, now,
        )  # fmt: skip
        queued += 1
    if queued == 0 and signal_when_none:
        schedule.arm_timers(cur, instance_id, cm.name, entered_seq, state, [(COMPENSATION_DONE, now)])
    return queued


def succeeded(rt: Runtime, cur: Any, cm: Any, item: Any, result: Any, now: datetime) -> None:
    """A compensation succeeded (its row is `done`): record it, start the next one, or, when it
    was the last, tell the state (`done.compensation`)."""
    iid = item.instance_id
    effect_audit.record(rt, cur, iid, f"done.{item.name}", result, now, actor=ACTOR)
    store = saga_store.for_database(rt.db)
    rows = store.entry_compensations(cur, iid, item.state, item.entered_seq)
    waiting = [effect_id for effect_id, _name, status in rows if status == "waiting"]
    if waiting:
        store.promote(cur, waiting[0], now)
        return
    if any(status != "done" for _id, _name, status in rows):
        return  # another one of this entry is still in flight (redriven out of order)
    names = [name.removeprefix(PREFIX) for _id, name, _status in rows]
    _all_done(rt, cur, cm, item.instance_id, item.state, item.entered_seq, names, now)


def _all_done(
    rt: Runtime, cur: Any, cm: Any, iid: str, state: str, entered_seq: int, names: list[str], now: datetime
) -> None:
    row = rt.store.lock_instance(cur, iid, None)
    if row is None or not holds_entry(row, state, entered_seq):
        return
    payload = done_payload(names)
    if row[STATUS] == ACTIVE and state in cm.compensating:
        apply_or_fail(rt.applier, cur, cm, row, COMPENSATION_DONE, payload, ACTOR, now, source=state)
    elif row[STATUS] == ACTIVE:
        # A `cancel(compensate=True)` whose compensation failed and was redriven by `retry`
        # (which made the instance active): the cancel completes now.
        rt.applier.set_status(
            cur, row, CANCELLED, COMPENSATION_DONE, CANCELLED, now,
            reason="compensated, then cancelled", payload=payload, actor=ACTOR,
        )  # fmt: skip
        rt.applier.disarm(cur, iid, now)
    else:
        effect_audit.record(rt, cur, iid, COMPENSATION_DONE, payload, now, actor=ACTOR)


def exhausted(rt: Runtime, cur: Any, item: Any, payload: dict[str, Any], now: datetime) -> None:
    """A compensation failed its last attempt: the instance fails (state kept) with a reason
    naming it; the compensations queued behind it keep waiting until `retry` redrives it."""
    row = rt.store.lock_instance(cur, item.instance_id, None)
    event = f"error.{item.name}"
    undone = item.name.removeprefix(PREFIX)
    reason = (
        f"compensation of effect {undone!r} failed {payload['attempts']} times: {payload['error']};"
        " the compensations after it wait: fix the cause and retry the instance"
    )
    live = row is not None and holds_entry(row, item.state, item.entered_seq)
    if live and row[STATUS] in (ACTIVE, CANCELLED):  # type: ignore[index]
        rt.applier.fail(cur, row, event, reason, now, payload)
    elif row is not None:
        effect_audit.record(rt, cur, item.instance_id, event, payload, now, actor=ACTOR, reason=reason)


def entry_of(row: tuple[Any, ...]) -> tuple[str, int]:
    """The state entry a cancel binds its compensations to: a flat instance's state entry; for
    a statechart, its first active state (top level) and that state's entry seq."""
    if row[CHART] is None:
        return row[STATE], int(row[ENTERED_SEQ])
    active = chart_of(row)["active"]  # type: ignore[index]
    state = next(iter(active))
    return state, int(active[state])


def compensate_cancelled(rt: Runtime, cur: Any, row: tuple[Any, ...], now: datetime) -> None:
    """`cancel(id, compensate=True)`, inside the cancel's transaction (the instance is already
    cancelled and disarmed): queue the compensations of its succeeded effects on the entry it
    is in; they run on the cancelled instance."""
    cm = rt.compiled(row[MACHINE], row[DEF_VERSION])
    store = saga_store.for_database(rt.db)
    unfinished = store.live_compensations(cur, row[0])
    if unfinished:
        # Cancelled while compensating (in a compensating state, or failed on an exhausted
        # compensation): that chain, just cancelled with the instance's other rows, is queued
        # again as it was (same keys, so one already run is not run twice under another key).
        # The first of each entry's chain is due now, the others wait for the one before them.
        started: set[tuple[str, int]] = set()
        for effect_id, state, entered_seq in unfinished:
            store.requeue(cur, effect_id, (state, entered_seq) in started, now)
            started.add((state, entered_seq))
        return
    state, entered_seq = entry_of(row)
    arm_compensations(rt.schedule, cur, cm, row[0], state, entered_seq, now, signal_when_none=False)
