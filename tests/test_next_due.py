"""`engine.next_due()`: when the earliest timer or effect a worker would claim comes due."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from statemachines import Effect, Engine, ManualClock, Retry, machine, state
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


RETRY_IN_10S = Retry(max_attempts=3, initial="10s", jitter=0)


def down(ctx: Any, call: Any) -> None:
    raise RuntimeError("service down")


def test_a_statechart_effect_awaiting_its_retry_is_due_at_the_retry(
    engine: Engine, clock: ManualClock
) -> None:
    """A statechart's instance row has no entry of its own (its states are in sm_chart_states):
    the effect of a nested state is still found, at its retry time."""
    engine.register(
        machine(
            "chart-job",
            initial="work",
            states={
                "work": state(
                    initial="call",
                    states={
                        "call": state(effect=Effect(down, retry=RETRY_IN_10S)),
                    },
                ),
            },
        )
    )
    engine.start("chart-job", instance_id="c1")
    assert engine.next_due() == clock.now()
    assert engine.run_due() == 1  # the first attempt fails; the second is 10 s away
    assert engine.next_due() == clock.now() + timedelta(seconds=10)
