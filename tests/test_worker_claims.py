"""What a worker claims: only the machines it serves; and one row it cannot process never stops
the others (nor the worker): that row fails alone, with the reason, and is not retried in a loop.

The bad rows here are made by hand (a definition changed under the engine, text that is not
JSON) because `machine()` refuses such definitions: rows stored by older releases may not be.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from statemachines import Effect, Engine, Retry, machine, state
from statemachines.worker import Worker


class Calls:
    def __init__(self) -> None:
        self.instances: list[str] = []

    def __call__(self, ctx: dict, call) -> dict:
        self.instances.append(call.instance_id)
        return {"ok": True}


def effect_machine(name: str, calls: Calls):
    calls.__name__ = "work"
    return machine(
        name,
        initial="working",
        states={
            "working": state(effect=Effect(calls, retry=Retry(max_attempts=1)), on={"done.work": "done"}),
            "done": state(final=True),
        },
    )


def timer_machine(name: str):
    return machine(
        name,
        initial="waiting",
        states={"waiting": state(after={"1h": "reminded"}), "reminded": state(after={"1d": "expired"}),
                "expired": state(final=True)},
    )  # fmt: skip


@pytest.fixture
def other(db_url: str, clock) -> Iterator[Engine]:
    """A second process on the same database, serving other machines."""
    eng = Engine(db_url, clock=clock)
    yield eng
    eng.close()


# Claims follow the machines served ------------------------------------------------------------
def test_worker_claims_only_timers_of_the_machines_it_serves(engine, other, clock):
    engine.register(timer_machine("a"))
    other.register(timer_machine("b"))
    engine.start("a", instance_id="a1")
    other.start("b", instance_id="b1")
    clock.advance("1h")
    assert engine.run_due() == 1
    assert engine.get("a1").state == "reminded"
    assert other.get("b1").state == "waiting"
    assert [t.event for t in other.status("b1").timers] == ["after.1h"]
    assert other.run_due() == 1
    assert other.get("b1").state == "reminded"


def test_worker_claims_only_effects_of_the_machines_it_serves(engine, other):
    a_calls, b_calls = Calls(), Calls()
    engine.register(effect_machine("a", a_calls))
    other.register(effect_machine("b", b_calls))
    engine.start("a", instance_id="a1")
    other.start("b", instance_id="b1")
    assert engine.run_due() == 1
    assert (a_calls.instances, b_calls.instances) == (["a1"], [])
    [pending] = other.status("b1").effects
    assert (pending.status, pending.attempt) == ("pending", 0)
    assert other.run_due() == 1
    assert b_calls.instances == ["b1"]


# One bad row fails alone -------------------------------------------------------------------------
def test_timer_whose_processing_raises_fails_its_instance_and_the_others_still_fire(engine, clock):
    engine.register(timer_machine("a"))
    engine.register(timer_machine("b"))
    engine.start("a", instance_id="a1")
    engine.start("b", instance_id="b1")
    # Machine `a` now arms a timer no datetime can hold when `reminded` is entered.
    engine.runtime.machines["a"].timers["reminded"] = ["10000000d"]
    clock.advance("1h")
    engine.run_due()
    assert engine.get("b1").state == "reminded"
    bad = engine.get("a1")
    assert (bad.state, bad.status) == ("waiting", "failed")
    last = engine.history("a1")[-1]
    assert (last.event, last.outcome) == ("after.1h", "failed")
    assert "timer after.1h could not be processed" in last.reason
    assert engine.run_due() == 0  # not retried in a loop: it waits for `retry`
    assert [t.event for t in engine.status("a1").timers] == ["after.1h"]  # kept for the redrive


def test_effect_whose_lease_overflows_fails_alone_and_the_others_still_run(engine):
    bad_calls, good_calls = Calls(), Calls()
    engine.register(effect_machine("a", bad_calls))
    engine.register(effect_machine("b", good_calls))
    engine.start("a", instance_id="a1")
    engine.start("b", instance_id="b1")
    cm = engine.runtime.machines["a"]
    cm.effects["working"] = [e.model_copy(update={"lease": "10000000d"}) for e in cm.effects["working"]]
    engine.run_due()
    assert good_calls.instances == ["b1"]
    assert engine.get("b1").state == "done"
    assert bad_calls.instances == []
    assert engine.get("a1").status == "failed"
    [effect] = engine.status("a1").effects
    assert effect.status == "failed"
    assert "could not be processed by the worker" in effect.last_error
    assert engine.run_due() == 0


def test_kept_result_that_is_not_json_fails_alone_and_the_others_still_run(engine):
    calls = Calls()
    engine.register(effect_machine("a", calls))
    for iid in ("a1", "a2"):
        engine.start("a", instance_id=iid)
    rt = engine.runtime
    with rt.transaction() as cur:  # a kept result for a1, damaged in storage
        cur.execute(
            rt.db.sql("UPDATE sm_effects SET result = :r WHERE instance_id = :id"), {"r": "{oops", "id": "a1"}
        )
    engine.run_due()
    assert engine.get("a2").state == "done"
    assert engine.get("a1").status == "failed"
    assert "JSONDecodeError" in engine.history("a1")[-1].reason
    assert engine.run_due() == 0


def test_worker_loop_outlives_an_unexpected_error_in_a_round(engine, monkeypatch):
    import statemachines.worker as worker_mod

    calls = Calls()
    engine.register(effect_machine("a", calls))
    engine.start("a", instance_id="a1")
    real = worker_mod.fire_due_timers
    failures = [RuntimeError("a bug")]

    def flaky(rt, limit):
        if failures:
            raise failures.pop()
        return real(rt, limit)

    monkeypatch.setattr(worker_mod, "fire_due_timers", flaky)
    worker = Worker(engine, idle=0.001, max_idle=0.001)
    assert worker.run(install_signals=False, max_rounds=3) == 1
    assert engine.get("a1").state == "done"


def test_timer_whose_transition_the_database_refuses_fails_alone(engine, clock):
    """A statement the database refuses for one row (here a unique effect key already taken) is
    that row's problem, not a reason to roll back the whole batch."""
    from statemachines.apply import effect_key

    calls = Calls()
    calls.__name__ = "work"
    engine.register(
        machine(
            "t",
            initial="waiting",
            states={
                "waiting": state(after={"1h": "working"}),
                "working": state(effect=Effect(calls), on={"done.work": "done"}),
                "done": state(final=True),
            },
        )
    )
    engine.start("t", instance_id="t1")
    engine.start("t", instance_id="t2")
    rt = engine.runtime
    with rt.transaction() as cur:  # a stored row already holds the key t1's next entry will need
        taken = [("work", effect_key("t1", 2, "work"))]
        rt.schedule.arm_effects(cur, "x", "t", 1, "working", taken, clock.now())
    clock.advance("1h")
    engine.run_due()
    assert engine.get("t2").state == "done"
    bad = engine.get("t1")
    assert (bad.state, bad.status) == ("waiting", "failed")
    assert "could not be processed" in engine.history("t1")[-1].reason
    assert engine.run_due() == 0
