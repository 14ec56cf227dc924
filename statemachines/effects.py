"""Effects: work that talks to the outside world, run after commit, at least once.

An effect row is written in the transaction that enters its state (an outbox). A worker claims
it (status `running`, a lease), calls `fn(context, call)` outside any transaction, then records
the attempt and its consequence in one transaction: success sends `done.<name>`, a failure is
retried on the backoff schedule, exhaustion sends `error.<name>` or fails the instance.
A worker that dies mid-effect simply never finishes; the lease expires and another worker
claims the effect again with the same idempotency key.
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

from statemachines.apply import apply_or_fail
from statemachines.durations import MAX_DURATION, deadline, parse_duration
from statemachines.records import ACTIVE
from statemachines.rows import ENTERED_SEQ, STATUS
from statemachines.spec import EffectSpec, RetrySpec

if TYPE_CHECKING:
    from statemachines.compiled import CompiledMachine
    from statemachines.engine import Engine

EFFECT_ACTOR = "effect"
log = logging.getLogger("statemachines.worker")
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class EffectCall:
    """The second argument of an effect function."""

    key: str  # idempotency key: instance id + state entry seq + effect name
    attempt: int  # 1 for the first attempt; counts every attempt, redrives included
    instance_id: str
    name: str
    state: str


@dataclass(frozen=True, slots=True)
class _Claimed:
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


def run_due_effects(engine: Engine, limit: int = 20, should_stop: Callable[[], bool] | None = None) -> int:
    """Claim up to `limit` due effects, run each once; returns the number of attempts made.

    `should_stop` is asked between effects; claimed effects not yet started are given back."""
    claimed = _claim(engine, limit)
    for done, item in enumerate(claimed):
        if should_stop is not None and should_stop():
            with engine._tx() as cur:
                for rest in claimed[done:]:
                    engine.schedule.release_effect(cur, rest.effect_id, rest.attempt)
            return done
        _run(engine, item)
    return len(claimed)


def _claim(engine: Engine, limit: int) -> list[_Claimed]:
    now = engine.clock.now()
    out: list[_Claimed] = []
    with engine._tx() as cur:
        for row in engine.schedule.claim_effects(cur, now, limit, sorted(engine._machines)):
            eid, iid, machine, seq, state, name, key, attempt, round_start, ctx = row
            spec = effect_spec(engine._compiled(machine), state, name)
            engine.schedule.start_attempt(cur, eid, deadline(now, spec.lease if spec else "5m"), now)
            out.append(_Claimed(eid, iid, machine, seq, state, name, key, attempt + 1, round_start, ctx))
    return out


def _run(engine: Engine, item: _Claimed) -> None:
    cm = engine._compiled(item.machine)
    spec = effect_spec(cm, item.state, item.name)
    started = engine.clock.now()
    t0 = time.perf_counter()
    result_json: str | None = None
    error: str | None = None
    try:
        if spec is None:
            raise LookupError(f"effect {item.name!r} is no longer declared in state {item.state!r}")
        fn = cm.definition.callables[spec.fn]
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
    log.info(
        "effect %s attempt %d on %s: %s (%.1f ms)", item.name, item.attempt, item.instance_id,
        "ok" if error is None else error, duration_ms,
    )  # fmt: skip
    _finish(engine, cm, spec, item, started, duration_ms, result_json, error)


def _finish(
    engine: Engine,
    cm: CompiledMachine,
    spec: EffectSpec | None,
    item: _Claimed,
    started: datetime,
    duration_ms: float,
    result_json: str | None,
    error: str | None,
) -> None:
    now = engine.clock.now()
    sched = engine.schedule
    with engine._tx() as cur:
        # The instance first, as everywhere: `send` locks it, then cancels its effects.
        engine.store.lock_instance(cur, item.instance_id, None)
        sched.record_attempt(
            cur, item.effect_id, item.attempt, item.instance_id, started, duration_ms, error is None, error
        )
        current = sched.lock_effect(cur, item.effect_id)
        if current is None or current[0] != "running" or current[1] != item.attempt:
            return  # cancelled meanwhile, or our lease expired and another worker took over
        if error is None:
            sched.finish_effect(cur, item.effect_id, "done", now, None, result_json, now)
            if _notify(engine, cur, cm, item, f"done.{item.name}", json.loads(result_json or "null"), now):
                # The done.<name> transition failed the instance: mark the effect failed so that
                # `retry` runs it again (same key) and the result is delivered, not lost.
                handler_error = f"done.{item.name} could not be applied; see the instance history"
                sched.finish_effect(cur, item.effect_id, "failed", now, handler_error, result_json, now)
            return
        retry = spec.retry if spec else RetrySpec(max_attempts=1)
        failures = item.attempt - item.round_start
        if failures < retry.max_attempts:
            next_at = deadline(now, backoff_delay(retry, failures))
            sched.finish_effect(cur, item.effect_id, "pending", next_at, error, None, now)
            return
        sched.finish_effect(cur, item.effect_id, "failed", now, error, None, now)
        payload = {"error": error, "attempts": failures}
        _notify(engine, cur, cm, item, f"error.{item.name}", payload, now, fail_unhandled=True)


def _notify(
    engine: Engine,
    cur: Any,
    cm: CompiledMachine,
    item: _Claimed,
    event: str,
    payload: Any,
    now: datetime,
    *,
    fail_unhandled: bool = False,
) -> bool:
    """Send `done.<name>`/`error.<name>` if the instance is still in the entry that armed it.

    Returns True when this put the instance into status `failed`."""
    row = engine.store.lock_instance(cur, item.instance_id, None)
    if row is None or row[STATUS] != ACTIVE or row[ENTERED_SEQ] != item.entered_seq:
        return False
    if cm.handles(item.state, event):
        return apply_or_fail(engine._applier, cur, cm, row, event, payload, EFFECT_ACTOR, now) is None
    if fail_unhandled:
        reason = f"effect {item.name!r} failed {payload['attempts']} times: {payload['error']}"
        engine._applier.fail(cur, row, event, reason, now, payload)
        return True
    return False
