"""`CompiledChart.step` remembers steps in which no callable ran (a pure function of the
configuration, history memory, event and source) and decides every other step again. Pure: no
database."""

from __future__ import annotations

import json
from typing import Any

from statemachines import history, machine, parallel, state, transition
from statemachines.chart import CompiledChart
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
