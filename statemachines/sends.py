"""SCXML's external event queue, durable: delivering what `<send>` queued.

A chart step returns its external sends and cancels in order (`ChartStep.sends`, made by
`statemachines.chart.content`); the chart applier stores them in the step's transaction
(`SendQueue.write`: one `sm_sends` row per send, due at the step's time plus its delay; a
cancel deletes the instance's undelivered rows with that send id).

`deliver_due_sends` (called by `run_due` and by workers, like timers) claims due rows in (due
time, id) order and applies each as the instance's next external event, in the same transaction
as the claim, so each is delivered once. The event carries the send's id and the instance's
address (`_event.sendid`, `_event.origin`). An event no state takes is recorded as rejected and
dropped, as SCXML discards it; a transition that raises puts the instance into `failed` (the row
is kept and delivered again after `retry`); a row that cannot be processed at all fails its
instance without stopping the others. A top-level final state ends the instance, and with it its
queue: its rows are deleted.

SCXML has one external queue, so an event from outside waits behind the sends already due:
`deliver_due_first` (called by `sending.send` for charts with content, in the caller's
transaction, on the instance row it locked) delivers them the same way, each its own step, before
the caller's event is applied. Charts without content and flat machines never call it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from persistence.send_queue import SendQueue
from statemachines import errors
from statemachines.chart.expressions import session_location
from statemachines.claimed import each_claimed
from statemachines.records import ACTIVE
from statemachines.rows import DEF_VERSION, MACHINE, STATUS
from statemachines.runtime import Runtime

SEND_ACTOR = "send"
log = logging.getLogger("statemachines.worker")
_SAVEPOINT = "sm_send_row"
#: What `apply_or_fail` turns into a failed instance for timers: the same for delivered sends.
_FAILS = (
    errors.ActionFailed, errors.ContextInvalid, errors.PayloadInvalid, errors.TimeOutOfRange,
    errors.StepLimitExceeded,
)  # fmt: skip


def deliver_due_sends(rt: Runtime, limit: int = 100) -> int:
    """Deliver up to `limit` due sends in one transaction; returns how many were due. Without a
    served machine that has executable content, there is nothing to ask the database."""
    machines = senders(rt)
    if not machines:
        return 0
    queue: SendQueue = rt.applier.charts.sends
    now = rt.clock.now()
    with rt.transaction() as cur:
        claimed = queue.claim(cur, now, limit, machines)
        _deliver_each(rt, queue, cur, claimed, now)
    return len(claimed)


def may_send(cm: Any) -> bool:
    """Whether instances of this compiled machine can have queued sends (a statechart with
    executable content); an attribute test, so other machines pay nothing for the queue."""
    return bool(getattr(cm, "is_chart", False) and cm.tree.has_content)


def deliver_due_first(rt: Runtime, cur: Any, row: tuple[Any, ...], now: datetime) -> tuple[Any, ...]:
    """Before an event from outside (`sending.send`, a callback token): deliver the sends of the
    instance of the locked, active `row` that are due at `now`, in (due, id) order, each as its
    own step (history record, actor `send`), in the caller's transaction; return the row as they left it
    (`row` itself when none was due: then one query, nothing written). Only for charts with
    executable content: nothing else can have sends."""
    queue: SendQueue = rt.applier.charts.sends
    due = queue.due_of(cur, row[0], now)
    if not due:
        return row
    _deliver_each(rt, queue, cur, due, now)
    fresh = rt.store.lock_instance(cur, row[0], None)
    assert fresh is not None  # locked since the caller's first read: nothing deletes it
    return fresh


def _deliver_each(
    rt: Runtime, queue: SendQueue, cur: Any, sends: list[tuple[Any, ...]], now: datetime
) -> None:
    """Deliver `sends` (claimed or due rows) in order, each in a savepoint of its own."""
    each_claimed(
        cur, sends, _SAVEPOINT,
        lambda send: _deliver(rt, queue, cur, send, now),
        lambda send, exc: _quarantine(rt, queue, cur, send, exc, now),
        lambda send, exc: _drop(queue, cur, send, exc),
    )  # fmt: skip


def senders(rt: Runtime) -> list[tuple[str, str]]:
    """The served (machine, version) pairs that may send (statecharts with executable content),
    sorted."""
    return sorted(pair for pair, cm in rt.versions.items() if may_send(cm))


def _deliver(rt: Runtime, queue: SendQueue, cur: Any, send: tuple[Any, ...], now: datetime) -> None:
    row_id, iid, send_id, event, payload_json = send[:5]
    row = rt.store.lock_instance(cur, iid, None)
    if row is None or row[STATUS] != ACTIVE:
        if row is None or row[STATUS] != "failed":  # gone or closed: nothing will take it
            queue.delete(cur, row_id)
        return
    cm = rt.compiled(row[MACHINE], row[DEF_VERSION])
    sent = (send_id or None, session_location(iid))  # "": sent without an id (blank sendid)
    cur.execute("SAVEPOINT sm_send_event")
    try:
        outcome = rt.applier.charts.apply(
            cur, cm, row, event, json.loads(payload_json), None, SEND_ACTOR, now, sent=sent
        )
    except _FAILS as exc:
        cur.execute("ROLLBACK TO SAVEPOINT sm_send_event")
        rt.applier.fail(cur, row, event, f"{type(exc).__name__}: {exc}", now, json.loads(payload_json))
        log.warning("send %s to %s failed the instance: %s", event, iid, exc)
        return  # the row stays: `retry` makes the instance active and the send is delivered again
    cur.execute("RELEASE SAVEPOINT sm_send_event")
    queue.delete(cur, row_id)
    what = "rejected" if isinstance(outcome, errors.EventRejected) else f"now in {outcome.state}"
    log.info("send %s (%s) delivered to %s: %s", event, send_id, iid, what)


def _quarantine(
    rt: Runtime, queue: SendQueue, cur: Any, send: tuple[Any, ...], exc: Exception, now: datetime
) -> None:
    """A send that cannot be processed (its machine unknown here, a stored row that does not
    parse): its instance fails with the reason and the row is dropped."""
    row_id, iid, _send_id, event = send[:4]
    reason = f"send {event} could not be delivered: {type(exc).__name__}: {exc}"
    log.error("send %s on %s: %s", event, iid, reason, exc_info=exc)
    row = rt.store.lock_instance(cur, iid, None)
    if row is not None and row[STATUS] == ACTIVE:
        rt.applier.fail(cur, row, event, reason, now)
    queue.delete(cur, row_id)


def _drop(queue: SendQueue, cur: Any, send: tuple[Any, ...], exc: Exception) -> None:
    """Even failing the instance failed: drop the send rather than claim it again forever."""
    queue.delete(cur, send[0])
    log.error("send %s on %s dropped: %s", send[3], send[1], exc, exc_info=exc)


def pending(rt: Runtime, instance_id: str) -> list[tuple[str, str, Any, datetime]]:
    """(send id, event, data, due) of an instance's undelivered sends, in delivery order; the id
    is "" for a send written without `id` or `idlocation`."""
    queue: SendQueue = rt.applier.charts.sends
    with rt.read() as cur:
        rows = queue.pending_of(cur, instance_id)
    return [(r[0], r[1], json.loads(r[2]), rt.db.from_ts(r[3])) for r in rows]
