"""Durable timers: a due timer fires its event in the same transaction that claims it.

So a timer fires exactly once however many workers run: the claim (SKIP LOCKED on PostgreSQL,
the database write lock on SQLite), the delete and the transition commit together or not at all.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from statemachines.apply import apply_or_fail
from statemachines.records import ACTIVE
from statemachines.rows import ENTERED_SEQ, MACHINE, STATE, STATUS

if TYPE_CHECKING:
    from statemachines.engine import Engine

TIMER_ACTOR = "timer"
log = logging.getLogger("statemachines.worker")


def fire_due_timers(engine: Engine, limit: int = 100) -> int:
    """Fire up to `limit` due timers in one transaction; returns how many were due."""
    now = engine.clock.now()
    with engine._tx() as cur:
        claimed = engine.schedule.claim_timers(cur, now, limit, sorted(engine._machines))
        # Lock instances in id order: two workers' batches can then never wait on each other.
        # The sort is stable: an instance's timers keep the claim order (fire_at), so of several
        # due timers the earliest fires and the others find the state left (stale).
        for timer_id, iid, entered_seq, state, event in sorted(claimed, key=lambda r: r[1]):
            row = engine.store.lock_instance(cur, iid, None)
            if row is None or row[ENTERED_SEQ] != entered_seq or row[STATE] != state:
                engine.schedule.delete_timer(cur, timer_id, iid, entered_seq)
                log.info("timer %s on %s is stale (state left); dropped", event, iid)
                continue
            if row[STATUS] != ACTIVE:  # failed by an earlier timer of this batch: kept for retry
                continue
            cm = engine._compiled(row[MACHINE])
            outcome = apply_or_fail(engine._applier, cur, cm, row, event, {}, TIMER_ACTOR, now)
            if outcome is not None:
                # Kept when the instance failed: claims skip failed instances, and `retry` makes
                # the timer (still due) fire again instead of leaving the instance stuck.
                engine.schedule.delete_timer(cur, timer_id, iid, entered_seq)
            log.info("timer %s fired on %s in %s: %s", event, iid, state, _describe(outcome))
    return len(claimed)


def _describe(outcome: object) -> str:
    if outcome is None:
        return "instance failed"
    state = getattr(outcome, "state", None)
    return f"now in {state}" if state is not None else f"rejected ({type(outcome).__name__})"
