"""Effects: an outbox written with the state entry, run after commit, at least once, with retries.

The backoff schedule is checked against a ManualClock: an attempt never runs before its due time
(`initial * backoff**(k-1)` capped at `max`, plus up to `jitter` of itself, never less).
"""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from blocking import wait_until_blocked_or_done

import statemachines.effects as effects_mod
from statemachines import Effect, Retry, machine, state, transition
from statemachines.effects import backoff_delay, run_due_effects

US = timedelta(microseconds=1)


class Provider:
    """An effect function that fails its first `fail` calls (all of them when None)."""

    def __init__(self, fail: int | None = 0, result: object = None) -> None:
        self.fail = fail
        self.result = result
        self.calls: list[tuple[str, int, str, str, str]] = []

    def __call__(self, ctx: dict, call) -> object:
        self.calls.append((call.key, call.attempt, call.instance_id, call.name, call.state))
        if self.fail is None or len(self.calls) <= self.fail:
            raise ConnectionError(f"provider down (call {len(self.calls)})")
        return self.result if self.result is not None else {"attempt": call.attempt, "key": call.key}


def payment_machine(fn, retry: Retry | None = None, *, error_handler: bool = True, lease: str = "5m"):
    fn.__name__ = "charge"
    on = {"done.charge": transition("paid", action=record_result), "CANCEL": "cancelled"}
    if error_handler:
        on["error.charge"] = transition("declined", action=record_error)
    states = {
        "charging": state(effect=Effect(fn, retry=retry or Retry(), lease=lease), on=on),
        "paid": state(final=True),
        "cancelled": state(final=True),
    }
    if error_handler:
        states["declined"] = state(final=True)
    return machine("pay", initial="charging", states=states)


def record_result(ctx: dict, event) -> None:
    ctx["result"] = event.payload


def record_error(ctx: dict, event) -> None:
    ctx["error"] = event.payload


def test_effect_runs_after_commit_not_when_its_state_is_entered(engine):
    fn = Provider()
    engine.register(payment_machine(fn))
    engine.start("pay", instance_id="p1")
    assert fn.calls == []
    [pending] = engine.status("p1").effects
    assert (pending.name, pending.status, pending.attempt) == ("charge", "pending", 0)
    assert engine.run_due() == 1
    assert len(fn.calls) == 1


def test_effect_call_carries_key_attempt_instance_name_and_state(engine):
    fn = Provider()
    engine.register(payment_machine(fn))
    engine.start("pay", instance_id="p1")
    engine.run_due()
    assert fn.calls == [('["p1",1,"charge"]', 1, "p1", "charge", "charging")]


def test_done_event_payload_is_the_return_value(engine):
    fn = Provider(result={"charge_id": "ch_1", "amount": [1, 2.5, None]})
    engine.register(payment_machine(fn))
    engine.start("pay", instance_id="p1")
    engine.run_due()
    snap = engine.get("p1")
    assert (snap.state, snap.context) == ("paid", {"result": {"charge_id": "ch_1", "amount": [1, 2.5, None]}})
    last = engine.history("p1")[-1]
    assert (last.event, last.payload, last.actor) == ("done.charge", fn.result, "effect")


def test_effect_result_without_a_done_transition_is_recorded_without_moving(engine):
    def ping(ctx, call):
        return "pong"

    engine.register(
        machine("quiet", initial="a", states={"a": state(effect=Effect(ping), on={"GO": "b"}), "b": state()})
    )
    engine.start("quiet", instance_id="q1")
    assert engine.run_due() == 1
    assert engine.get("q1").state == "a"
    assert engine.status("q1").effects == []  # done: no longer pending
    assert engine.get("q1").version == 1
    last = engine.history("q1")[-1]
    assert (last.event, last.outcome, last.source, last.target, last.payload) == (
        "done.ping", "recorded", "a", "a", "pong",
    )  # fmt: skip


def test_effect_armed_by_a_timer_runs_in_the_same_run_due(engine, clock):
    fn = Provider()
    fn.__name__ = "charge"
    engine.register(
        machine(
            "later",
            initial="waiting",
            states={
                "waiting": state(after={"1h": "charging"}),
                "charging": state(effect=Effect(fn), on={"done.charge": "paid"}),
                "paid": state(final=True),
            },
        )
    )
    engine.start("later", instance_id="l1")
    clock.advance("1h")
    assert engine.run_due() == 2  # one timer fired + one effect attempt
    assert engine.get("l1").state == "paid"


def test_backoff_schedule_is_exact_without_jitter_and_never_early(engine, clock):
    fn = Provider(fail=3)
    retry = Retry(max_attempts=5, initial="10s", backoff=3.0, max="60s", jitter=0)
    engine.register(payment_machine(fn, retry))
    t0 = clock.now()
    engine.start("pay", instance_id="p1")
    engine.run_due()
    expected_delays = [10, 30, 60]  # 10, 10*3, min(10*9, 60)
    due = t0
    for k, delay in enumerate(expected_delays, start=2):
        due += timedelta(seconds=delay)
        assert engine.status("p1").effects[0].next_at == due
        clock.set(due - US)
        assert engine.run_due() == 0, f"attempt {k} ran before its due time"
        clock.set(due)
        assert engine.run_due() == 1
        assert fn.calls[-1][1] == k
    started = [a.started_at - t0 for a in engine.effect_attempts("p1")]
    assert started == [timedelta(seconds=s) for s in (0, 10, 40, 100)]
    assert engine.get("p1").state == "paid"


def test_backoff_with_jitter_is_never_earlier_and_at_most_jitter_later(engine, clock):
    fn = Provider(fail=None)
    retry = Retry(max_attempts=8, initial="4s", backoff=2.0, max="40s", jitter=0.5)
    engine.register(payment_machine(fn, retry))
    engine.start("pay", instance_id="p1")
    engine.run_due()
    for failures in range(1, 8):
        base = min(4 * 2 ** (failures - 1), 40)
        pending = engine.status("p1").effects[0]
        delay = (pending.next_at - clock.now()).total_seconds()
        assert base <= delay <= base * 1.5, (failures, delay)
        clock.set(pending.next_at - US)
        assert engine.run_due() == 0
        clock.set(pending.next_at)
        assert engine.run_due() == 1
    assert len(fn.calls) == 8
    assert engine.get("p1").state == "declined"


def test_backoff_delay_caps_at_max_before_jitter_and_jitter_only_adds():
    retry = Retry(initial="1s", backoff=2.0, max="5s", jitter=0.2)

    class Fixed(random.Random):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def random(self) -> float:
            return self.value

    assert [backoff_delay(retry, k, Fixed(0.0)).total_seconds() for k in range(1, 6)] == [1, 2, 4, 5, 5]
    assert backoff_delay(retry, 10, Fixed(0.999999)).total_seconds() == pytest.approx(6.0, abs=1e-4)
    rng = random.Random(7)
    for k in range(1, 20):
        base = min(2 ** (k - 1), 5)
        assert base <= backoff_delay(retry, k, rng).total_seconds() <= base * 1.2


def test_exhaustion_sends_the_error_event_when_the_state_handles_it(engine, clock):
    fn = Provider(fail=None)
    engine.register(payment_machine(fn, Retry(max_attempts=3, initial="1s", jitter=0)))
    engine.start("pay", instance_id="p1")
    for _ in range(3):
        engine.run_due()
        clock.advance("1m")
    snap = engine.get("p1")
    assert (snap.state, snap.status) == ("declined", "completed")
    assert snap.context["error"] == {"error": "ConnectionError: provider down (call 3)", "attempts": 3}
    last = engine.history("p1")[-1]
    assert (last.event, last.outcome, last.actor) == ("error.charge", "applied", "effect")
    assert len(fn.calls) == 3


def test_exhaustion_without_an_error_handler_fails_the_instance_in_its_state(engine, clock):
    fn = Provider(fail=None)
    engine.register(payment_machine(fn, Retry(max_attempts=2, initial="1s", jitter=0), error_handler=False))
    engine.start("pay", instance_id="p1")
    engine.run_due()
    clock.advance("1s")
    engine.run_due()
    snap = engine.get("p1")
    assert (snap.state, snap.status, snap.version) == ("charging", "failed", 1)
    last = engine.history("p1")[-1]
    assert (last.event, last.outcome) == ("error.charge", "failed")
    assert "provider down" in last.reason
    [failed] = engine.status("p1").effects
    assert (failed.status, failed.attempt, failed.last_error) == (
        "failed", 2, "ConnectionError: provider down (call 2)",
    )  # fmt: skip
    clock.advance("1d")
    assert engine.run_due() == 0  # nothing retries a failed instance until `retry`


def test_every_attempt_is_recorded_with_its_error_and_duration(engine, clock):
    fn = Provider(fail=2)
    engine.register(payment_machine(fn, Retry(max_attempts=3, initial="1s", jitter=0)))
    engine.start("pay", instance_id="p1")
    for _ in range(3):
        engine.run_due()
        clock.advance("1m")
    attempts = engine.effect_attempts("p1")
    assert [(a.name, a.attempt, a.ok, a.error) for a in attempts] == [
        ("charge", 1, False, "ConnectionError: provider down (call 1)"),
        ("charge", 2, False, "ConnectionError: provider down (call 2)"),
        ("charge", 3, True, None),
    ]
    assert all(a.duration_ms >= 0 for a in attempts)


def test_expired_lease_is_retried_with_the_same_key_and_the_next_attempt(engine, clock):
    fn = Provider()
    engine.register(payment_machine(fn, lease="30s"))
    engine.start("pay", instance_id="p1")
    [claimed] = effects_mod.claim(engine.runtime, 10)  # a worker claims it, then dies: never finishes
    assert (claimed.key, claimed.attempt) == ('["p1",1,"charge"]', 1)
    assert engine.status("p1").effects[0].status == "running"
    clock.advance("30s")
    assert engine.run_due() == 1
    assert fn.calls == [('["p1",1,"charge"]', 2, "p1", "charge", "charging")]
    assert engine.get("p1").state == "paid"


def test_running_effect_is_not_retried_while_its_lease_holds(engine, clock):
    fn = Provider()
    engine.register(payment_machine(fn, lease="30s"))
    engine.start("pay", instance_id="p1")
    effects_mod.claim(engine.runtime, 10)
    clock.advance(timedelta(seconds=30) - US)
    assert engine.run_due() == 0
    assert fn.calls == []


def test_effect_taken_over_after_its_claim_lease_ran_out_is_skipped_by_the_first_worker(engine, clock):
    fn = Provider()
    engine.register(payment_machine(fn, lease="30s"))
    engine.start("pay", instance_id="p1")
    [slow] = effects_mod.claim(engine.runtime, 10)  # worker A claims, then stalls before starting
    clock.advance("31s")
    assert engine.run_due() == 1  # worker B takes it over and completes: paid
    assert effects_mod.run_claimed(engine.runtime, slow) == 0  # worker A wakes up: no longer its to run
    assert [c[1] for c in fn.calls] == [2]
    assert engine.get("p1").state == "paid"


def test_late_finish_of_an_expired_lease_is_ignored(engine, clock):
    calls: list[int] = []

    def charge(ctx: dict, call) -> dict:
        calls.append(call.attempt)
        if call.attempt == 1:  # worker A stalls mid-effect past its lease; worker B takes over
            clock.advance("31s")
            assert engine.run_due() == 1
        return {"attempt": call.attempt}

    engine.register(payment_machine(charge, lease="30s"))
    engine.start("pay", instance_id="p1")
    assert engine.run_due() == 1  # worker A's attempt 1 finishes last, and is ignored
    assert calls == [1, 2]
    assert engine.get("p1").context == {"result": {"attempt": 2}}
    assert [r.event for r in engine.history("p1")] == ["start", "done.charge"]


def test_pending_effect_is_cancelled_when_its_state_is_left(engine, clock):
    fn = Provider()
    engine.register(payment_machine(fn))
    engine.start("pay", instance_id="p1")
    engine.send("p1", "CANCEL")
    assert engine.status("p1").effects == []
    clock.advance("1d")
    assert engine.run_due() == 0
    assert fn.calls == []


def test_effect_cancelled_between_claim_and_start_does_not_run(engine):
    fn = Provider()
    engine.register(payment_machine(fn))
    engine.start("pay", instance_id="p1")
    [claimed] = effects_mod.claim(engine.runtime, 10)
    engine.send("p1", "CANCEL")  # the state is left before the worker gets to the effect
    assert effects_mod.run_claimed(engine.runtime, claimed) == 0
    assert fn.calls == []
    assert [r.event for r in engine.history("p1")] == ["start", "CANCEL"]


def test_effect_finishing_after_its_state_was_left_sends_nothing(engine):
    def charge(ctx: dict, call) -> dict:
        engine.send("p1", "CANCEL")  # the state is left while the effect is in flight
        return {"charged": True}

    engine.register(payment_machine(charge))
    engine.start("pay", instance_id="p1")
    assert engine.run_due() == 1
    assert engine.get("p1").state == "cancelled"
    assert [r.event for r in engine.history("p1")] == ["start", "CANCEL"]


def test_retry_pending_is_cancelled_when_the_state_is_left(engine, clock):
    fn = Provider(fail=None)
    engine.register(payment_machine(fn, Retry(max_attempts=5, initial="1m", jitter=0)))
    engine.start("pay", instance_id="p1")
    engine.run_due()
    engine.send("p1", "CANCEL")
    clock.advance("1d")
    assert engine.run_due() == 0
    assert len(fn.calls) == 1


def test_external_self_transition_restarts_the_effect_with_a_new_key(engine):
    fn = Provider(fail=None)
    fn.__name__ = "sync"
    engine.register(
        machine(
            "resync",
            initial="syncing",
            states={
                "syncing": state(
                    effect=Effect(fn, retry=Retry(max_attempts=5, initial="1h", max="1d")),
                    on={"AGAIN": "syncing"},
                )
            },
        )
    )
    engine.start("resync", instance_id="r1")
    engine.run_due()
    engine.send("r1", "AGAIN")
    [pending] = engine.status("r1").effects
    assert (pending.status, pending.attempt) == ("pending", 0)
    engine.run_due()
    assert [(c[0], c[1]) for c in fn.calls] == [('["r1",1,"sync"]', 1), ('["r1",2,"sync"]', 1)]


def test_failing_done_handler_fails_the_instance_and_retry_delivers_the_kept_result(engine):
    broken = [True]

    def store_receipt(ctx: dict, event) -> None:
        if broken[0]:
            raise RuntimeError("receipts table full")
        ctx["receipt"] = event.payload

    fn = Provider()
    fn.__name__ = "charge"
    engine.register(
        machine(
            "receipt",
            initial="charging",
            states={
                "charging": state(
                    effect=Effect(fn), on={"done.charge": transition("paid", action=store_receipt)}
                ),
                "paid": state(final=True),
            },
        )
    )
    engine.start("receipt", instance_id="r1")
    engine.run_due()
    assert engine.get("r1").status == "failed"
    assert engine.history("r1")[-1].outcome == "failed"
    [held] = engine.status("r1").effects
    assert (held.name, held.status) == ("charge", "held")
    broken[0] = False
    engine.retry("r1")
    assert engine.run_due() == 1
    snap = engine.get("r1")
    assert (snap.state, snap.status) == ("paid", "completed")
    assert [(c[0], c[1]) for c in fn.calls] == [('["r1",1,"charge"]', 1)]  # not run again
    assert snap.context == {"receipt": {"attempt": 1, "key": '["r1",1,"charge"]'}}


def test_stopping_worker_gives_back_effects_it_claimed_but_did_not_start(engine):
    fn = Provider()
    engine.register(payment_machine(fn))
    for i in range(3):
        engine.start("pay", instance_id=f"p{i}")
    asked = []

    def stop_after_first() -> bool:
        asked.append(1)
        return len(asked) > 1

    assert run_due_effects(engine.runtime, 10, stop_after_first) == 1
    statuses = sorted((e.status, e.attempt) for i in range(3) for e in engine.status(f"p{i}").effects)
    assert statuses == [("pending", 0), ("pending", 0)]
    assert engine.run_due() == 2
    assert sorted(c[1] for c in fn.calls) == [1, 1, 1]


def test_send_leaving_the_state_while_the_effect_finishes_never_deadlocks(engine):
    """The send holds the instance (its action runs) while a worker records the effect's result.

    Both must lock the instance before the effect row, or PostgreSQL aborts one of them (the
    send with `StorageUnavailable: deadlock detected`)."""
    in_action, release = threading.Event(), threading.Event()

    def slow_cancel(ctx: dict, event) -> None:
        in_action.set()
        assert release.wait(20), "the worker never tried to record the effect"

    fn = Provider()
    fn.__name__ = "charge"
    engine.register(
        machine(
            "race",
            initial="charging",
            states={
                "charging": state(
                    effect=Effect(fn),
                    on={"done.charge": "paid", "CANCEL": transition("cancelled", action=slow_cancel)},
                ),
                "paid": state(final=True),
                "cancelled": state(final=True),
            },
        )
    )
    engine.start("race", instance_id="r1")
    [claimed] = effects_mod.claim(engine.runtime, 10)
    outcome: dict[str, object] = {}

    def send() -> None:
        try:
            outcome["send"] = engine.send("r1", "CANCEL").state
        except Exception as exc:  # reported below
            outcome["send"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    assert in_action.wait(10)
    worker = threading.Thread(target=effects_mod.run_claimed, args=(engine.runtime, claimed))
    worker.start()
    wait_until_blocked_or_done(engine.db.url, worker)  # the send holds the instance until then
    release.set()
    sender.join(10)
    worker.join(10)
    assert outcome["send"] == "cancelled"
    assert [r.event for r in engine.history("r1")] == ["start", "CANCEL"]
