"""Definitions: built in Python or loaded from YAML/JSON, checked when built, every problem at once."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from statemachines import (
    DefinitionError,
    Effect,
    Registry,
    Retry,
    StateMachineError,
    dump_definition,
    load_definition,
    loads_definition,
    machine,
    state,
    transition,
)


class Order(BaseModel):
    total: float
    paid: float = 0


class Payment(BaseModel):
    amount: float


def paid_enough(ctx: Order, event) -> bool:
    return event.payload.amount >= ctx.total


def record_payment(ctx: Order, event) -> None:
    ctx.paid = event.payload.amount


def notify_warehouse(ctx: Order, event) -> None:
    pass


def send_tracking_mail(ctx: Order, call) -> dict:
    return {"sent": True}


REGISTRY = Registry()
for _item in (paid_enough, record_payment, notify_warehouse, send_tracking_mail, Order, Payment):
    REGISTRY.add(_item)


def order_machine() -> object:
    return machine(
        "order-lifecycle",
        context=Order,
        events={"PAYMENT_RECEIVED": Payment},
        initial="pending",
        states={
            "pending": state(
                on={
                    "PAYMENT_RECEIVED": transition("processing", guard=paid_enough, action=record_payment),
                    "CANCEL": "cancelled",
                },
                after={"7d": "cancelled"},
            ),
            "processing": state(
                on_enter=notify_warehouse, on={"SHIPPED": "shipped", "OUT_OF_STOCK": "backorder"}
            ),
            "shipped": state(
                effect=Effect(
                    send_tracking_mail, retry=Retry(max_attempts=5, initial="1s", backoff=2.0, max="5m")
                ),
                on={"DELIVERED": "completed"},
            ),
            "backorder": state(
                on={"RESTOCKED": "processing", "NOTE": transition(None, action=record_payment)}
            ),
            "completed": state(final=True),
            "cancelled": state(final=True),
        },
    )


ORDER_YAML = """
name: order-lifecycle
context: Order
events:
  PAYMENT_RECEIVED: Payment
initial: pending
states:
  pending:
    on:
      PAYMENT_RECEIVED:
        target: processing
        guard: paid_enough
        action: record_payment
      CANCEL: cancelled
    after:
      7d: cancelled
  processing:
    on_enter: notify_warehouse
    on:
      SHIPPED: shipped
      OUT_OF_STOCK: backorder
  shipped:
    effect:
      fn: send_tracking_mail
      retry: {max_attempts: 5, initial: 1s, backoff: 2.0, max: 5m}
    on:
      DELIVERED: completed
  backorder:
    on:
      RESTOCKED: processing
      NOTE: {target: null, action: record_payment}
  completed: {final: true}
  cancelled: {final: true}
"""


def problems_of(**kwargs) -> list[str]:
    kwargs.setdefault("initial", "a")
    with pytest.raises(DefinitionError) as info:
        machine("m", **kwargs)
    return info.value.problems


# Building ----------------------------------------------------------------------------------------


def test_machine_builds_a_checked_definition_with_a_version_hash() -> None:
    d = order_machine()
    assert d.name == "order-lifecycle"
    assert set(d.spec.states) == {"pending", "processing", "shipped", "backorder", "completed", "cancelled"}
    assert d.context_model is Order
    assert d.event_schemas == {"PAYMENT_RECEIVED": Payment}
    assert len(d.version) == 16


def test_the_same_machine_built_twice_has_the_same_version() -> None:
    assert order_machine().version == order_machine().version


def test_a_changed_machine_has_a_different_version() -> None:
    one = machine("m", initial="a", states={"a": state(on={"GO": "b"}), "b": state(final=True)})
    two = machine("m", initial="a", states={"a": state(on={"GO": "b", "STAY": "a"}), "b": state(final=True)})
    assert one.version != two.version


def test_a_target_name_is_shorthand_for_a_transition() -> None:
    short = machine("m", initial="a", states={"a": state(on={"GO": "b"}), "b": state(final=True)})
    long = machine("m", initial="a", states={"a": state(on={"GO": transition("b")}), "b": state(final=True)})
    assert short.spec == long.spec
    assert short.version == long.version


def test_callables_are_stored_by_name_and_resolved_to_the_functions() -> None:
    d = order_machine()
    t = d.spec.states["pending"].on["PAYMENT_RECEIVED"][0]
    assert (t.guard, t.actions) == ("paid_enough", ["record_payment"])
    assert d.callables["paid_enough"] is paid_enough
    assert d.callables["record_payment"] is record_payment


def test_a_timedelta_timer_is_stored_as_canonical_text() -> None:
    d = machine("m", initial="a", states={"a": state(after={timedelta(days=7): "b"}), "b": state(final=True)})
    assert list(d.spec.states["a"].after) == ["7d"]


@pytest.mark.parametrize("text", ["500ms", "20s", "15m", "24h", "7d"])
def test_timer_durations_are_a_number_and_a_unit(text: str) -> None:
    d = machine("m", initial="a", states={"a": state(after={text: "b"}), "b": state(final=True)})
    assert list(d.spec.states["a"].after) == [text]


def test_guarded_transitions_followed_by_one_unguarded_fallback_are_valid() -> None:
    d = machine(
        "m",
        initial="a",
        states={
            "a": state(on={"GO": [transition("b", guard=lambda c, e: True), transition("c")]}),
            "b": state(final=True),
            "c": state(final=True),
        },
    )
    assert [t.target for t in d.spec.states["a"].on["GO"]] == ["b", "c"]


def test_an_internal_transition_has_no_target() -> None:
    d = order_machine()
    note = d.spec.states["backorder"].on["NOTE"][0]
    assert note.target is None
    assert note.internal


# Definition errors -------------------------------------------------------------------------------


def test_definition_error_is_a_state_machine_error() -> None:
    assert issubclass(DefinitionError, StateMachineError)


def test_unknown_target_state_is_a_definition_error() -> None:
    problems = problems_of(states={"a": state(on={"GO": "nowhere"})})
    assert problems == ["state 'a': event 'GO' targets unknown state 'nowhere'"]


def test_unknown_initial_state_is_a_definition_error() -> None:
    problems = problems_of(initial="start", states={"a": state(final=True)})
    assert problems == ["initial state 'start' is not a declared state"]


def test_unreachable_state_is_a_definition_error() -> None:
    problems = problems_of(
        states={"a": state(on={"GO": "b"}), "b": state(final=True), "island": state(on={"GO": "b"})}
    )
    assert problems == ["state 'island' is unreachable from the initial state 'a'"]


def test_a_state_reached_only_by_a_timer_is_reachable() -> None:
    d = machine("m", initial="a", states={"a": state(after={"1h": "b"}), "b": state(final=True)})
    assert "b" in d.spec.states


def test_transition_out_of_a_final_state_is_a_definition_error() -> None:
    problems = problems_of(states={"a": state(on={"GO": "b"}), "b": state(final=True, on={"BACK": "a"})})
    assert len(problems) == 1
    assert "final state 'b'" in problems[0]


def test_timer_on_a_final_state_is_a_definition_error() -> None:
    problems = problems_of(states={"a": state(on={"GO": "b"}), "b": state(final=True, after={"1h": "a"})})
    assert len(problems) == 1
    assert "final state 'b'" in problems[0]


def test_two_unguarded_transitions_for_the_same_event_are_a_definition_error() -> None:
    problems = problems_of(
        states={
            "a": state(on={"GO": [transition("b"), transition("c")]}),
            "b": state(final=True),
            "c": state(final=True),
        }
    )
    assert len(problems) == 1
    assert "state 'a': event 'GO'" in problems[0]
    assert "unguarded" in problems[0]


def test_an_unguarded_transition_shadowing_a_guarded_one_is_a_definition_error() -> None:
    problems = problems_of(
        states={
            "a": state(on={"GO": [transition("b"), transition("c", guard=lambda c, e: True)]}),
            "b": state(final=True),
            "c": state(final=True),
        }
    )
    assert len(problems) == 1
    assert "shadows" in problems[0]


def test_bad_timer_duration_is_a_definition_error() -> None:
    problems = problems_of(states={"a": state(after={"7x": "b"}), "b": state(final=True)})
    assert len(problems) == 1
    assert "timer of state 'a'" in problems[0]
    assert "'7x'" in problems[0]


def test_non_positive_timedelta_timer_is_the_only_problem_reported() -> None:
    problems = problems_of(
        states={"a": state(on={"GO": "b"}, after={timedelta(0): "b"}), "b": state(final=True)}
    )
    assert len(problems) == 1, problems
    assert "state 'a'" in problems[0]
    assert "positive" in problems[0]


def test_bad_effect_lease_is_the_only_problem_reported() -> None:
    problems = problems_of(
        states={
            "a": state(on={"GO": "b"}),
            "b": state(effect=Effect(send_tracking_mail, lease="soon"), on={"DONE": "c"}),
            "c": state(final=True),
        }
    )
    assert len(problems) == 1, problems
    assert "'soon'" in problems[0]
    assert "'b'" in problems[0]


def test_bad_retry_duration_is_a_definition_error() -> None:
    problems = problems_of(
        states={
            "a": state(on={"GO": "b"}),
            "b": state(effect=Effect(send_tracking_mail, retry=Retry(initial="nope")), on={"DONE": "c"}),
            "c": state(final=True),
        }
    )
    assert len(problems) == 1
    assert "effect 'send_tracking_mail' of state 'b'" in problems[0]
    assert "'nope'" in problems[0]


def test_a_callable_name_missing_from_the_registry_is_a_definition_error() -> None:
    problems = problems_of(
        states={"a": state(on={"GO": transition("b", guard="is_paid")}), "b": state(final=True)}
    )
    assert problems == ["callable 'is_paid' is not in the registry"]


def test_a_callable_name_found_in_the_registry_is_accepted() -> None:
    d = machine(
        "m",
        initial="a",
        registry=REGISTRY,
        states={"a": state(on={"GO": transition("b", action="record_payment")}), "b": state(final=True)},
    )
    assert d.callables["record_payment"] is record_payment


def test_every_problem_is_listed_at_once_in_one_definition_error() -> None:
    problems = problems_of(
        states={
            "a": state(on={"GO": "nowhere", "TWICE": [transition("b"), transition("c")]}, after={"7x": "b"}),
            "b": state(on={"BACK": transition("a", guard="missing_guard")}),
            "c": state(final=True, on={"AGAIN": "a"}),
            "island": state(on={"GO": "a"}),
        }
    )
    expected = [
        "targets unknown state 'nowhere'",
        "event 'TWICE' has an unguarded transition",
        "final state 'c'",
        "bad duration '7x'",
        "state 'island' is unreachable",
        "callable 'missing_guard' is not in the registry",
    ]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)
    assert len(problems) == len(expected)


def test_unknown_initial_is_listed_together_with_the_other_problems() -> None:
    problems = problems_of(
        initial="start",
        states={"a": state(on={"GO": "nowhere"}), "b": state(final=True, on={"AGAIN": "a"})},
    )
    assert len(problems) == 3
    assert any("initial state 'start'" in p for p in problems)
    assert any("unknown state 'nowhere'" in p for p in problems)
    assert any("final state 'b'" in p for p in problems)


def test_definition_error_message_lists_every_problem() -> None:
    with pytest.raises(DefinitionError) as info:
        machine("m", initial="a", states={"a": state(on={"GO": "x", "STOP": "y"})})
    message = str(info.value)
    assert "'x'" in message
    assert "'y'" in message


def test_a_context_that_is_not_a_pydantic_model_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="not a pydantic model"):
        machine("m", initial="a", context=dict, states={"a": state(final=True)})  # type: ignore[arg-type]


def test_a_payload_schema_for_an_event_no_state_handles_is_a_definition_error() -> None:
    problems = problems_of(
        events={"PAY": Payment}, states={"a": state(on={"GO": "b"}), "b": state(final=True)}
    )
    assert problems == ["payload schema declared for event 'PAY', which no state handles"]


def test_two_different_callables_with_the_same_name_are_a_definition_error() -> None:
    def check(ctx, event):
        return True

    first = check

    def check(ctx, event):  # a second function with the same __name__
        return False

    problems = problems_of(
        states={
            "a": state(on={"GO": [transition("b", guard=first), transition("c", guard=check)]}),
            "b": state(final=True),
            "c": state(final=True),
        }
    )
    assert any("two different callables are both named 'check'" in p for p in problems)


# YAML and JSON -------------------------------------------------------------------------------------


def test_json_dump_then_load_gives_an_equal_definition() -> None:
    d = order_machine()
    loaded = loads_definition(d.to_json(), REGISTRY, fmt="json")
    assert loaded.spec == d.spec
    assert loaded.version == d.version


def test_json_file_round_trip_gives_an_equal_definition(tmp_path: Path) -> None:
    d = order_machine()
    path = tmp_path / "order.json"
    dump_definition(d, path)
    json.loads(path.read_text())  # strict JSON
    loaded = load_definition(path, REGISTRY)
    assert loaded.spec == d.spec
    assert loaded.version == d.version


def test_yaml_file_round_trip_gives_an_equal_definition(tmp_path: Path) -> None:
    d = order_machine()
    path = tmp_path / "order.yaml"
    dump_definition(d, path)
    loaded = load_definition(path, REGISTRY)
    assert loaded.spec == d.spec
    assert loaded.version == d.version


def test_a_loaded_definition_dumps_back_to_the_same_json() -> None:
    d = loads_definition(ORDER_YAML, REGISTRY)
    assert loads_definition(d.to_json(), REGISTRY, fmt="json").to_json() == d.to_json()


def test_hand_written_yaml_with_on_keys_equals_the_python_definition() -> None:
    loaded = loads_definition(ORDER_YAML, REGISTRY)
    assert loaded.spec == order_machine().spec
    assert loaded.version == order_machine().version


def test_yaml_names_resolve_to_the_registry_entries() -> None:
    d = loads_definition(ORDER_YAML, REGISTRY)
    assert d.context_model is Order
    assert d.event_schemas == {"PAYMENT_RECEIVED": Payment}
    assert d.callables["paid_enough"] is paid_enough
    assert d.callables["send_tracking_mail"] is send_tracking_mail


def test_yaml_event_names_that_yaml_1_1_reads_as_booleans_stay_strings() -> None:
    text = (
        "name: switch\ninitial: dark\nstates:\n"
        "  dark:\n    on:\n      ON: lit\n"
        "  lit:\n    on:\n      OFF: dark\n"
    )
    d = loads_definition(text)
    assert list(d.spec.states["dark"].on) == ["ON"]
    assert list(d.spec.states["lit"].on) == ["OFF"]


def test_bad_yaml_text_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="not valid YAML"):
        loads_definition("name: m\nstates: [unclosed\n", REGISTRY)


def test_bad_json_text_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="not valid JSON"):
        loads_definition('{"name": "m",', REGISTRY, fmt="json")


def test_yaml_that_is_not_a_mapping_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="must be a mapping"):
        loads_definition("- just\n- a list\n", REGISTRY)


def test_yaml_python_tags_are_refused_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"name: m\ninitial: !!python/object/apply:os.system ['touch {marker}']\nstates: {{}}\n"
    with pytest.raises(DefinitionError):
        loads_definition(text, REGISTRY)
    assert not marker.exists()


def test_an_unknown_field_in_yaml_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="colour"):
        loads_definition("name: m\ninitial: a\ncolour: red\nstates:\n  a: {final: true}\n")


def test_yaml_naming_callables_missing_from_the_registry_lists_each_of_them() -> None:
    with pytest.raises(DefinitionError) as info:
        loads_definition(ORDER_YAML, Registry({"Order": Order, "Payment": Payment}))
    problems = info.value.problems
    for name in ("paid_enough", "record_payment", "notify_warehouse", "send_tracking_mail"):
        assert f"callable {name!r} is not in the registry" in problems


def test_yaml_naming_an_unknown_context_model_is_a_definition_error() -> None:
    registry = Registry({k: v for k, v in REGISTRY.items() if k != "Order"})
    with pytest.raises(DefinitionError, match="context model 'Order' is not in the registry"):
        loads_definition(ORDER_YAML, registry)


def test_yaml_with_structural_problems_lists_them_all() -> None:
    text = "name: m\ninitial: a\nstates:\n  a:\n    on: {GO: nowhere}\n  b: {final: true}\n"
    with pytest.raises(DefinitionError) as info:
        loads_definition(text)
    assert len(info.value.problems) == 2


def test_a_missing_definition_file_is_a_definition_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read"):
        load_definition(tmp_path / "absent.yaml", REGISTRY)


def test_yaml_dump_is_plain_data_that_safe_load_reads(tmp_path: Path) -> None:
    path = tmp_path / "order.yml"
    dump_definition(order_machine(), path)
    data = yaml.safe_load(path.read_text())
    assert data["name"] == "order-lifecycle"
    assert "on" in data["states"]["pending"]


# Registry ----------------------------------------------------------------------------------------


def test_the_registry_refuses_two_different_entries_under_one_name() -> None:
    registry = Registry()
    registry.add(paid_enough)
    with pytest.raises(ValueError, match="paid_enough"):
        registry.add(lambda c, e: True, name="paid_enough")


def test_the_registry_decorator_registers_under_a_given_name() -> None:
    registry = Registry()

    @registry.register(name="is_big")
    def big(ctx, event):
        return True

    assert registry["is_big"] is big


def test_retry_initial_delay_longer_than_its_max_is_a_definition_error() -> None:
    def ping(ctx, call):
        return None

    with pytest.raises(DefinitionError, match="retry initial delay 1h exceeds its max 5m"):
        machine(
            "slow",
            initial="a",
            states={
                "a": state(effect=Effect(ping, retry=Retry(initial="1h")), on={"GO": "b"}),
                "b": state(final=True),
            },
        )
