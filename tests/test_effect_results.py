"""An effect's result is never lost: one that arrives while its instance is `failed` is kept
(status `held`) and delivered after `engine.retry`, without running the effect again."""

from __future__ import annotations

from statemachines import Effect, Retry, machine, state, transition


def record(ctx: dict, event) -> None:
    ctx[event.name] = event.payload


def shipping_machine(ship, charge, *, after=None):
    """`ship` and `charge` both run on entering `working`; only `done.ship` leaves it."""
    ship.__name__, charge.__name__ = "ship", "charge"
    return machine(
        "shipping",
        initial="working",
        states={
            "working": state(
                effect=[Effect(ship), Effect(charge, retry=Retry(max_attempts=1))],
                on={"done.ship": transition("shipped", action=record)},
                after=after,
            ),
            "shipped": state(final=True),
        },
    )


def test_result_arriving_while_another_effect_failed_the_instance_is_delivered_on_retry(engine):
    charge_works = [False]
    ships: list[int] = []

    def charge(ctx: dict, call) -> dict:
        if not charge_works[0]:
            raise ConnectionError("bank down")
        return {}

    def ship(ctx: dict, call) -> dict:
        ships.append(call.attempt)
        # While `ship` is in flight, another worker runs `charge`: it exhausts, the instance fails.
        assert engine.run_due() == 1
        assert engine.get("s1").status == "failed"
        return {"parcel": "P-1"}

    engine.register(shipping_machine(ship, charge))
    engine.start("shipping", instance_id="s1")
    engine.run_due(batch=1)  # this worker takes `ship` only
    held = {e.name: e.status for e in engine.status("s1").effects}
    assert held == {"ship": "held", "charge": "failed"}
    charge_works[0] = True
    engine.retry("s1")
    engine.run_due()
    snap = engine.get("s1")
    assert (snap.state, snap.status, snap.context) == (
        "shipped",
        "completed",
        {"done.ship": {"parcel": "P-1"}},
    )
    assert ships == [1]  # delivered, not shipped twice
    assert [r.event for r in engine.history("s1")] == ["start", "error.charge", "retry", "done.ship"]


def test_result_arriving_after_a_timer_action_failed_the_instance_is_delivered_on_retry(engine, clock):
    remind_works = [False]

    def remind(ctx: dict, event) -> None:
        if not remind_works[0]:
            raise RuntimeError("mailer down")
        ctx["reminded"] = True

    def ship(ctx: dict, call) -> dict:
        clock.advance("1h")  # the reminder timer fires while `ship` is in flight, and fails
        engine.run_due()
        assert engine.get("s1").status == "failed"
        return {"parcel": "P-1"}

    def charge(ctx: dict, call) -> dict:
        return {}

    engine.register(shipping_machine(ship, charge, after={"1h": transition(None, action=remind)}))
    engine.start("shipping", instance_id="s1")
    engine.run_due()
    assert "held" in {e.status for e in engine.status("s1").effects}
    remind_works[0] = True
    engine.retry("s1")
    engine.run_due()
    snap = engine.get("s1")
    assert (snap.state, snap.status) == ("shipped", "completed")
    assert snap.context == {"reminded": True, "done.ship": {"parcel": "P-1"}}


def test_held_result_is_not_delivered_while_the_instance_stays_failed(engine, clock):
    def charge(ctx: dict, call) -> dict:
        raise ConnectionError("bank down")

    def ship(ctx: dict, call) -> dict:
        engine.run_due()
        return {"parcel": "P-1"}

    engine.register(shipping_machine(ship, charge))
    engine.start("shipping", instance_id="s1")
    engine.run_due(batch=1)  # this worker takes `ship` only
    clock.advance("30d")
    assert engine.run_due() == 0
    assert (engine.get("s1").state, engine.get("s1").status) == ("working", "failed")


def test_cancelling_a_failed_instance_drops_its_held_result(engine):
    def charge(ctx: dict, call) -> dict:
        raise ConnectionError("bank down")

    def ship(ctx: dict, call) -> dict:
        engine.run_due()
        return {"parcel": "P-1"}

    engine.register(shipping_machine(ship, charge))
    engine.start("shipping", instance_id="s1")
    engine.run_due(batch=1)  # this worker takes `ship` only
    engine.cancel("s1")
    assert engine.status("s1").effects == []
    assert engine.run_due() == 0
    assert engine.history("s1")[-1].event == "cancel"


def test_kept_result_given_back_by_a_stopping_worker_keeps_its_attempt_count(engine):
    from statemachines.effects import run_due_effects

    ships: list[int] = []

    def charge(ctx: dict, call) -> dict:
        raise ConnectionError("bank down")

    def ship(ctx: dict, call) -> dict:
        ships.append(call.attempt)
        engine.run_due()
        return {"parcel": "P-1"}

    engine.register(shipping_machine(ship, charge))
    engine.start("shipping", instance_id="s1")
    engine.run_due(batch=1)
    engine.retry("s1")
    assert run_due_effects(engine.runtime, 10, should_stop=lambda: True) == 0  # claimed, given back
    effects = {e.name: (e.status, e.attempt) for e in engine.status("s1").effects}
    assert effects == {"ship": ("pending", 1), "charge": ("pending", 1)}
    engine.run_due()
    assert (engine.get("s1").state, ships) == ("shipped", [1])
