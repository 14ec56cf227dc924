"""Leaving a state drops what that state armed, judged from the rows armed, not from the
definition registered now (which may be another version: a deploy, a rollback)."""

from __future__ import annotations

from statemachines import Effect, Retry, machine, state


def checkout(version_with_effect: bool, charge=None, *, timer: bool = False):
    """The same machine, with (v1) or without (v2) an effect/timer in `paying`."""
    paying: dict = {"on": {"ABANDON": "abandoned", "PAY": "paid"}}
    if version_with_effect:
        if timer:
            paying["after"] = {"1h": "abandoned"}
        else:
            paying["effect"] = Effect(charge, retry=Retry(max_attempts=5, initial="1m", jitter=0))
            paying["on"]["done.charge"] = "paid"  # only a state with the effect may handle its result
    return machine(
        "checkout",
        initial="paying",
        states={
            "paying": state(**paying),
            "paid": state(final=True),
            "abandoned": state(on={"BACK": "paying"}),
        },
    )


class Charges:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = True

    def __call__(self, ctx: dict, call) -> dict:
        self.calls += 1
        if self.fail:
            raise ConnectionError("provider down")
        return {}


def test_effect_armed_by_an_older_version_is_cancelled_when_its_state_is_left(engine, clock):
    charge = Charges()
    charge.__name__ = "charge"
    v1 = checkout(True, charge)
    engine.register(v1)
    engine.start("checkout", instance_id="c1")
    engine.run_due()  # attempt 1 fails: the effect waits for its retry
    assert charge.calls == 1
    engine.register(checkout(False))  # v2: `paying` has no effect any more
    engine.send("c1", "ABANDON")  # the customer leaves
    assert engine.status("c1").effects == []
    engine.register(v1)  # roll back to v1
    charge.fail = False
    clock.advance("1d")
    assert engine.run_due() == 0
    assert charge.calls == 1  # never charged after abandoning
    assert engine.get("c1").state == "abandoned"


def test_timer_armed_by_an_older_version_is_dropped_when_its_state_is_left(engine, clock):
    engine.register(checkout(True, timer=True))
    engine.start("checkout", instance_id="c1")
    engine.register(checkout(False))
    engine.send("c1", "ABANDON")
    assert engine.status("c1").timers == []
    engine.register(checkout(True, timer=True))
    clock.advance("1d")
    assert engine.run_due() == 0
    assert [r.event for r in engine.history("c1")] == ["start", "ABANDON"]


def test_status_and_claims_ignore_rows_of_a_state_entry_left(engine, clock):
    """Rows a state left behind before leaving cancelled them from the rows (stored by an
    older release) are nothing the instance waits on, and no worker runs them."""
    charge = Charges()
    charge.__name__ = "charge"
    engine.register(checkout(True, charge))
    engine.start("checkout", instance_id="c1")
    engine.send("c1", "ABANDON")
    engine.send("c1", "BACK")  # entry 3 of `paying`; entry 1 was left
    rt = engine.runtime
    with rt.transaction() as cur:  # what an older release could leave behind: entry 1's rows
        rt.schedule.arm_effects(cur, "c1", "checkout", 1, "paying", [("charge", "c1:1:charge")], clock.now())
        rt.schedule.arm_timers(cur, "c1", "checkout", 1, "paying", [("after.1h", clock.now())])
    status = engine.status("c1")
    assert [(e.name, e.status) for e in status.effects] == [("charge", "pending")]  # entry 3's only
    assert status.timers == []
    charge.fail = False
    engine.run_due()  # entry 3's effect runs; entry 1's is never claimed, its timer is dropped
    assert charge.calls == 1
    assert [r.event for r in engine.history("c1")] == ["start", "ABANDON", "BACK", "done.charge"]
    assert engine.status("c1").timers == []
