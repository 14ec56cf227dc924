"""`explore`: event sequences walked in memory; unreachable transitions, dead ends, no way to finish."""

from __future__ import annotations

import pytest

from statemachines import InvalidArgument, machine, parallel, state, transition
from statemachines.examples import expense_approval, flaky_payment, subscription
from statemachines.examples.orders import orders
from statemachines.explore import explore

ORDER = {"order_id": "A1", "total": 40}
PAYLOADS = {
    "PAYMENT_RECEIVED": [{"amount": 10}, {"amount": 40}],
    "SHIPPED": {"carrier": "c", "tracking": "t"},
}


def noop(ctx, event):
    return None


def over_limit(ctx, event):
    return ctx["amount"] > ctx["limit"]


@pytest.mark.parametrize(
    "definition",
    [orders, subscription.subscription, expense_approval.expense_approval, flaky_payment.payment],
    ids=lambda d: d.name,
)
def test_the_shipped_examples_have_no_problems(definition) -> None:
    report = explore(definition)
    assert report.problems == [] and report.complete


def test_without_a_context_every_guard_outcome_is_tried() -> None:
    report = explore(orders)
    assert report.mode == "structural"
    assert "completed" in report.reached and "backorder" in report.reached


def test_with_a_context_guards_decide(subtests=None) -> None:
    report = explore(orders, depth=6, context=ORDER, payloads=PAYLOADS)
    assert report.mode == "concrete"
    assert report.problems == []
    assert report.reached == list(orders.spec.states)


def test_a_guard_never_true_on_the_context_leaves_its_transition_untaken() -> None:
    m = machine("claims", initial="open", states={
        "open": state(on={"SUBMIT": [transition("review", guard=over_limit), transition("paid")]}),
        "review": state(on={"APPROVE": "paid"}),
        "paid": state(final=True),
    })  # fmt: skip
    report = explore(m, context={"amount": 5, "limit": 10})
    assert report.unreachable_transitions == ["open --SUBMIT--> review", "review --APPROVE--> paid"]
    assert report.unreachable_states == ["review"]
    assert explore(m).problems == []  # structurally, the guard may pass


def test_a_non_final_state_without_a_way_out_is_a_dead_end() -> None:
    m = machine("stuck", initial="a", states={
        "a": state(on={"GO": "limbo", "END": "done"}),
        "limbo": state(on={"PING": transition(None, action=noop)}),
        "done": state(final=True),
    })  # fmt: skip
    report = explore(m)
    assert report.dead_ends == ["limbo"]
    assert report.no_final == ["limbo"]


def test_states_that_can_never_finish_are_reported() -> None:
    m = machine("loop", initial="start", states={
        "start": state(on={"LOOP": "ping", "END": "done"}),
        "ping": state(on={"NEXT": "pong"}),
        "pong": state(on={"NEXT": "ping"}),
        "done": state(final=True),
    })  # fmt: skip
    report = explore(m)
    assert report.dead_ends == []
    assert report.no_final == ["ping", "pong"]
    assert "no final state reachable from: ping" in str(report)


def test_a_machine_without_final_states_is_not_asked_to_finish() -> None:
    m = machine(
        "forever", initial="on", states={"on": state(on={"FLIP": "off"}), "off": state(on={"FLIP": "on"})}
    )
    assert explore(m).problems == []


def test_an_event_without_a_usable_payload_is_noted_not_blamed() -> None:
    report = explore(orders, context=ORDER)
    assert report.unreachable_transitions == [] and report.unreachable_states == []
    assert any("PAYMENT_RECEIVED" in note for note in report.not_explored)


def test_an_action_that_raises_is_reported_as_an_error() -> None:
    def boom(ctx, event):
        raise RuntimeError("no stock table")

    m = machine("fragile", initial="a", states={
        "a": state(on={"GO": transition("b", action=boom)}), "b": state(final=True),
    })  # fmt: skip
    report = explore(m, context={})
    assert any("GO in a" in e and "no stock table" in e for e in report.errors)


def test_depth_bounds_the_sequences() -> None:
    m = machine("chain", initial="s0", states={
        **{f"s{i}": state(on={"NEXT": f"s{i + 1}"}) for i in range(5)}, "s5": state(final=True),
    })  # fmt: skip
    short = explore(m, depth=2)
    assert not short.complete and "s4" not in short.reached
    assert explore(m, depth=5).complete


def test_statecharts_are_explored_over_configurations() -> None:
    m = machine("order", initial="open", states={
        "open": state(on={"PAY": "fulfilment"}),
        "fulfilment": parallel({
            "goods": state(initial="picking", states={
                "picking": state(on={"PICKED": "packed"}), "packed": state(final=True)}),
            "invoice": state(initial="drafting", states={
                "drafting": state(on={"SENT": "sent"}), "sent": state(final=True)}),
        }, on={"done.state.fulfilment": "shipped"}),
        "shipped": state(final=True),
    })  # fmt: skip
    report = explore(m)
    assert report.problems == []
    assert "fulfilment.invoice.sent" in report.reached and "shipped" in report.reached


def test_a_statechart_whose_guard_never_passes_on_the_context_cannot_finish() -> None:
    m = machine("order", initial="work", states={
        "work": state(initial="a", states={
            "a": state(on={"GO": "b"}),
            "b": state(on={"BACK": "a", "FINISH": transition("c", guard=over_limit)}),
            "c": state(final=True),
        }, on={"done.state.work": "done"}),
        "done": state(final=True),
    })  # fmt: skip
    assert explore(m).problems == []
    report = explore(m, context={"amount": 1, "limit": 10})
    assert report.mode == "concrete"
    assert report.no_final == ["work.a", "work.b"]
    assert "work.b --FINISH--> work.c" in report.unreachable_transitions


@pytest.mark.parametrize("depth", [-1, 1001, 2.0, True])
def test_a_bad_depth_is_refused(depth: object) -> None:
    with pytest.raises(InvalidArgument, match="depth"):
        explore(orders, depth=depth)  # type: ignore[arg-type]


def test_a_spec_alone_is_explored_structurally() -> None:
    assert explore(orders.spec).problems == []
    with pytest.raises(InvalidArgument, match="callables"):
        explore(orders.spec, context=ORDER)
