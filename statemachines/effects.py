"""Effects: work that talks to the outside world, run after commit, at least once.

An effect row is written in the transaction that enters its state (an outbox). A worker claims
it (status `running`, a lease), calls `fn(context, call)` outside any transaction, then records
the attempt and its consequence in one transaction: success sends `done.<name>`, a failure is
retried on the backoff schedule, exhaustion sends `error.<name>` or fails the instance.
A worker that dies mid-effect simply never finishes; the lease expires and another worker
claims the effect again with the same idempotency key.

Leases: the claim takes a batch with a first lease each, and each effect's lease starts again
right before it runs (`renew_lease`), so an effect late in a long batch still has its whole lease;
one taken over or cancelled meanwhile is skipped. A result that arrives while the instance is
`failed` is kept (`held`) and delivered after `engine.retry`, never dropped. A row a worker cannot
process (its lease overflows, its machine no longer declares it...) fails alone: the other rows run.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from persistence import saga_store
from statemachines import compensation, effect_audit, telemetry
from statemachines.apply import apply_or_fail
from statemachines.durations import MAX_DURATION, later, parse_duration
from statemachines.logs import action
from statemachines.records import ACTIVE, FAILED
from statemachines.rows import DEF_VERSION, LAST_SEQ, MACHINE, STATUS, configuration_of, holds_entry
from statemachines.runtime import Runtime, is_storage_failure
from statemachines.spec import EffectSpec, RetrySpec

if TYPE_CHECKING:
    from statemachines.compiled import CompiledMachine

EFFECT_ACTOR = "effect"
DEFAULT_LEASE = "5m"  # for a row whose effect its machine no longer declares
HELD = "held"  # succeeded while the instance was failed: result kept, delivered after `retry`
HELD_NOTE = "result kept: the instance was failed when it arrived; delivered after retry"
MIGRATED_NOTE = "result kept: the instance was migrated to a version not registered here while it ran"
log = logging.getLogger("statemachines.worker")
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class EffectCall:
    """The second argument of an effect function."""

    key: str  # idempotency key of this state entry's effect; see `apply.effect_key`
    attempt: int  # 1 for the first attempt; counts every attempt, redrives included
    instance_id: str
    name: str
    state: str


@dataclass(frozen=True, slots=True)
class ClaimedEffect:
    effect_id: int
    instance_id: str
    machine: str
    entered_seq: int
    state: str
    name: str
    key: str
    attempt: int  # the number of the attempt now being made
    round_start: int
    context_json: str
    lease: timedelta
    kept_result: str | None  # a result kept while the instance was failed: deliver, do not run
    trace: str | None = None  # W3C traceparent of the span that armed it: its attempts join that trace
    version: str | None = None  # the instance's definition version when claimed: the rules it runs on
    #: A compensation (statemachines/compensation.py): the (state, name) of the effect it undoes.
    undoes: tuple[str, str] | None = None


def backoff_delay(retry: RetrySpec, failures: int, rng: random.Random | None = None) -> timedelta:
    """Delay before the next attempt after `failures` failed attempts in this round.

    Exponential (`initial * backoff**(failures-1)`, capped at `max`), plus up to `jitter` of
    itself on top: jitter only ever delays, so an attempt never runs before its schedule.
    """
    cap = parse_duration(retry.max).total_seconds()
    try:
        base = min(parse_duration(retry.initial).total_seconds() * retry.backoff ** max(failures - 1, 0), cap)
    except OverflowError:  # backoff ** failures past the largest float: long past the cap
        base = cap
    extra = base * retry.jitter * (rng or random).random()
    return timedelta(seconds=min(base + extra, MAX_DURATION.total_seconds()))


def effect_spec(cm: CompiledMachine, state: str, name: str) -> EffectSpec | None:
    return next((e for e in cm.effects.get(state, []) if e.name == name), None)


def run_due_effects(rt: Runtime, limit: int = 20, should_stop: Callable[[], bool] | None = None) -> int:
    """Claim up to `limit` due effects, run each once; returns the number of attempts made
    (results delivered included, effects skipped because they were no longer ours excluded).

    `should_stop` is asked between effects; claimed effects not yet started are given back."""
    claimed = claim(rt, limit)
    done = 0
    for position, item in enumerate(claimed):
        if should_stop is not None and should_stop():
            with rt.transaction() as cur:
                for rest in claimed[position:]:
                    rt.schedule.release_effect(cur, rest.effect_id, rest.attempt, rest.kept_result is None)
            return done
        try:
            done += run_claimed(rt, item)
        except Exception as exc:
            if is_storage_failure(exc):
                raise
            _quarantine(rt, item.effect_id, item.instance_id, item.name, exc)
            done += 1
    return done


def claim(rt: Runtime, limit: int) -> list[ClaimedEffect]:
    """Claim up to `limit` due effects (status `running`, a first lease each) in one transaction;
    a row that cannot even be claimed (its lease overflows...) is failed alone."""
    now = rt.clock.now()
    out: list[ClaimedEffect] = []
    bad: list[tuple[int, str, str, Exception]] = []
    with rt.transaction() as cur:
        for row in rt.schedule.claim_effects(cur, now, limit, rt.served_versions()):
            eid, iid, machine, seq, state, name, key, attempt, start, ctx, kept, trace, version, *undone = row
            undoes = (undone[0], undone[1]) if undone[0] is not None else None
            try:
                cm = rt.compiled(machine, version)
                spec = effect_spec(cm, *undoes) if undoes else effect_spec(cm, state, name)
                lease = parse_duration(spec.lease if spec else DEFAULT_LEASE)
                until = later(now, lease)
            except Exception as exc:  # this row only: the others of the batch still run
                if is_storage_failure(exc):
                    raise
                bad.append((eid, iid, name, exc))
                continue
            if kept is None:
                rt.schedule.start_attempt(cur, eid, until, now)
                attempt += 1
            else:
                rt.schedule.start_delivery(cur, eid, until, now)
            out.append(
                ClaimedEffect(
                    eid, iid, machine, seq, state, name, key, attempt, start, ctx, lease, kept, trace,
                    version, undoes,
                )
            )
    for eid, iid, name, exc in bad:
        _quarantine(rt, eid, iid, name, exc)
    return out


def _start(rt: Runtime, item: ClaimedEffect) -> bool:
    """The effect's own lease starts now; False (and the claim given back) when it is no
    longer ours to run: taken over after the claim's lease ran out, cancelled, or its instance
    failed or left the state meanwhile."""
    now = rt.clock.now()
    with rt.transaction() as cur:
        if rt.schedule.renew_lease(cur, item.effect_id, item.attempt, later(now, item.lease), now):
            return True
        rt.schedule.release_effect(cur, item.effect_id, item.attempt, item.kept_result is None)
    facts = action("effect", item.machine, item.instance_id, item.name, "skipped", attempt=item.attempt)
    log.info("effect %s on %s is no longer ours to run; skipped", item.name, item.instance_id, extra=facts)
    return False


def run_claimed(rt: Runtime, item: ClaimedEffect) -> int:
    """Run (or deliver) one claimed effect; returns 1, or 0 when it was skipped."""
    if not _start(rt, item):
        return 0
    attributes = {"machine": item.machine, "instance": item.instance_id, "event": item.name,
                  "source": item.state, "attempt": item.attempt}  # fmt: skip
    with telemetry.span("effect", item.trace, **attributes) as span:
        error = _run(rt, item)
        span.set(outcome="ok" if error is None else "failed", error=error)
    return 1


def _run(rt: Runtime, item: ClaimedEffect) -> str | None:
    """Run (or deliver) the effect and record the attempt and its consequence; returns the
    effect's error, None when it succeeded."""
    cm = rt.compiled(item.machine, item.version)
    # A compensation runs under the declaration of the effect it undoes (retry, lease).
    spec = effect_spec(cm, *item.undoes) if item.undoes else effect_spec(cm, item.state, item.name)
    if item.kept_result is not None:
        _finish(rt, cm, spec, item, None, 0.0, item.kept_result, None)
        return None
    started = rt.clock.now()
    t0 = time.perf_counter()
    result_json: str | None = None
    error: str | None = None
    try:
        if spec is None:
            raise LookupError(f"effect {item.name!r} is no longer declared in state {item.state!r}")
        if item.undoes is not None and spec.compensate is None:
            raise LookupError(f"effect {item.undoes[1]!r} no longer declares a compensation")
        fn = cm.definition.callables[spec.compensate if item.undoes is not None else spec.fn]
        ctx = (
            cm.model.model_validate_json(item.context_json)
            if cm.model is not None
            else json.loads(item.context_json)
        )
        result = fn(ctx, EffectCall(item.key, item.attempt, item.instance_id, item.name, item.state))
        result_json = json.dumps(result, separators=(",", ":"), allow_nan=False)
    except Exception as exc:  # the effect's own failure: recorded and retried, never raised
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
    duration_ms = (time.perf_counter() - t0) * 1000
    facts = action("effect", item.machine, item.instance_id, item.name, "ok" if error is None else "failed",
                   attempt=item.attempt, duration_ms=round(duration_ms, 3), error=error)  # fmt: skip
    log.info(
        "effect %s attempt %d on %s: %s (%.1f ms)", item.name, item.attempt, item.instance_id,
        "ok" if error is None else error, duration_ms, extra=facts,
    )  # fmt: skip
    _finish(rt, cm, spec, item, started, duration_ms, result_json, error)
    return error


def _finish(
    rt: Runtime,
    cm: CompiledMachine,
    spec: EffectSpec | None,
    item: ClaimedEffect,
    started: datetime | None,
    duration_ms: float,
    result_json: str | None,
    error: str | None,
) -> None:
    """Record the attempt (`started` None: a kept result delivered, no attempt made) and its
    consequence, in one transaction."""
    now = rt.clock.now()
    sched = rt.schedule
    with rt.transaction() as cur:
        # The instance first, as everywhere: `send` locks it, then cancels its effects.
        row = rt.store.lock_instance(cur, item.instance_id, None)
        if started is not None and row is not None:  # (an instance pruned meanwhile keeps nothing)
            ok = error is None
            sched.record_attempt(
                cur, item.effect_id, item.attempt, item.instance_id, started, duration_ms, ok, error
            )
        current = sched.lock_effect(cur, item.effect_id)
        if current is None or current[0] != "running" or current[1] != item.attempt:
            return  # cancelled meanwhile, or our lease expired and another worker took over
        if error is None:
            if row is not None and row[DEF_VERSION] != item.version:
                # Migrated while the effect ran: its result is delivered on the instance's new
                # version, by a worker that has it registered (a kept result is not run again).
                if (row[MACHINE], row[DEF_VERSION]) not in rt.versions:
                    sched.finish_effect(cur, item.effect_id, "pending", now, MIGRATED_NOTE, result_json, now)
                    return
                cm = rt.compiled(row[MACHINE], row[DEF_VERSION])
            if row is not None and row[STATUS] == FAILED and holds_entry(row, item.state, item.entered_seq):
                # Failed meanwhile (another effect, a timer): keep the result for `retry`.
                sched.finish_effect(cur, item.effect_id, HELD, now, HELD_NOTE, result_json, now)
                return
            sched.finish_effect(cur, item.effect_id, "done", now, None, result_json, now)
            if row is not None:  # the order of success, which compensations reverse
                saga_store.for_database(rt.db).set_done_seq(cur, item.effect_id, row[LAST_SEQ] + 1)
            if item.undoes is not None:
                compensation.succeeded(rt, cur, cm, item, json.loads(result_json or "null"), now)
                return
            if _notify(rt, cur, cm, item, f"done.{item.name}", json.loads(result_json or "null"), now):
                # The done.<name> transition failed the instance: keep the result, so that
                # `retry` delivers it (the effect is not run again).
                handler_error = f"done.{item.name} could not be applied; see the instance history"
                sched.finish_effect(cur, item.effect_id, HELD, now, handler_error, result_json, now)
            return
        retry = spec.retry if spec else RetrySpec(max_attempts=1)
        failures = item.attempt - item.round_start
        if failures < retry.max_attempts:
            next_at = later(now, backoff_delay(retry, failures))
            sched.finish_effect(cur, item.effect_id, "pending", next_at, error, None, now)
            return
        payload = {"error": error, "attempts": failures}
        if item.undoes is not None:
            sched.finish_effect(cur, item.effect_id, "failed", now, error, None, now)
            compensation.exhausted(rt, cur, item, payload, now)
            return
        _notify(rt, cur, cm, item, f"error.{item.name}", payload, now, fail_unhandled=True)
        # After the event: a transition it took away from the state cancels the entry's rows,
        # and this one failed (not cancelled); `failed` rows of a state left are never redriven.
        sched.finish_effect(cur, item.effect_id, "failed", now, error, None, now)


def _notify(
    rt: Runtime,
    cur: Any,
    cm: CompiledMachine,
    item: ClaimedEffect,
    event: str,
    payload: Any,
    now: datetime,
    *,
    fail_unhandled: bool = False,
) -> bool:
    """Send `done.<name>`/`error.<name>` if the instance is still in the entry that armed it;
    a success its state has no transition for is recorded (outcome `recorded`), so every
    effect's final outcome is in the history.

    Returns True when this put the instance into status `failed`."""
    row = rt.store.lock_instance(cur, item.instance_id, None)
    if row is None or row[STATUS] != ACTIVE or not holds_entry(row, item.state, item.entered_seq):
        return False
    configuration = configuration_of(row)
    handled = cm.handles(item.state, event) if configuration is None else cm.handlers(configuration, event)
    if handled:
        return apply_or_fail(rt.applier, cur, cm, row, event, payload, EFFECT_ACTOR, now) is None
    if fail_unhandled:
        reason = f"effect {item.name!r} failed {payload['attempts']} times: {payload['error']}"
        rt.applier.fail(cur, row, event, reason, now, payload)
        return True
    effect_audit.record(rt, cur, item.instance_id, event, payload, now, actor=EFFECT_ACTOR)
    return False


def _quarantine(rt: Runtime, effect_id: int, instance_id: str, name: str, exc: Exception) -> None:
    """An effect row the worker cannot process: marked `failed` and its instance failed with the
    reason (`retry` redrives it once the cause is fixed), so it is neither lost nor retried in a
    hot loop. Never raises for the row's sake: the worker goes on with the others."""
    reason = f"effect {name!r} could not be processed by the worker: {type(exc).__name__}: {exc}"
    reason = reason[:MAX_ERROR_LENGTH]
    facts = action("effect", None, instance_id, name, "error", error=reason)
    log.error("effect %s on %s: %s", name, instance_id, reason, exc_info=exc, extra=facts)
    now = rt.clock.now()
    try:
        with rt.transaction() as cur:
            row = rt.store.lock_instance(cur, instance_id, None)
            failed = rt.schedule.fail_effect(cur, effect_id, reason, now)
            if failed and row is not None and row[STATUS] == ACTIVE:
                rt.applier.fail(cur, row, f"error.{name}", reason, now)
        return
    except Exception as again:
        if is_storage_failure(again):
            raise
        log.error("effect %s on %s: failing its instance failed too: %s", name, instance_id, again)
    with rt.transaction() as cur:  # at least take the row out of the claims
        rt.schedule.fail_effect(cur, effect_id, reason, now)
