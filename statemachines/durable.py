"""The engine's durable-time API: what instances wait on, and the work that wakes them.

`Engine` inherits these methods; they live here so `engine.py` stays the story of one event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from persistence import Conflict
from statemachines import errors, tokens
from statemachines.checks import RESERVED_PREFIXES
from statemachines.durations import Duration, deadline
from statemachines.effects import run_due_effects
from statemachines.records import ACTIVE, FAILED, PendingEffect, PendingTimer, Snapshot, Status
from statemachines.rows import ENTERED_SEQ, MACHINE, STATE, STATUS, snapshot_from_row
from statemachines.timers import fire_due_timers

if TYPE_CHECKING:
    from statemachines.engine import Engine

RETRIED_OUTCOME = "retried"
MAX_RUN_DUE_ROUNDS = 10_000


@dataclass(frozen=True, slots=True)
class EffectAttempt:
    name: str
    attempt: int
    started_at: datetime
    duration_ms: float
    ok: bool
    error: str | None


class DurableMixin:
    """Timers, effects, callback tokens, status and redrive (see DESIGN.md "Semantics")."""

    def run_due(self: Engine, *, batch: int = 100) -> int:  # type: ignore[misc]
        """Fire due timers and run due effects until nothing is due at the clock's now.

        Returns timers fired plus effect attempts made. Work that becomes due during the call
        (an effect armed by a timer it fired) runs in the same call.
        """
        total = 0
        for _ in range(MAX_RUN_DUE_ROUNDS):
            done = fire_due_timers(self, batch) + run_due_effects(self, batch)
            total += done
            if done == 0:
                break
        return total

    def status(self: Engine, instance_id: str) -> Status:  # type: ignore[misc]
        """The snapshot plus `waiting_on`: events accepted now, pending timers and effects."""
        snap = self.get(instance_id)
        with self._read() as cur:
            timers = self.schedule.timers_of(cur, instance_id)
            effects = self.schedule.effects_of(cur, instance_id)
        events: list[str] = []
        if snap.status == ACTIVE:
            compiled = self._machines.get(snap.machine)
            if compiled is not None:
                events = compiled.allowed.get(snap.state, [])
            else:  # not registered in this process: the stored definition still knows
                stored = self.stored_spec(snap.machine).states.get(snap.state)
                events = sorted(stored.on) if stored else []
        return Status(
            snap,
            # done.*/error.* come from effects (listed below), and `send` refuses them
            [e for e in events if not e.startswith(RESERVED_PREFIXES)],
            [PendingTimer(e, s, self.db.from_ts(at)) for e, s, at in timers],
            [
                PendingEffect(n, s, st, a, self.db.from_ts(nx) if nx is not None else None, err)
                for n, s, st, a, nx, err in effects
            ],
        )

    def effect_attempts(self: Engine, instance_id: str) -> list[EffectAttempt]:  # type: ignore[misc]
        """Every effect attempt of an instance, with its duration and error."""
        with self._read() as cur:
            rows = self.schedule.attempts_of(cur, instance_id)
        return [
            EffectAttempt(n, a, self.db.from_ts(at), float(ms), bool(ok), err)
            for n, a, at, ms, ok, err in rows
        ]

    def retry(self: Engine, instance_id: str, *, actor: str | None = None) -> Snapshot:  # type: ignore[misc]
        """Redrive a `failed` instance: back to `active`, failed effects re-armed now, due
        timers fire again; the redrive is audited (outcome `retried`)."""
        from statemachines.engine import _check_id, _check_text  # engine imports this module

        _check_id(instance_id)
        _check_text(actor, "actor")
        now = self.clock.now()
        with self._tx() as cur:
            row = self.store.lock_instance(cur, instance_id, None)
            if row is None:
                raise errors.InstanceNotFound(instance_id)
            if row[STATUS] != FAILED:
                raise errors.InvalidArgument(
                    f"instance {instance_id!r} is {row[STATUS]}, not failed: nothing to retry"
                )
            self._applier.set_status(cur, row, ACTIVE, "retry", RETRIED_OUTCOME, now, actor=actor)
            self.schedule.redrive_effects(cur, instance_id, now)
            fresh = self.store.get_instance(cur, instance_id)
        return snapshot_from_row(self.db, fresh, self._model_of(row[MACHINE]))

    def token(self: Engine, instance_id: str, event: str, ttl: Duration = "7d") -> str:  # type: ignore[misc]
        """A signed callback token that lets its bearer send `event` once, while the instance
        stays in its current state entry, until `ttl` has passed."""
        key = tokens.resolve_secret(self._secret)
        from statemachines.engine import _check_id, check_not_reserved  # engine imports this module

        _check_id(instance_id)
        if isinstance(event, str):
            check_not_reserved(event)
        with self._read() as cur:  # one read: the entry seq comes with the state
            row = self.store.get_instance(cur, instance_id)
        if row is None:
            raise errors.InstanceNotFound(instance_id)
        if row[STATUS] != ACTIVE:
            raise errors.InstanceClosed(instance_id, row[STATUS], row[STATE])
        allowed = self._compiled(row[MACHINE]).allowed.get(row[STATE], [])
        if event not in allowed:
            raise errors.EventNotAllowed(instance_id, row[STATE], event, allowed)
        expires = deadline(self.clock.now(), ttl)
        return tokens.issue(key, instance_id, event, row[ENTERED_SEQ], expires)

    def send_token(  # type: ignore[misc]
        self: Engine, token: str, payload: Any = None, *, actor: str | None = None
    ) -> Snapshot:
        """Apply the event a token was issued for; forged, expired, stale or reused tokens raise
        `TokenInvalid` and change nothing."""
        key = tokens.resolve_secret(self._secret)
        now = self.clock.now()
        claims = tokens.verify(key, token, now)
        try:
            with self._tx() as cur:
                row = self.store.lock_instance(cur, claims.instance_id, None)
                if row is None:
                    raise errors.TokenInvalid("its instance does not exist")
                self.schedule.use_token(cur, claims.nonce, claims.instance_id, now)
                if row[STATUS] != ACTIVE or row[ENTERED_SEQ] != claims.entered_seq:
                    raise errors.TokenInvalid("stale: the instance has left the state it was issued in")
                cm = self._compiled(row[MACHINE])
                outcome = self._applier.apply(
                    cur, cm, row, claims.event, payload, None, actor or "token", now
                )
        except Conflict:
            raise errors.TokenInvalid("already used") from None
        if isinstance(outcome, errors.EventRejected):
            raise outcome
        return outcome
