"""Definition checks of statecharts apply the flat rules where they make sense: name limits,
reserved events, `done.x` for an effect of the state or a state inside it, `done.state.<path>` for
the state or a compound/parallel state inside it. Pure: no database."""

from __future__ import annotations

from typing import Any

import pytest

from statemachines import DefinitionError, Effect, machine, parallel, state
from statemachines.names import MAX_NAME_LENGTH


def work(ctx: Any, call: Any) -> None:
    return None


def problems(**states: Any) -> list[str]:
    with pytest.raises(DefinitionError) as err:
        machine("m", initial=next(iter(states)), states=states)
    return err.value.problems


def test_a_parent_may_handle_the_result_of_an_effect_of_a_child() -> None:
    machine("m", initial="outer", states={
        "outer": state(initial="inner", states={"inner": state(effect=Effect(work))},
                       on={"done.work": "end", "error.work": "end"}),
        "end": state(final=True),
    })  # fmt: skip


def test_a_result_event_of_an_effect_declared_nowhere_inside_never_fires() -> None:
    found = problems(
        outer=state(initial="inner", states={"inner": state(effect=Effect(work))}, on={"done.wrok": "end"}),
        end=state(final=True),
    )
    assert found == [
        "state 'outer': event 'done.wrok' never fires: the state or a state inside it declares no"
        " effect 'wrok'; did you mean 'work'?"
    ]


def test_a_sibling_cannot_handle_the_result_of_another_states_effect() -> None:
    found = problems(
        a=state(
            initial="x",
            states={"x": state(effect=Effect(work), on={"GO": "y"}), "y": state(on={"done.work": "x"})},
        ),
    )
    assert found == [
        "state 'a.y': event 'done.work' never fires: the state or a state inside it declares no effect 'work'"
    ]


def test_done_state_of_itself_or_a_compound_inside_it_is_allowed() -> None:
    machine("m", initial="p", states={
        "p": parallel({
            "r1": state(initial="a", states={"a": state(on={"GO": "z"}), "z": state(final=True)}),
            "r2": state(initial="b", states={"b": state(on={"GO": "z"}), "z": state(final=True)}),
        }, on={"done.state.p": "end", "done.state.p.r1": "end"}),
        "end": state(final=True),
    })  # fmt: skip


def test_done_state_of_a_state_outside_is_refused_with_a_suggestion() -> None:
    found = problems(
        p=state(initial="a", states={"a": state(on={"GO": "z"}), "z": state(final=True)}),
        q=state(on={"done.state.pp": "p"}),
    )
    assert (
        "state 'q': event 'done.state.pp' never fires: the state or a state inside it declares no"
        " effect 'state.pp', and 'pp' is not this state or a compound or parallel state inside it"
    ) in found


def test_a_timer_event_declared_in_on_is_refused_as_for_flat_machines() -> None:
    found = problems(a=state(initial="b", states={"b": state(on={"after.1h": "b"})}))
    assert "state 'a.b': event 'after.1h' is reserved for timers: declare it as after={'1h': ...}" in found


def test_a_full_state_path_longer_than_the_name_limit_is_refused() -> None:
    outer, inner = "o" * 150, "i" * 60
    found = problems(**{outer: state(initial=inner, states={inner: state()})})
    assert any(
        p.startswith(f"a state {(outer + '.' + inner)[:40]!r}... is 211 characters long")
        and f"limited to {MAX_NAME_LENGTH}" in p
        for p in found
    ), found


def test_an_event_name_longer_than_the_limit_is_refused() -> None:
    event = "E" * (MAX_NAME_LENGTH + 1)
    found = problems(a=state(initial="b", states={"b": state(on={event: "b"})}))
    assert any(p.startswith("state 'a.b': an event 'EEEE") and "limited to" in p for p in found), found


def test_a_machine_name_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(DefinitionError) as err:
        machine(
            "m" * (MAX_NAME_LENGTH + 1), initial="a", states={"a": state(initial="b", states={"b": state()})}
        )
    assert any(str(MAX_NAME_LENGTH) in p for p in err.value.problems), err.value.problems
