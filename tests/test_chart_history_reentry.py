"""A transition from inside a compound state to that state's own history exits what is active
and enters the remembered configuration again: no state is entered while it is still active.
(W3C SCXML Appendix D computes the domain from the remembered states, which re-enters an active
state without exiting it; we take the history pseudo-state itself as the target.)"""

from __future__ import annotations

from typing import Any

from statemachines import Engine, history, machine, state
from statemachines.chart import CompiledChart
from statemachines.records import Event


def note(tag: str) -> Any:
    def fn(ctx: dict, event: Any) -> None:
        ctx.setdefault("log", []).append(tag)

    fn.__name__ = "note_" + tag.replace(":", "_").replace(".", "_")
    return fn


def reentry() -> Any:
    return machine(
        "reentry",
        initial="a",
        states={
            "a": state(
                initial="m",
                states={
                    "m": state(
                        initial="x",
                        on_enter=note("enter:a.m"),
                        on_exit=note("exit:a.m"),
                        states={"x": state(on={"BACK": "a.hd"})},
                    ),
                    "hd": history(default="a.m", deep=True),
                },
                on={"OUT": "out"},
            ),
            "out": state(on={"IN": "a.hd"}),
        },
    )


def test_going_back_to_the_own_deep_history_exits_and_enters_again() -> None:
    chart = CompiledChart(reentry())
    step = chart.enter_initial("{}", Event("start", {}, "r"))
    for name in ("OUT", "IN", "BACK"):
        step = chart.step(step.configuration, step.history, step.context_json, Event(name, {}, "r"))
    assert step.context["log"] == ["enter:a.m", "exit:a.m", "enter:a.m", "exit:a.m", "enter:a.m"]
    assert step.configuration == ("a.m.x",)


def test_the_engine_applies_a_transition_to_the_history_of_an_ancestor(db_url: str) -> None:
    engine = Engine(db_url)
    engine.register(reentry())
    engine.start("reentry", {}, instance_id="r")
    for name in ("OUT", "IN", "BACK"):
        snap = engine.send("r", name)
    assert snap.configuration == ("a.m.x",)
    assert snap.context["log"][-2:] == ["exit:a.m", "enter:a.m"]
    engine.close()
