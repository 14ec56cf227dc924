"""Names in definitions: one length limit that `send()` shares, storable text, nothing the
`transitions` library or the engine reads specially, and "did you mean" for names not there."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from statemachines import (
    DefinitionError,
    Effect,
    Engine,
    ManualClock,
    loads_definition,
    machine,
    state,
    transition,
)
from statemachines.names import MAX_NAME_LENGTH

N = MAX_NAME_LENGTH


def problems_of(**kwargs) -> list[str]:
    kwargs.setdefault("initial", "a")
    with pytest.raises(DefinitionError) as info:
        machine("m", **kwargs)
    return info.value.problems


def charge(ctx, call) -> str:
    return "ok"


def long_machine(size: int) -> dict:
    """A machine (as data) whose machine, state, event and effect names are `size` long."""
    first, second, last = "a" * size, "b" * size, "c" * size
    return {
        "name": "m" * size,
        "initial": first,
        "states": {
            first: {"on": {"E" * size: second}},
            second: {
                "effects": [{"name": "f" * size, "fn": "charge"}],
                "on": {"done." + "f" * size: {"target": None}},  # internal: the timer stays armed
                "after": {"1h": last},
            },
            last: {"final": True},
        },
    }


# Length ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["machine", "state", "event", "effect"])
def test_a_name_one_character_over_the_limit_is_a_definition_error(kind: str) -> None:
    data = long_machine(10)
    if kind == "machine":
        data["name"] = "m" * (N + 1)
    elif kind == "state":
        data["states"]["c" * (N + 1)] = data["states"].pop("c" * 10)
        data["states"]["b" * 10]["after"]["1h"] = "c" * (N + 1)
    elif kind == "event":
        data["states"]["a" * 10]["on"] = {"E" * (N + 1): "b" * 10}
    else:
        data["states"]["b" * 10]["effects"][0]["name"] = "f" * (N + 1)
        data["states"]["b" * 10]["on"] = {"done." + "f" * (N + 1): {"target": None}}
    with pytest.raises(DefinitionError) as info:
        loads_definition(json.dumps(data), {"charge": charge}, fmt="json")
    assert len(info.value.problems) == 1
    assert f"at most {N} characters" in info.value.problems[0] or f"limited to {N}" in info.value.problems[0]


def test_an_event_over_the_limit_is_a_definition_error_in_machine() -> None:
    problems = problems_of(states={"a": state(on={"E" * (N + 1): "b"}), "b": state(final=True)})
    assert problems == [
        f"state 'a': an event {'E' * 40!r}... is {N + 1} characters long; names are limited to {N} characters"
    ]


def test_a_state_over_the_limit_is_a_definition_error_in_machine() -> None:
    long = "s" * (N + 1)
    problems = problems_of(states={"a": state(on={"GO": long}), long: state(final=True)})
    assert len(problems) == 1
    assert f"limited to {N} characters" in problems[0]


@pytest.fixture
def long_engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    eng = Engine(db_url, clock=clock)
    eng.register(loads_definition(json.dumps(long_machine(N)), {"charge": charge}, fmt="json"))
    yield eng
    eng.close()


def test_names_of_the_maximal_length_work_end_to_end(long_engine: Engine, clock: ManualClock) -> None:
    iid = "i" * N
    long_engine.start("m" * N, instance_id=iid)
    assert long_engine.send(iid, "E" * N).state == "b" * N
    assert [e.name for e in long_engine.status(iid).effects] == ["f" * N]
    assert long_engine.run_due() == 1  # the effect runs, its result recorded
    clock.advance("1h")
    assert long_engine.run_due() == 1  # the timer fires
    snap = long_engine.get(iid)
    assert (snap.state, snap.status) == ("c" * N, "completed")
    assert [r.event for r in long_engine.history(iid)][-2:] == ["done." + "f" * N, "after.1h"]


# Storable text -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["b\x00", "b\udc80"], ids=["NUL", "lone surrogate"])
def test_a_state_name_databases_cannot_store_is_a_definition_error(bad: str) -> None:
    problems = problems_of(states={"a": state(on={"GO": bad}), bad: state(final=True)})
    assert any("cannot store" in p for p in problems), problems


def test_an_event_name_databases_cannot_store_is_a_definition_error() -> None:
    problems = problems_of(states={"a": state(on={"G\x00": "b"}), "b": state(final=True)})
    assert problems == [
        "state 'a': an event 'G\\x00' contains NUL or a lone surrogate, which databases cannot store"
    ]


def test_a_blank_state_name_is_a_definition_error() -> None:
    problems = problems_of(states={"a": state(on={"GO": " "}), " ": state(final=True)})
    assert problems == ["a state has an empty name"]


# Names transitions reads specially ---------------------------------------------------------------


@pytest.mark.parametrize("wildcard", ["*", "="])
def test_a_state_named_like_a_transitions_wildcard_is_a_definition_error(wildcard: str) -> None:
    problems = problems_of(states={"a": state(on={"GO": wildcard}), wildcard: state(on={"X": "a"})})
    assert problems == [f"state {wildcard!r} is reserved: the transitions library reads it as a wildcard"]


def test_an_event_named_state_is_a_definition_error() -> None:
    problems = problems_of(states={"a": state(on={"state": "b"}), "b": state(final=True)})
    assert problems == ["state 'a': event 'state' is reserved: the transitions library keeps the state in it"]


@pytest.mark.parametrize("event", ["trigger", "may_trigger", "to_b", "may_GO", "is_b", "callbacks"])
def test_events_named_like_other_transitions_model_methods_are_plain_names(
    engine: Engine, event: str
) -> None:
    engine.register(
        machine("plain", initial="a", states={"a": state(on={event: "b"}), "b": state(final=True)})
    )
    engine.start("plain", instance_id="p1")
    assert engine.send("p1", event).state == "b"


def test_a_timer_event_declared_in_on_is_a_definition_error() -> None:
    problems = problems_of(
        states={
            "a": state(on={"after.1h": "b"}, after={"1h": "c"}),
            "b": state(final=True),
            "c": state(final=True),
        }
    )
    assert problems == ["state 'a': event 'after.1h' is reserved for timers: declare it as after={'1h': ...}"]


def test_an_effect_result_event_for_an_effect_the_state_lacks_is_a_definition_error() -> None:
    problems = problems_of(
        states={"a": state(effect=Effect(charge), on={"done.chrage": "b"}), "b": state(final=True)}
    )
    assert problems == [
        "state 'a': event 'done.chrage' never fires: the state declares no effect 'chrage';"
        " did you mean 'charge'?"
    ]


def test_effect_result_events_for_the_states_own_effect_are_accepted() -> None:
    d = machine(
        "m",
        initial="a",
        states={
            "a": state(effect=Effect(charge), on={"done.charge": "b", "error.charge": "b"}),
            "b": state(final=True),
        },
    )
    assert set(d.spec.states["a"].on) == {"done.charge", "error.charge"}


# Did you mean ------------------------------------------------------------------------------------


def test_a_typo_in_a_target_suggests_the_nearest_state() -> None:
    problems = problems_of(states={"a": state(on={"SHIP": "shiped"}), "shipped": state(final=True)})
    assert problems == ["state 'a': event 'SHIP' targets unknown state 'shiped'; did you mean 'shipped'?"]


def test_states_behind_a_typo_in_a_target_are_not_reported_unreachable() -> None:
    problems = problems_of(
        states={
            "a": state(on={"SHIP": "shiped"}),
            "shipped": state(on={"DELIVER": "delivered"}),
            "delivered": state(final=True),
            "island": state(final=True),
        }
    )
    assert problems == [
        "state 'a': event 'SHIP' targets unknown state 'shiped'; did you mean 'shipped'?",
        "state 'island' is unreachable from the initial state 'a'",
    ]


def test_an_unknown_target_far_from_every_state_suggests_nothing() -> None:
    problems = problems_of(states={"a": state(on={"GO": "zzz"}), "b": state(final=True)})
    assert problems[0] == "state 'a': event 'GO' targets unknown state 'zzz'"


def test_an_unknown_initial_state_suggests_the_nearest_state() -> None:
    problems = problems_of(initial="pendng", states={"pending": state(final=True)})
    assert problems == ["initial state 'pendng' is not a declared state; did you mean 'pending'?"]


def test_an_unknown_callable_suggests_the_nearest_registry_name() -> None:
    def is_paid(ctx, event) -> bool:
        return True

    problems = problems_of(
        registry={"is_paid": is_paid},
        states={"a": state(on={"GO": transition("b", guard="is_payed")}), "b": state(final=True)},
    )
    assert problems == ["callable 'is_payed' is not in the registry; did you mean 'is_paid'?"]


def test_an_unknown_callable_in_a_loaded_definition_suggests_the_nearest_registry_name() -> None:
    text = (
        "name: m\ninitial: a\nstates:\n"
        "  a:\n    on:\n      GO: {target: b, guard: is_payed}\n"
        "  b: {final: true}\n"
    )
    with pytest.raises(DefinitionError) as info:
        loads_definition(text, {"is_paid": lambda ctx, event: True})
    assert info.value.problems == ["callable 'is_payed' is not in the registry; did you mean 'is_paid'?"]


def test_a_payload_schema_for_an_unknown_event_suggests_the_nearest_event() -> None:
    class Payment(BaseModel):
        cents: int

    problems = problems_of(
        events={"PAYY": Payment}, states={"a": state(on={"PAY": "b"}), "b": state(final=True)}
    )
    assert problems == [
        "payload schema declared for event 'PAYY', which no state handles; did you mean 'PAY'?"
    ]
