"""Declaring statecharts: builders, YAML/JSON form, name resolution, and every definition error."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from statemachines import (
    DefinitionError,
    Engine,
    dump_definition,
    history,
    load_definition,
    loads_definition,
    machine,
    parallel,
    state,
    transition,
)
from statemachines.chart.tree import COMPOUND, FINAL, HISTORY, PARALLEL, Tree
from statemachines.examples.orders import orders


def problems_of(**kw: Any) -> list[str]:
    with pytest.raises(DefinitionError) as err:
        machine("bad", **kw)
    return err.value.problems


def only_problem(**kw: Any) -> str:
    problems = problems_of(**kw)
    assert len(problems) == 1, problems
    return problems[0]


def review() -> dict[str, Any]:
    return {
        "review": state(initial="first", states={
            "first": state(on={"APPROVE": "second"}), "second": state(on={"APPROVE": "done"}),
            "last": history(default="first")}, on={"PAUSE": "paused"}),
        "paused": state(on={"RESUME": "review.last"}),
        "done": state(final=True),
    }  # fmt: skip


# Declaring ---------------------------------------------------------------------------------------


def test_the_tree_names_states_by_dotted_path_with_kinds_in_document_order() -> None:
    d = machine("t", initial="p", states={**review(), "p": parallel({"r": state(on={"GO": "review"})})})
    tree = Tree(d.spec)
    assert [(n.path, n.kind) for n in tree.order] == [
        ("review", COMPOUND), ("review.first", "atomic"), ("review.second", "atomic"),
        ("review.last", HISTORY), ("paused", "atomic"), ("done", FINAL), ("p", PARALLEL), ("p.r", "atomic"),
    ]  # fmt: skip


def test_a_nested_spec_dumps_the_same_tree_as_yaml_and_loads_back_equal(tmp_path: Path) -> None:
    d = machine("t", initial="review", states=review())
    path = tmp_path / "t.yaml"
    dump_definition(d, path)
    assert load_definition(path).spec == d.spec
    assert load_definition(path).version == d.version


def test_hand_written_yaml_tree_equals_the_python_builders() -> None:
    text = """
name: t
initial: p
states:
  p:
    type: parallel
    states:
      r1:
        initial: a
        states:
          a: {on: {GO: {target: b, type: internal}}, always: [{target: b}]}
          b: {final: true}
          h: {history: {default: a, deep: true}}
      r2: {}
"""
    built = machine("t", initial="p", states={
        "p": parallel({
            "r1": state(initial="a", states={
                "a": state(on={"GO": transition("b", internal=True)}, always=[transition("b")]),
                "b": state(final=True), "h": history(default="a", deep=True)}),
            "r2": state()}),
    })  # fmt: skip
    assert loads_definition(text).spec == built.spec
    assert loads_definition(text).version == built.version


def test_an_internal_transition_is_spelled_type_internal_in_yaml() -> None:
    d = machine("t", initial="a", states={
        "a": state(initial="b", states={"b": state(), "c": state()},
                   on={"GO": transition("c", internal=True)})
    })  # fmt: skip
    dumped = yaml.safe_load(yaml.safe_dump(d.to_dict()))
    assert dumped["states"]["a"]["on"]["GO"] == [{"target": "c", "type": "internal"}]


def test_a_targetless_transition_is_still_internal_in_the_flat_sense() -> None:
    b = state(on={"N": transition(None)})
    d = machine("t", initial="a", states={"a": state(initial="b", states={"b": b})})
    t = d.spec.states["a"].states["b"].on["N"][0]
    assert t.internal and t.type == "external"


def test_an_unchanged_flat_machine_keeps_its_version_and_its_json() -> None:
    assert orders.version == "7b20d2b6723c181d"  # measured before statecharts existed
    for key in ("initial", "states", "type", "history", "always"):
        assert f'"{key}"' not in orders.to_json().split('"states"', 1)[1]
    assert '"type"' not in orders.spec.canonical_json()


def test_the_engine_registers_a_statechart(tmp_path: Path) -> None:
    d = machine("t", initial="review", states=review())
    engine = Engine(f"sqlite:///{tmp_path / 'e.db'}")
    assert engine.register(d) is d
    assert engine.start("t").configuration == ("review.first",)


# Name resolution ---------------------------------------------------------------------------------


def test_a_short_target_is_looked_up_among_the_sources_siblings_first() -> None:
    d = machine("t", initial="a", states={
        "a": state(initial="x", states={"x": state(on={"GO": "y", "OUT": "b"}), "y": state()}),
        "b": state(initial="y", states={"y": state(on={"BACK": "a"})}),
    })  # fmt: skip
    tree = Tree(d.spec)
    assert tree.nodes["a.x"].by_event["GO"][0].target is tree.nodes["a.y"]


def test_a_short_target_then_looks_among_the_ancestors_siblings_nearest_first() -> None:
    d = machine("t", initial="a", states={
        "a": state(initial="x", states={"x": state(initial="deep", states={"deep": state(on={"GO": "y"})}),
                                        "y": state(on={"OUT": "b"})}),
        "b": state(initial="y", states={"y": state(on={"GO": "a"})}),
    })  # fmt: skip
    tree = Tree(d.spec)
    assert tree.nodes["a.x.deep"].by_event["GO"][0].target is tree.nodes["a.y"]


def test_a_short_target_unique_in_the_machine_resolves_anywhere() -> None:
    d = machine("t", initial="a", states={
        "a": state(on={"GO": "leaf"}),
        "b": state(initial="c", states={"c": state(initial="leaf", states={"leaf": state()})}),
    })  # fmt: skip
    tree = Tree(d.spec)
    assert tree.nodes["a"].by_event["GO"][0].target is tree.nodes["b.c.leaf"]


def test_an_ambiguous_short_target_is_a_definition_error_naming_the_candidates() -> None:
    problem = only_problem(initial="a", states={
        "a": state(on={"GO": "leaf", "B": "b", "C": "c"}),
        "b": state(initial="leaf", states={"leaf": state()}),
        "c": state(initial="leaf", states={"leaf": state(on={"X": "a"})}),
    })  # fmt: skip
    assert "ambiguous" in problem and "'b.leaf'" in problem and "'c.leaf'" in problem


def test_an_unknown_target_is_a_definition_error_with_a_suggestion() -> None:
    states = {**review(), "x": state(on={"GO": "reveiw.first", "R": "review"})}
    problem = only_problem(initial="x", states=states)
    assert "unknown state 'reveiw.first'" in problem and "did you mean 'review.first'" in problem


# Definition errors, one each ---------------------------------------------------------------------


def test_a_compound_state_without_initial_is_a_definition_error() -> None:
    assert "has no initial state" in only_problem(
        initial="a", states={"a": state(states={"b": state()}, on={"GO": "a.b"})}
    )


def test_an_initial_that_is_not_a_child_is_a_definition_error() -> None:
    problem = only_problem(initial="a", states={"a": state(initial="zz", states={"b": state()})})
    assert "initial state 'zz' is not one of its children" in problem


def test_an_initial_state_on_a_state_without_children_is_a_definition_error() -> None:
    a = state(initial="b", always=[transition("c")])
    problem = only_problem(initial="a", states={"a": a, "c": state()})
    assert "no child states" in problem


def test_a_history_without_default_is_a_definition_error() -> None:
    problem = only_problem(initial="a", states={
        "a": state(initial="b", states={"b": state(), "h": history()}, on={"GO": "a.h"})})
    assert "history 'a.h' has no default" in problem


def test_a_history_outside_a_compound_state_is_a_definition_error() -> None:
    problem = only_problem(initial="a", states={"a": state(on={"GO": "h"}), "h": history(default="a")})
    assert "must be a child of a compound or parallel state" in problem


def test_a_history_with_children_is_a_definition_error() -> None:
    h = replace(history(default="b"), states={"x": state()})
    problems = problems_of(initial="a", states={"a": state(initial="b", states={"b": state(), "h": h})})
    assert any("history 'a.h' has child states" in p for p in problems)


def test_a_history_default_outside_its_parent_is_a_definition_error() -> None:
    problem = only_problem(initial="a", states={
        "a": state(initial="b", states={"b": state(), "h": history(default="c")}, on={"GO": "a.h"}),
        "c": state(on={"BACK": "a"}),
    })  # fmt: skip
    assert "default 'c' is not a state inside its parent 'a'" in problem


def test_a_final_state_with_children_is_a_definition_error() -> None:
    problems = problems_of(initial="a", states={"a": state(final=True, initial="b", states={"b": state()})})
    assert "final state 'a' has child states" in problems


def test_a_final_state_with_transitions_is_a_definition_error() -> None:
    problem = only_problem(initial="a", states={"a": state(initial="b", states={
        "b": state(final=True, always=[transition("c")]), "c": state()})})
    assert "final state 'a.b' has outgoing transitions" in problem


def test_a_final_state_as_a_region_of_a_parallel_state_is_a_definition_error() -> None:
    problem = only_problem(initial="p", states={"p": parallel({"r": state(), "f": state(final=True)})})
    assert "is a region of a parallel state" in problem


def test_a_parallel_state_without_regions_is_a_definition_error() -> None:
    problem = only_problem(initial="p", states={"p": parallel({})})
    assert problem == "parallel state 'p' has no regions"


def test_a_parallel_state_with_an_initial_is_a_definition_error() -> None:
    p = state(initial="r1", states={"r1": state(), "r2": state()})
    problem = only_problem(initial="p", states={"p": replace(p, type="parallel")})
    assert "parallel state 'p' declares an initial state" in problem


def test_a_state_name_containing_a_dot_is_a_definition_error() -> None:
    problems = problems_of(initial="a", states={"a": state(initial="b.c", states={"b.c": state()})})
    assert any("'.' is reserved" in p for p in problems)


def test_an_unreachable_nested_state_is_a_definition_error() -> None:
    problem = only_problem(initial="a", states={"a": state(initial="b", states={"b": state(), "c": state()})})
    assert problem == "state 'a.c' is unreachable from the initial state"


def test_an_unguarded_targetless_eventless_transition_is_a_definition_error() -> None:
    problem = only_problem(initial="a", states={"a": state(initial="b", states={
        "b": state(always=[transition(None)])})})
    assert "would loop forever" in problem


def test_every_statechart_problem_is_reported_at_once() -> None:
    problems = problems_of(initial="a", states={
        "a": state(states={"b": state(on={"GO": "nowhere"})}),
        "h": history(),
        "p": parallel({}),
    })  # fmt: skip
    text = "\n".join(problems)
    for expected in ("no initial state", "unknown state 'nowhere'", "must be a child", "has no default",
                     "no regions", "unreachable"):  # fmt: skip
        assert expected in text, expected
