"""`CompiledChart.step` remembers the plan of a step (its outcome and the callables it ran, in
order) and replays it on the next call's context: guards of the first selection run every time
and their verdict is part of the key; a step whose later selections ran a guard is decided again.
Pure: no database."""

from __future__ import annotations

import json
from typing import Any

import pytest

from statemachines import history, machine, parallel, state, transition
from statemachines.chart import CompiledChart
from statemachines.errors import ActionFailed
from statemachines.records import Event


def _event(name: str) -> Event:
    return Event(name, {}, "i1")


def _regions() -> CompiledChart:
    region = state(initial="a", states={"a": state(on={"E": "b"}), "b": state(on={"E": "a"})})
    return CompiledChart(machine("cached", initial="p", states={"p": parallel({"r1": region, "r2": region})}))


def test_a_repeated_callable_free_step_is_remembered_and_carries_this_calls_context() -> None:
    chart = _regions()
    start = chart.enter_initial("{}", _event("start"))
    first = chart.step(start.configuration, start.history, '{"n": 1}', _event("E"))
    again = chart.step(start.configuration, start.history, '{"n": 2}', _event("E"))
    assert again.transitions is first.transitions  # remembered, not decided again
    assert again.configuration == first.configuration == ("p.r1.b", "p.r2.b")
    assert (first.context_json, again.context_json) == ('{"n": 1}', '{"n": 2}')
    assert again.context is None


def test_a_step_whose_guard_ran_is_decided_again_with_the_new_context() -> None:
    def ok(ctx: Any, event: Any) -> bool:
        return bool(ctx.get("ok"))

    chart = CompiledChart(machine("guarded", initial="a", states={
        "a": state(on={"GO": [transition("b", guard=ok), transition("c")]}), "b": state(), "c": state(),
    }))  # fmt: skip
    start = chart.enter_initial("{}", _event("start"))
    assert chart.step(start.configuration, start.history, "{}", _event("GO")).configuration == ("c",)
    step = chart.step(start.configuration, start.history, '{"ok": true}', _event("GO"))
    assert step.configuration == ("b",)


def test_entry_and_exit_callables_run_on_every_step() -> None:
    def count(ctx: Any, event: Any) -> None:
        ctx["n"] = ctx.get("n", 0) + 1

    chart = CompiledChart(machine("counted", initial="a", states={
        "a": state(on={"E": "b"}), "b": state(on_enter=count, on={"E": "a"}),
    }))  # fmt: skip
    start = chart.enter_initial("{}", _event("start"))
    ctx = "{}"
    for _ in range(3):
        ctx = chart.step(start.configuration, start.history, ctx, _event("E")).context_json
    assert json.loads(ctx) == {"n": 3}


def test_the_same_configuration_with_other_history_memory_is_another_step() -> None:
    chart = CompiledChart(machine("remembering", initial="off", states={
        "off": state(on={"ON": "on.h"}),
        "on": state(initial="x", states={
            "x": state(on={"N": "on.y"}), "y": state(), "h": history(default="x"),
        }),
    }))  # fmt: skip
    start = chart.enter_initial("{}", _event("start"))
    assert chart.step(start.configuration, {}, "{}", _event("ON")).configuration == ("on.x",)
    step = chart.step(start.configuration, {"on.h": ("on.y",)}, "{}", _event("ON"))
    assert step.configuration == ("on.y",)


def _logged(name: str) -> Any:
    def log(ctx: Any, event: Any) -> None:
        ctx.setdefault("log", []).append([name, event.name])

    log.__name__ = name
    return log


def _joining() -> CompiledChart:
    """Two regions that each reach a final state on E; the join (`done.state.p`) has an action."""

    def region(i: int) -> Any:
        return state(initial="a", states={
            "a": state(on_exit=_logged(f"exit{i}"), on={"E": transition("z", action=_logged(f"act{i}"))}),
            "z": state(final=True, on_enter=_logged(f"enter{i}")),
        })  # fmt: skip

    return CompiledChart(machine("joining", initial="p", states={
        "p": parallel({"r1": region(1), "r2": region(2)},
                      on={"done.state.p": transition("out", action=_logged("joined"))}),
        "out": state(on_enter=_logged("out")),
    }))  # fmt: skip


def test_a_replayed_step_runs_the_same_callables_in_order_with_the_events_they_got() -> None:
    chart = _joining()
    start = chart.enter_initial("{}", _event("start"))
    first = chart.step(start.configuration, start.history, '{"n": 1}', _event("E"))
    again = chart.step(start.configuration, start.history, '{"n": 2}', _event("E"))
    assert again.transitions is first.transitions  # replayed, not decided again
    log = json.loads(first.context_json)["log"]
    assert log == [
        ["exit2", "E"], ["exit1", "E"], ["act1", "E"], ["act2", "E"], ["enter1", "E"],
        ["enter2", "E"], ["joined", "done.state.p"], ["out", "done.state.p"],
    ]  # fmt: skip
    assert json.loads(again.context_json) == {"n": 2, "log": log}
    assert again.configuration == first.configuration == ("out",)


def test_a_guard_after_the_first_microstep_reads_the_context_the_actions_wrote_every_time() -> None:
    def bump(ctx: Any, event: Any) -> None:
        ctx["n"] = ctx.get("n", 0) + 1

    def twice(ctx: Any, event: Any) -> bool:
        return bool(ctx.get("n", 0) >= 2)

    chart = CompiledChart(machine("counting", initial="a", states={
        "a": state(on={"E": transition("a", action=bump)},
                   always=[transition("done", guard=twice)]),
        "done": state(),
    }))  # fmt: skip
    start = chart.enter_initial("{}", _event("start"))
    first = chart.step(start.configuration, start.history, "{}", _event("E"))
    assert first.configuration == ("a",)
    second = chart.step(first.configuration, first.history, first.context_json, _event("E"))
    assert second.configuration == ("done",)


def test_first_selection_guards_run_on_every_step_and_their_verdict_picks_the_plan() -> None:
    asked: list[bool] = []

    def ok(ctx: Any, event: Any) -> bool:
        asked.append(bool(ctx.get("ok")))
        return bool(ctx.get("ok"))

    chart = CompiledChart(machine("choosing", initial="a", states={
        "a": state(on={"GO": [transition("b", guard=ok, action=_logged("to_b")),
                              transition("c", action=_logged("to_c"))]}),
        "b": state(), "c": state(),
    }))  # fmt: skip
    start = chart.enter_initial("{}", _event("start"))
    contexts = ['{"ok": true}', "{}", '{"ok": true}', "{}"]
    steps = [chart.step(start.configuration, start.history, c, _event("GO")) for c in contexts]
    assert asked == [True, False, True, False]
    assert [s.configuration for s in steps] == [("b",), ("c",), ("b",), ("c",)]
    assert [json.loads(s.context_json)["log"] for s in steps] == [
        [["to_b", "GO"]], [["to_c", "GO"]], [["to_b", "GO"]], [["to_c", "GO"]],
    ]  # fmt: skip
    assert steps[2].transitions is steps[0].transitions


def test_a_replayed_action_that_raises_fails_the_step_naming_it() -> None:
    def picky(ctx: Any, event: Any) -> None:
        if ctx.get("bad"):
            raise ValueError("bad context")

    chart = CompiledChart(machine("failing", initial="a", states={
        "a": state(on={"E": transition("b", action=picky)}), "b": state(),
    }))  # fmt: skip
    start = chart.enter_initial("{}", _event("start"))
    chart.step(start.configuration, start.history, "{}", _event("E"))
    with pytest.raises(ActionFailed, match="picky"):
        chart.step(start.configuration, start.history, '{"bad": true}', _event("E"))


def test_with_no_plans_kept_every_step_runs_the_algorithm_to_the_same_outcome() -> None:
    fresh, kept = (CompiledChart(_joining().definition, plans=n) for n in (0, 4096))
    start = fresh.enter_initial("{}", _event("start"))
    charts = (fresh, fresh, kept, kept)
    steps = [c.step(start.configuration, start.history, "{}", _event("E")) for c in charts]
    assert steps[1].transitions is not steps[0].transitions  # decided again
    assert steps[3].transitions is steps[2].transitions  # replayed
    assert len({(s.configuration, s.moves, s.context_json, s.transitions) for s in steps}) == 1
