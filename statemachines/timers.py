"""Durable timers: a due timer fires its event in the same transaction that claims it.

So a timer fires exactly once however many workers run: the claim (SKIP LOCKED on PostgreSQL,
the database write lock on SQLite), the delete and the transition commit together or not at all.

Each timer of a batch runs under a savepoint: a timer whose processing raises (a definition that
no longer knows its state, a duration that overflows...) is undone alone and puts its instance
into `failed` with the reason; the other timers of the batch still fire, and the worker lives.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from statemachines import errors, telemetry
from statemachines.apply import apply_or_fail
from statemachines.checks import COMPENSATION_DONE
from statemachines.claimed import each_claimed
from statemachines.compensation import done_payload
from statemachines.logs import action
from statemachines.records import ACTIVE
from statemachines.rows import DEF_VERSION, MACHINE, STATUS, holds_entry
from statemachines.runtime import Runtime

TIMER_ACTOR = "timer"
log = logging.getLogger("statemachines.worker")
_ROW_SAVEPOINT = "sm_timer_row"


def fire_due_timers(rt: Runtime, limit: int = 100) -> int:
    """Fire up to `limit` due timers in one transaction; returns how many were due."""
    now = rt.clock.now()
    with rt.transaction() as cur:
        claimed = rt.schedule.claim_timers(cur, now, limit, rt.served_versions())
        # Of several due timers of one instance the earliest (claim order) fires and the others
        # find the state left (stale).
        each_claimed(
            cur, claimed, _ROW_SAVEPOINT,
            lambda timer: _traced_fire(rt, cur, timer, now),
            lambda timer, exc: _quarantine(rt, cur, timer, exc, now),
            lambda timer, exc: _drop(rt, cur, timer, exc),
        )  # fmt: skip
    return len(claimed)


def _drop(rt: Runtime, cur: Any, timer: tuple[Any, ...], exc: Exception) -> None:
    """Even failing the instance failed: drop the timer rather than loop on it."""
    rt.schedule.delete_timer(cur, timer[0], timer[1], timer[2])
    log.error("timer %s on %s dropped: %s", timer[4], timer[1], exc, exc_info=exc)


def _traced_fire(rt: Runtime, cur: Any, timer: tuple[Any, ...], now: datetime) -> None:
    """`_fire` in a span that joins the trace which armed the timer (`timer[6]`, if any)."""
    _, iid, _, state, event, fire_at, trace = timer
    with telemetry.span("timer", trace, instance=iid, event=event, source=state) as span:
        machine, outcome, target = _fire(rt, cur, timer, now)
        span.set(machine=machine, outcome=outcome, target=target)
        if machine is not None and outcome != "stale":
            telemetry.timer_lag(machine, (now - rt.db.from_ts(fire_at)).total_seconds())


def _fire(rt: Runtime, cur: Any, timer: tuple[Any, ...], now: datetime) -> tuple[str | None, str, str | None]:
    """Fire one claimed timer; returns its machine, outcome word and target state."""
    timer_id, iid, entered_seq, state, event = timer[:5]
    started = time.perf_counter()
    row = rt.store.lock_instance(cur, iid, None)
    if row is None or not holds_entry(row, state, entered_seq):
        rt.schedule.delete_timer(cur, timer_id, iid, entered_seq)
        machine = row[MACHINE] if row is not None else None
        facts = action("timer", machine, iid, event, "stale", started, state=state)
        log.info("timer %s on %s is stale (state left); dropped", event, iid, extra=facts)
        return machine, "stale", None
    if row[STATUS] != ACTIVE:  # failed by an earlier timer of this batch: kept for retry
        return row[MACHINE], "skipped", None
    try:
        cm = rt.compiled(row[MACHINE], row[DEF_VERSION])
    except errors.VersionNotRegistered as exc:  # migrated since the claim: kept for a worker that has it
        log.warning("timer %s on %s skipped: %s", event, iid, exc)
        return row[MACHINE], "skipped", None
    # `done.compensation` armed as a timer means there was nothing to compensate.
    payload = done_payload([]) if event == COMPENSATION_DONE else {}
    outcome = apply_or_fail(rt.applier, cur, cm, row, event, payload, TIMER_ACTOR, now, source=state)
    if outcome is not None:
        # Kept when the instance failed: claims skip failed instances, and `retry` makes
        # the timer (still due) fire again instead of leaving the instance stuck.
        rt.schedule.delete_timer(cur, timer_id, iid, entered_seq)
    facts = action("timer", cm.name, iid, event, _outcome(outcome), started, state=state,
                   target=getattr(outcome, "state", None))  # fmt: skip
    log.info("timer %s fired on %s in %s: %s", event, iid, state, _describe(outcome), extra=facts)
    return cm.name, _outcome(outcome), getattr(outcome, "state", None)


def _quarantine(rt: Runtime, cur: Any, timer: tuple[Any, ...], exc: Exception, now: datetime) -> None:
    """A timer that cannot be processed: its instance fails (the timer is kept, so `retry`
    fires it again once the cause is fixed); without an instance to fail, the timer goes."""
    timer_id, iid, entered_seq, state, event = timer[:5]
    reason = f"timer {event} could not be processed: {type(exc).__name__}: {exc}"
    facts = action("timer", None, iid, event, "error", state=state, error=reason)
    log.error("timer %s on %s in %s: %s", event, iid, state, reason, exc_info=exc, extra=facts)
    row = rt.store.lock_instance(cur, iid, None)
    if row is not None and row[STATUS] == ACTIVE:
        rt.applier.fail(cur, row, event, reason, now)
    else:
        rt.schedule.delete_timer(cur, timer_id, iid, entered_seq)


def _describe(outcome: object) -> str:
    if outcome is None:
        return "instance failed"
    state = getattr(outcome, "state", None)
    return f"now in {state}" if state is not None else f"rejected ({type(outcome).__name__})"


def _outcome(outcome: object) -> str:
    """The word for a log field: fired, rejected (a guard said no), or failed (the instance)."""
    if outcome is None:
        return "failed"
    return "fired" if getattr(outcome, "state", None) is not None else "rejected"
