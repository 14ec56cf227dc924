"""Statements for what waits on time: timers, the effect outbox, effect attempts, spent tokens.

Claims use `FOR UPDATE SKIP LOCKED` on PostgreSQL so many workers on many hosts take disjoint
rows; SQLite serialises writers with `BEGIN IMMEDIATE`, which gives the same guarantee.
Workers claim only rows of instances whose machine *and definition version* they know (`served`:
(machine, version) pairs), so a worker deployed with an older code base never takes work it
cannot do, and an instance pinned to a version no worker here registered waits for one that has.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from persistence.database import Database

# A timer or effect row is live while the state that armed it is in the entry that armed it: for
# a flat instance, the instance's own `entered_seq`; for a statechart (whose `entered_seq` is 0),
# the declaring state's row in `sm_chart_states`, at any depth. `{t}` is the row's table alias and
# `i` its instance (the saga and version stores ask the same of their rows).
LIVE_ENTRY = (
    "(i.entered_seq = {t}.entered_seq OR EXISTS (SELECT 1 FROM sm_chart_states c"
    " WHERE c.instance_id = {t}.instance_id AND c.state = {t}.state AND c.entered_seq = {t}.entered_seq))"
)
# Statecharts, after a step exited states: rows whose state entry is no longer active go.
_NOT_LIVE = (
    "NOT EXISTS (SELECT 1 FROM sm_chart_states c WHERE c.instance_id = {table}.instance_id"
    " AND c.state = {table}.state AND c.entered_seq = {table}.entered_seq)"
)

# An effect runs while its instance is active; a compensation (a row that `compensates` another,
# statemachines/compensation.py) also while it is cancelled: `cancel(id, compensate=True)` closes
# the instance at once and lets its compensations finish. Rows `waiting` (compensations queued
# behind the one running) are unfinished too: leaving the state cancels them.
_RUNNABLE = "(i.status = 'active' OR (i.status = 'cancelled' AND {t}.compensates IS NOT NULL))"
# What disarming cancels: rows that may still run or deliver a result, and `failed` rows of the
# entry the instance is in (a failed instance cancelled or moved on: they will never be retried).
# A failed row of an entry already left (its `error.<name>` was handled by a transition away)
# is finished and keeps its status for the record; `retry` redrives only live rows.
_UNFINISHED = "('pending', 'running', 'held', 'waiting')"
_CANCELLABLE = (
    f"(status IN {_UNFINISHED} OR (status = 'failed' AND EXISTS (SELECT 1 FROM sm_instances i"
    f" WHERE i.id = sm_effects.instance_id AND {LIVE_ENTRY.format(t='sm_effects')})))"
)

_SQL = {
    "insert_timer": "INSERT INTO sm_timers (instance_id, machine, entered_seq, state, event, fire_at)"
    " VALUES (:id, :machine, :entered_seq, :state, :event, :fire_at)",
    # With the trace context of the span that armed it (only when one was recording).
    "insert_timer_traced": "INSERT INTO sm_timers (instance_id, machine, entered_seq, state, event,"
    " fire_at, trace) VALUES (:id, :machine, :entered_seq, :state, :event, :fire_at, :trace)",
    "delete_timers": "DELETE FROM sm_timers WHERE instance_id = :id",
    # Not by id alone: SQLite reuses the ids of deleted rows, so a timer armed in this very
    # transaction (the next state's) may carry the id of one that was claimed and disarmed.
    "delete_timer": "DELETE FROM sm_timers WHERE id = :timer_id AND instance_id = :id"
    " AND entered_seq = :entered_seq",
    # What an instance waits on: rows of the state entry it is in, never those of a state left.
    "timers_of": "SELECT t.event, t.state, t.fire_at FROM sm_timers t JOIN sm_instances i"
    f" ON i.id = t.instance_id AND {LIVE_ENTRY.format(t='t')} WHERE t.instance_id = :id"
    " ORDER BY t.fire_at, t.id",
    "insert_effect": "INSERT INTO sm_effects (instance_id, machine, entered_seq, state, name, key,"
    " status, attempt, round_start, next_at, updated_at) VALUES (:id, :machine, :entered_seq, :state,"
    " :name, :key, 'pending', 0, 0, :now, :now)",
    "insert_effect_traced": "INSERT INTO sm_effects (instance_id, machine, entered_seq, state, name,"
    " key, status, attempt, round_start, next_at, updated_at, trace) VALUES (:id, :machine, :entered_seq,"
    " :state, :name, :key, 'pending', 0, 0, :now, :now, :trace)",
    "cancel_effects": "UPDATE sm_effects SET status = 'cancelled', lease_until = NULL, updated_at = :now"
    f" WHERE instance_id = :id AND {_CANCELLABLE}",
    # PostgreSQL: both of the above in one round trip (a data-modifying CTE); leaving a state
    # runs this on every transition, armed rows or not.
    "disarm_pg": "WITH dropped AS (DELETE FROM sm_timers WHERE instance_id = :id)"
    " UPDATE sm_effects SET status = 'cancelled', lease_until = NULL, updated_at = :now"
    f" WHERE instance_id = :id AND {_CANCELLABLE}",
    "start_attempt": "UPDATE sm_effects SET status = 'running', attempt = attempt + 1,"
    " lease_until = :lease_until, updated_at = :now WHERE id = :effect_id",
    # A kept result is delivered, not produced again: the attempt count does not move.
    "start_delivery": "UPDATE sm_effects SET status = 'running', lease_until = :lease_until,"
    " updated_at = :now WHERE id = :effect_id",
    # Right before an effect runs: its lease starts now, if it is still ours (not taken over
    # by another worker after the claim's lease ran out, not cancelled) and its instance active.
    "renew_lease": "UPDATE sm_effects SET lease_until = :lease_until, updated_at = :now"
    " WHERE id = :effect_id AND status = 'running' AND attempt = :attempt"
    " AND EXISTS (SELECT 1 FROM sm_instances i WHERE i.id = sm_effects.instance_id"
    f" AND {_RUNNABLE.format(t='sm_effects')} AND {LIVE_ENTRY.format(t='sm_effects')})",
    "release_effect": "UPDATE sm_effects SET status = 'pending', attempt = attempt - :counted,"
    " lease_until = NULL"
    " WHERE id = :effect_id AND status = 'running' AND attempt = :attempt",
    "lock_effect": "SELECT status, attempt, round_start FROM sm_effects WHERE id = :effect_id",
    "finish_effect": "UPDATE sm_effects SET status = :status, next_at = :next_at, lease_until = NULL,"
    " last_error = :error, result = :result, updated_at = :now WHERE id = :effect_id",
    "insert_attempt": "INSERT INTO sm_effect_attempts (effect_id, attempt, instance_id, started_at,"
    " duration_ms, ok, error) VALUES (:effect_id, :attempt, :id, :started_at, :duration_ms, :ok, :error)",
    "effects_of": "SELECT e.name, e.state, e.status, e.attempt, e.next_at, e.last_error FROM sm_effects e"
    f" JOIN sm_instances i ON i.id = e.instance_id AND {LIVE_ENTRY.format(t='e')}"
    " WHERE e.instance_id = :id AND e.status IN ('pending', 'running', 'failed', 'held', 'waiting')"
    " ORDER BY e.id",
    "drop_exited_timers": "DELETE FROM sm_timers WHERE instance_id = :id"
    f" AND {_NOT_LIVE.format(table='sm_timers')}",
    "cancel_exited_effects": "UPDATE sm_effects SET status = 'cancelled', lease_until = NULL,"
    " updated_at = :now WHERE instance_id = :id"
    f" AND status IN {_UNFINISHED}"
    f" AND {_NOT_LIVE.format(table='sm_effects')}",
    "attempts_of": "SELECT e.name, a.attempt, a.started_at, a.duration_ms, a.ok, a.error"
    " FROM sm_effect_attempts a JOIN sm_effects e ON e.id = a.effect_id"
    " WHERE a.instance_id = :id ORDER BY a.started_at, a.effect_id, a.attempt",
    # Failed effects run again (a new retry round); held ones keep their result, delivered next.
    "redrive_effects": "UPDATE sm_effects SET status = 'pending', round_start = attempt, next_at = :now,"
    " last_error = NULL, updated_at = :now WHERE instance_id = :id AND status IN ('failed', 'held')"
    " AND EXISTS (SELECT 1 FROM sm_instances i WHERE i.id = sm_effects.instance_id"
    f" AND {LIVE_ENTRY.format(t='sm_effects')})",
    "fail_effect": "UPDATE sm_effects SET status = 'failed', lease_until = NULL, last_error = :error,"
    " updated_at = :now WHERE id = :effect_id AND status IN ('pending', 'running')",
    "use_token": "INSERT INTO sm_token_uses (token_id, instance_id, used_at) VALUES (:token_id, :id, :now)",
    "token_used": "SELECT 1 FROM sm_token_uses WHERE token_id = :token_id",
}

_CLAIM_TIMERS = (
    "SELECT t.id, t.instance_id, t.entered_seq, t.state, t.event, t.fire_at, t.trace FROM sm_timers t"
    " JOIN sm_instances i ON i.id = t.instance_id"
    " WHERE t.fire_at <= :now AND i.status = 'active' AND ({served})"
    " ORDER BY t.fire_at, t.id LIMIT :limit"
)
_CLAIM_EFFECTS = (
    "SELECT e.id, e.instance_id, e.machine, e.entered_seq, e.state, e.name, e.key, e.attempt,"
    " e.round_start, i.context, e.result, e.trace, i.definition_version, o.state, o.name"
    " FROM sm_effects e JOIN sm_instances i ON i.id = e.instance_id"
    " LEFT JOIN sm_effects o ON o.id = e.compensates"
    " WHERE ((e.status = 'pending' AND e.next_at <= :now)"
    " OR (e.status = 'running' AND e.lease_until <= :now))"
    " AND " + _RUNNABLE.format(t="e") + " AND " + LIVE_ENTRY.format(t="e") + " AND ({served})"
    " ORDER BY e.next_at, e.id LIMIT :limit"
)


# When the next claim above comes due (statemachines/due.py): the same rows, unordered.
NEXT_TIMER = (
    "SELECT MIN(t.fire_at) FROM sm_timers t JOIN sm_instances i ON i.id = t.instance_id"
    " WHERE i.status = 'active' AND ({served})"
)
NEXT_EFFECT = (
    "SELECT MIN(CASE WHEN e.status = 'pending' THEN e.next_at ELSE e.lease_until END)"
    " FROM sm_effects e JOIN sm_instances i ON i.id = e.instance_id"
    " WHERE e.status IN ('pending', 'running')"
    " AND " + _RUNNABLE.format(t="e") + " AND " + LIVE_ENTRY.format(t="e") + " AND ({served})"
)


def served_condition(n: int) -> str:
    """SQL true for an instance `i` of one of `n` (machine, version) pairs (`served_params`)."""
    return " OR ".join(f"(i.machine = :m{k} AND i.definition_version = :v{k})" for k in range(n))


def served_params(served: Sequence[tuple[str, str]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for k, (machine, version) in enumerate(served):
        params[f"m{k}"] = machine
        params[f"v{k}"] = version
    return params


class Schedule:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.sql = {name: db.sql(text) for name, text in _SQL.items()}
        self._claims: dict[tuple[str, tuple[str, ...]], str] = {}

    def _claim_sql(self, kind: str, template: str, alias: str, n: int) -> str:
        key = (kind, (str(n),))
        sql = self._claims.get(key)
        if sql is None:
            text = template.format(served=served_condition(n))
            if self.db.dialect == "postgresql":
                text += f" FOR UPDATE OF {alias} SKIP LOCKED"
            sql = self._claims[key] = self.db.sql(text)
        return sql

    @staticmethod
    def _machine_params(served: Sequence[tuple[str, str]]) -> dict[str, Any]:
        return served_params(served)

    # timers ------------------------------------------------------------------------------------
    def arm_timers(
        self,
        cur: Any,
        instance_id: str,
        machine: str,
        entered_seq: int,
        state: str,
        timers: Sequence[tuple[str, datetime]],
        trace: str | None = None,
    ) -> None:
        """`trace`: the W3C traceparent to store with each row; None writes no trace column."""
        for event, fire_at in timers:
            params = {"id": instance_id, "machine": machine, "entered_seq": entered_seq, "state": state,
                      "event": event, "fire_at": self.db.ts(fire_at)}  # fmt: skip
            if trace is None:
                cur.execute(self.sql["insert_timer"], params)
            else:
                cur.execute(self.sql["insert_timer_traced"], {**params, "trace": trace})

    def delete_timer(self, cur: Any, timer_id: int, instance_id: str, entered_seq: int) -> None:
        params = {"timer_id": timer_id, "id": instance_id, "entered_seq": entered_seq}
        cur.execute(self.sql["delete_timer"], params)

    def claim_timers(
        self, cur: Any, now: datetime, limit: int, machines: Sequence[tuple[str, str]]
    ) -> list[tuple[Any, ...]]:
        """Due timers of active instances: (id, instance_id, entered_seq, state, event, fire_at,
        trace).

        On PostgreSQL the instance rows are locked (SKIP LOCKED) with the timers: the engine
        locks an instance before its timers everywhere else, so waiting for an instance while
        holding its timer would deadlock against a concurrent `send`."""
        if not machines:
            return []
        sql = self._claim_sql("timers", _CLAIM_TIMERS, "t, i", len(machines))
        cur.execute(sql, {"now": self.db.ts(now), "limit": limit, **self._machine_params(machines)})
        return cur.fetchall()

    def timers_of(self, cur: Any, instance_id: str) -> list[tuple[Any, ...]]:
        cur.execute(self.sql["timers_of"], {"id": instance_id})
        return cur.fetchall()

    # effects -----------------------------------------------------------------------------------
    def arm_effects(
        self,
        cur: Any,
        instance_id: str,
        machine: str,
        entered_seq: int,
        state: str,
        effects: Sequence[tuple[str, str]],
        now: datetime,
        trace: str | None = None,
    ) -> None:
        """`trace`: the W3C traceparent to store with each row; None writes no trace column."""
        for name, key in effects:
            params = {"id": instance_id, "machine": machine, "entered_seq": entered_seq, "state": state,
                      "name": name, "key": key, "now": self.db.ts(now)}  # fmt: skip
            if trace is None:
                cur.execute(self.sql["insert_effect"], params)
            else:
                cur.execute(self.sql["insert_effect_traced"], {**params, "trace": trace})

    def disarm(self, cur: Any, instance_id: str, now: datetime) -> None:
        """Drop every timer and cancel every live effect of an instance (it leaves its state):
        indexed by instance id, so cheap when there is nothing to drop."""
        params = {"id": instance_id, "now": self.db.ts(now)}
        if self.db.dialect == "postgresql":
            cur.execute(self.sql["disarm_pg"], params)
        else:
            cur.execute(self.sql["delete_timers"], params)
            cur.execute(self.sql["cancel_effects"], params)

    def disarm_exited(self, cur: Any, instance_id: str, now: datetime) -> None:
        """Statecharts: drop the timers and cancel the live effects of the state entries no longer
        active (after `sm_chart_states` was brought up to date), from the rows themselves: what
        another version of the machine armed goes too, and the rows of states still active stay."""
        params = {"id": instance_id, "now": self.db.ts(now)}
        cur.execute(self.sql["drop_exited_timers"], params)
        cur.execute(self.sql["cancel_exited_effects"], params)

    def claim_effects(
        self, cur: Any, now: datetime, limit: int, machines: Sequence[tuple[str, str]]
    ) -> list[tuple[Any, ...]]:
        """Due or lease-expired effects of the state entry their instance is in: (id, instance,
        machine, entered_seq, state, name, key, attempt, round_start, context, kept result, trace,
        the instance's definition version)."""
        if not machines:
            return []
        sql = self._claim_sql("effects", _CLAIM_EFFECTS, "e", len(machines))
        cur.execute(sql, {"now": self.db.ts(now), "limit": limit, **self._machine_params(machines)})
        return cur.fetchall()

    def start_attempt(self, cur: Any, effect_id: int, lease_until: datetime, now: datetime) -> None:
        cur.execute(
            self.sql["start_attempt"],
            {"effect_id": effect_id, "lease_until": self.db.ts(lease_until), "now": self.db.ts(now)},
        )

    def start_delivery(self, cur: Any, effect_id: int, lease_until: datetime, now: datetime) -> None:
        """Claim an effect whose result was kept (see `hold`): delivered without running again."""
        cur.execute(
            self.sql["start_delivery"],
            {"effect_id": effect_id, "lease_until": self.db.ts(lease_until), "now": self.db.ts(now)},
        )

    def renew_lease(
        self, cur: Any, effect_id: int, attempt: int, lease_until: datetime, now: datetime
    ) -> bool:
        """Start the lease of a claimed effect about to run; False when it is no longer ours to
        run (taken over, cancelled, or its instance not active in that state entry)."""
        cur.execute(
            self.sql["renew_lease"],
            {"effect_id": effect_id, "attempt": attempt, "lease_until": self.db.ts(lease_until),
             "now": self.db.ts(now)},
        )  # fmt: skip
        return cur.rowcount == 1

    def fail_effect(self, cur: Any, effect_id: int, error: str, now: datetime) -> bool:
        """Mark an effect a worker could not process as `failed` (`retry` redrives it)."""
        cur.execute(self.sql["fail_effect"], {"effect_id": effect_id, "error": error, "now": self.db.ts(now)})
        return cur.rowcount == 1

    def release_effect(self, cur: Any, effect_id: int, attempt: int, counted: bool = True) -> None:
        """Give back a claimed effect that was never started (a worker stopping, a lease lost);
        `counted`: the claim counted an attempt (not so for delivering a kept result)."""
        params = {"effect_id": effect_id, "attempt": attempt, "counted": int(counted)}
        cur.execute(self.sql["release_effect"], params)

    def lock_effect(self, cur: Any, effect_id: int) -> tuple[Any, ...] | None:
        """(status, attempt, round_start); the caller's transaction already serialises it."""
        sql = self.sql["lock_effect"]
        if self.db.dialect == "postgresql":
            sql += " FOR UPDATE"
        cur.execute(sql, {"effect_id": effect_id})
        return cur.fetchone()

    def finish_effect(
        self,
        cur: Any,
        effect_id: int,
        status: str,
        next_at: datetime,
        error: str | None,
        result: str | None,
        now: datetime,
    ) -> None:
        cur.execute(
            self.sql["finish_effect"],
            {"effect_id": effect_id, "status": status, "next_at": self.db.ts(next_at),
             "error": error, "result": result, "now": self.db.ts(now)},
        )  # fmt: skip

    def record_attempt(
        self,
        cur: Any,
        effect_id: int,
        attempt: int,
        instance_id: str,
        started_at: datetime,
        duration_ms: float,
        ok: bool,
        error: str | None,
    ) -> None:
        cur.execute(
            self.sql["insert_attempt"],
            {"effect_id": effect_id, "attempt": attempt, "id": instance_id,
             "started_at": self.db.ts(started_at), "duration_ms": duration_ms, "ok": ok,
             "error": error},
        )  # fmt: skip

    def effects_of(self, cur: Any, instance_id: str) -> list[tuple[Any, ...]]:
        cur.execute(self.sql["effects_of"], {"id": instance_id})
        return cur.fetchall()

    def attempts_of(self, cur: Any, instance_id: str) -> list[tuple[Any, ...]]:
        cur.execute(self.sql["attempts_of"], {"id": instance_id})
        return cur.fetchall()

    def redrive_effects(self, cur: Any, instance_id: str, now: datetime) -> int:
        cur.execute(self.sql["redrive_effects"], {"id": instance_id, "now": self.db.ts(now)})
        return cur.rowcount

    # tokens ------------------------------------------------------------------------------------
    def token_used(self, cur: Any, token_id: str) -> bool:
        """Whether the token with this nonce was spent (a read: nothing is claimed)."""
        cur.execute(self.sql["token_used"], {"token_id": token_id})
        return cur.fetchone() is not None

    def use_token(self, cur: Any, token_id: str, instance_id: str, now: datetime) -> None:
        """Raises `Conflict` when the token was used before."""
        cur.execute(self.sql["use_token"], {"token_id": token_id, "id": instance_id, "now": self.db.ts(now)})
