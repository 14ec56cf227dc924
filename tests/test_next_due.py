"""`engine.next_due()`: when the earliest timer or effect a worker would claim comes due."""

from __future__ import annotations

from datetime import timedelta

from statemachines import Engine, ManualClock, machine, state
from statemachines.examples.orders import orders

ORDER = {"order_id": "A1", "total": 40}


def test_nothing_armed_means_no_next_due(engine: Engine) -> None:
    engine.register(orders)
    assert engine.next_due() is None


def test_the_next_due_is_the_earliest_timer(engine: Engine, clock: ManualClock) -> None:
    engine.register(orders)
    engine.start("order-lifecycle", ORDER, instance_id="a")
    clock.advance("1d")
    engine.start("order-lifecycle", ORDER, instance_id="b")
    assert engine.next_due() == clock.now() + timedelta(days=6)


def test_a_pending_effect_is_due_when_armed(engine: Engine, clock: ManualClock) -> None:
    engine.register(orders)
    engine.start("order-lifecycle", ORDER, instance_id="a")
    engine.send("a", "PAYMENT_RECEIVED", {"amount": 40})
    engine.send("a", "SHIPPED", {"carrier": "ups", "tracking": "1Z"})
    assert engine.next_due() == clock.now()


def test_work_of_machines_not_served_here_is_not_due_here(engine: Engine, clock: ManualClock) -> None:
    engine.register(orders)
    engine.start("order-lifecycle", ORDER, instance_id="a")
    other = Engine(engine.url, clock=clock)
    try:
        other.register(machine("other", initial="idle", states={"idle": state()}))
        assert other.next_due() is None
    finally:
        other.close()


def test_a_closed_instance_has_nothing_due(engine: Engine) -> None:
    engine.register(orders)
    engine.start("order-lifecycle", ORDER, instance_id="a")
    engine.cancel("a")
    assert engine.next_due() is None
