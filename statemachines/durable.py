"""Durable time, the operator's side: run due work, see what an instance waits on, redrive it.

Functions of the `Runtime`; `Engine.run_due/status/effect_attempts/retry` delegate here after
checking their arguments, so the engine stays a facade (the story of one event is `sending.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from statemachines import errors
from statemachines.checks import RESERVED_PREFIXES
from statemachines.effects import run_due_effects
from statemachines.records import ACTIVE, FAILED, PendingEffect, PendingTimer, Snapshot, Status
from statemachines.rows import DEF_VERSION, MACHINE, STATUS, snapshot_from_row
from statemachines.runtime import Runtime
from statemachines.sends import deliver_due_sends
from statemachines.spec import MachineSpec
from statemachines.timers import fire_due_timers

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


def run_due(rt: Runtime, batch: int) -> int:
    """Fire due timers, deliver due sends (SCXML `<send>`) and run due effects until nothing is
    due at the clock's now.

    Returns timers fired plus effect attempts made. Work that becomes due during the call
    (an effect armed by a timer it fired) runs in the same call.
    """
    total = 0
    for _ in range(MAX_RUN_DUE_ROUNDS):
        done = fire_due_timers(rt, batch) + deliver_due_sends(rt, batch) + run_due_effects(rt, batch)
        total += done
        if done == 0:
            break
    return total


def status(rt: Runtime, instance_id: str) -> Status:
    """The snapshot plus `waiting_on`: events accepted now, pending timers and effects.

    Only rows of the state entry the instance is in are listed: a row of a state left is
    nothing the instance waits on, whatever its status."""
    with rt.read() as cur:
        row = rt.store.get_instance(cur, instance_id)
        if row is None:
            raise errors.InstanceNotFound(instance_id)
        timers = rt.schedule.timers_of(cur, instance_id)
        effects = rt.schedule.effects_of(cur, instance_id)
        spec_text = None
        pinned = (row[MACHINE], row[DEF_VERSION])
        if pinned not in rt.versions:  # not registered here: the stored definition knows
            spec_text = rt.store.definition_spec(cur, row[MACHINE], row[DEF_VERSION])
    snap = snapshot_from_row(rt.db, row, rt.model_of(row[MACHINE], row[DEF_VERSION]))
    events: list[str] = []
    if snap.status == ACTIVE:
        compiled = rt.versions.get(pinned)
        if compiled is not None:
            events = (
                compiled.allowed_events(snap.configuration)
                if compiled.is_chart
                else compiled.allowed.get(snap.state, [])
            )
        elif spec_text is not None:
            events = _stored_events(MachineSpec.model_validate_json(spec_text), snap.configuration)
    return Status(
        snap,
        # done.*/error.* come from effects (listed below), and `send` refuses them
        [e for e in events if not e.startswith(RESERVED_PREFIXES)],
        [PendingTimer(e, s, rt.db.from_ts(at)) for e, s, at in timers],
        [
            PendingEffect(n, s, st, a, rt.db.from_ts(nx) if nx is not None else None, err)
            for n, s, st, a, nx, err in effects
        ],
    )


def _stored_events(spec: MachineSpec, configuration: tuple[str, ...]) -> list[str]:
    """Events the active states (and their ancestors) declare, from a stored spec."""
    active = {path.rsplit(".", depth)[0] for path in configuration for depth in range(path.count(".") + 1)}
    events: set[str] = set()
    for path, st in spec.walk():
        if path in active:
            events.update(st.on)
    return sorted(events)


def effect_attempts(rt: Runtime, instance_id: str) -> list[EffectAttempt]:
    """Every effect attempt of an instance, with its duration and error."""
    with rt.read() as cur:
        rows = rt.schedule.attempts_of(cur, instance_id)
    return [
        EffectAttempt(n, a, rt.db.from_ts(at), float(ms), bool(ok), err) for n, a, at, ms, ok, err in rows
    ]


def retry(rt: Runtime, instance_id: str, actor: str | None) -> Snapshot:
    """Redrive a `failed` instance: back to `active`, failed effects re-armed now, results kept
    while it was failed queued for delivery, due timers fire again; audited (`retried`)."""
    now = rt.clock.now()
    with rt.transaction() as cur:
        row = rt.store.lock_instance(cur, instance_id, None)
        if row is None:
            raise errors.InstanceNotFound(instance_id)
        if row[STATUS] != FAILED:
            raise errors.InvalidArgument(
                f"instance {instance_id!r} is {row[STATUS]}, not failed: nothing to retry"
            )
        rt.applier.set_status(cur, row, ACTIVE, "retry", RETRIED_OUTCOME, now, actor=actor)
        rt.schedule.redrive_effects(cur, instance_id, now)
        fresh = rt.store.get_instance(cur, instance_id)
    return snapshot_from_row(rt.db, fresh, rt.model_of(row[MACHINE], row[DEF_VERSION]))
