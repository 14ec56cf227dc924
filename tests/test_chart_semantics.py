"""Statechart semantics (SCXML): order of exits, actions and entries, conflicts, done events,
eventless transitions, internal vs external transitions, errors. Pure: no database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from statemachines import (
    ActionFailed,
    ContextInvalid,
    EventNotAllowed,
    GuardRejected,
    InvalidArgument,
    StepLimitExceeded,
    machine,
    parallel,
    state,
    transition,
)
from statemachines.chart import ChartStep, CompiledChart
from statemachines.definition import Definition
from statemachines.records import Event

_LOGGERS: dict[str, Callable[[Any, Any], None]] = {}


def log(tag: str) -> Callable[[Any, Any], None]:
    """A callable that appends `tag` to the context's `log` (one function object per tag)."""
    if tag not in _LOGGERS:

        def fn(ctx: Any, event: Any) -> None:
            ctx.setdefault("log", []).append(tag)

        fn.__name__ = f"log_{tag}"
        _LOGGERS[tag] = fn
    return _LOGGERS[tag]


def enter(name: str) -> Callable[[Any, Any], None]:
    return log(f"enter:{name}")


def leave(name: str) -> Callable[[Any, Any], None]:
    return log(f"exit:{name}")


def traced(name: str, **kw: Any) -> Any:
    return state(on_enter=enter(name), on_exit=leave(name), **kw)


_GUARDS: dict[str, Callable[[Any, Any], bool]] = {}


def is_set(flag: str) -> Callable[[Any, Any], bool]:
    if flag not in _GUARDS:

        def guard(ctx: Any, event: Any) -> bool:
            return bool(ctx.get(flag))

        guard.__name__ = f"is_set_{flag}"
        _GUARDS[flag] = guard
    return _GUARDS[flag]


def set_flag(flag: str) -> Callable[[Any, Any], None]:
    def action(ctx: Any, event: Any) -> None:
        ctx[flag] = True

    action.__name__ = f"set_{flag}"
    return action


class Run:
    """Drives a CompiledChart the way the engine will: stored values in, stored values out."""

    def __init__(self, definition: Definition, ctx_json: str = "{}", **kw: Any) -> None:
        self.chart = CompiledChart(definition, **kw)
        self.last: ChartStep = self.chart.enter_initial(ctx_json, Event("start", {}, "i1"))

    def send(self, name: str) -> ChartStep:
        s = self.last
        self.last = self.chart.step(s.configuration, s.history, s.context_json, Event(name, {}, "i1"))
        return self.last

    @property
    def configuration(self) -> tuple[str, ...]:
        return self.last.configuration

    def log(self) -> list[str]:
        """The callables run by the last call, in order."""
        import json

        return json.loads(self.last.context_json).get("log", [])

    def send_and_log(self, name: str) -> list[str]:
        before = len(self.log())
        self.send(name)
        return self.log()[before:]


def nested_parallel() -> Definition:
    return machine("np", initial="idle", states={
        "idle": traced("idle", on={"GO": transition("p", action=log("action"))}),
        "p": parallel({
            "r1": traced("r1", initial="a", states={
                "a": traced("a", on={"NEXT": "b"}), "b": traced("b", on={"NEXT": "c"}),
                "c": state(final=True)}),
            "r2": traced("r2", initial="x", states={
                "x": traced("x", on={"NEXT": "y"}), "y": state(final=True)}),
        }, on_enter=enter("p"), on_exit=leave("p"),
           on={"STOP": transition("idle", action=log("action"))}),
    })  # fmt: skip


def test_start_enters_the_initial_configuration() -> None:
    assert Run(nested_parallel()).configuration == ("idle",)


def test_entering_a_parallel_state_enters_each_region_outermost_first_in_document_order() -> None:
    run = Run(nested_parallel())
    assert run.send_and_log("GO") == [
        "exit:idle", "action", "enter:p", "enter:r1", "enter:a", "enter:r2", "enter:x",
    ]  # fmt: skip


def test_configuration_lists_the_active_atomic_states_of_every_region_in_document_order() -> None:
    run = Run(nested_parallel())
    step = run.send("GO")
    assert step.configuration == ("p.r1.a", "p.r2.x")
    assert step.active == {"p", "p.r1", "p.r1.a", "p.r2", "p.r2.x"}
    assert step.state == "p"


def test_exits_run_innermost_first_in_reverse_document_order_then_actions_then_entries() -> None:
    run = Run(nested_parallel())
    run.send("GO")
    assert run.send_and_log("STOP") == [
        "exit:x", "exit:r2", "exit:a", "exit:r1", "exit:p", "action", "enter:idle",
    ]  # fmt: skip


def test_step_reports_exits_and_entries_in_the_order_they_ran() -> None:
    run = Run(nested_parallel())
    run.send("GO")
    step = run.send("NEXT")
    assert step.exited == ("p.r2.x", "p.r1.a")  # reverse document order
    assert step.entered == ("p.r1.b", "p.r2.y")
    assert step.moves == (("exit", "p.r2.x"), ("exit", "p.r1.a"), ("enter", "p.r1.b"), ("enter", "p.r2.y"))


def test_an_event_handled_in_several_regions_moves_each_of_them_in_one_step() -> None:
    run = Run(nested_parallel())
    run.send("GO")
    step = run.send("NEXT")
    assert step.configuration == ("p.r1.b", "p.r2.y")
    assert [(t.source, t.target) for t in step.transitions] == [("p.r1.a", "p.r1.b"), ("p.r2.x", "p.r2.y")]
    assert step.microsteps == 1


def conflicting(first_leaves: bool) -> Definition:
    leave_p = transition("out", action=log("r1 leaves") if first_leaves else log("r2 leaves"))
    stay1, stay2 = transition("a2", action=log("r1 moves")), transition("b2", action=log("r2 moves"))
    return machine("conflict", initial="p", states={
        "p": parallel({
            "r1": state(initial="a1", states={"a1": state(on={"E": leave_p if first_leaves else stay1,
                                                              "F": "a2"}),
                                              "a2": state()}),
            "r2": state(initial="b1", states={"b1": state(on={"E": stay2 if first_leaves else leave_p,
                                                              "F": "b2"}),
                                              "b2": state()}),
        }),
        "out": state(),
    })  # fmt: skip


def test_between_regions_the_first_transition_in_document_order_wins_a_conflict() -> None:
    run = Run(conflicting(first_leaves=True))
    assert run.send_and_log("E") == ["r1 leaves"]
    assert run.configuration == ("out",)


def test_a_later_region_leaving_the_parallel_state_loses_to_an_earlier_one_staying() -> None:
    run = Run(conflicting(first_leaves=False))
    assert run.send_and_log("E") == ["r1 moves"]
    assert run.configuration == ("p.r1.a2", "p.r2.b1")


def test_a_childs_transition_preempts_its_ancestors_transition_for_the_same_event() -> None:
    d = machine("preempt", initial="parent", states={
        "parent": state(initial="child", states={
            "child": state(on={"E": transition("sibling", action=log("child"))}),
            "sibling": state()},
            on={"E": transition("other", action=log("parent"))}),
        "other": state(),
    })  # fmt: skip
    run = Run(d)
    assert run.send_and_log("E") == ["child"]
    assert run.configuration == ("parent.sibling",)


def test_a_regions_own_transition_preempts_the_parallel_states_one_reached_from_another_region() -> None:
    d = machine("preempt_parallel", initial="p", states={
        "p": parallel({
            "r1": state(initial="a", states={"a": state()}),
            "r2": state(initial="b", states={"b": state(on={"E": transition("b2", action=log("region"))}),
                                             "b2": state()}),
        }, on={"E": transition("out", action=log("parallel"))}),
        "out": state(),
    })  # fmt: skip
    run = Run(d)
    assert run.send_and_log("E") == ["region"]
    assert run.configuration == ("p.r1.a", "p.r2.b2")


def test_a_transition_declared_on_a_parent_applies_in_all_its_descendants() -> None:
    d = machine("inherit", initial="parent", states={
        "parent": state(initial="a", states={
            "a": state(on={"NEXT": "b"}), "b": state(initial="deep", states={"deep": state()})},
            on={"CANCEL": "cancelled"}),
        "cancelled": state(final=True),
    })  # fmt: skip
    run = Run(d)
    run.send("NEXT")
    assert run.configuration == ("parent.b.deep",)
    assert run.send("CANCEL").configuration == ("cancelled",)


def test_a_compound_entering_a_final_child_raises_done_state_of_the_compound() -> None:
    d = machine("done", initial="work", states={
        "work": state(initial="step", states={"step": state(on={"FINISH": "end"}), "end": state(final=True)},
                      on={"done.state.work": transition("next", action=log("joined"))}),
        "next": state(),
    })  # fmt: skip
    run = Run(d)
    step = run.send("FINISH")
    assert step.configuration == ("next",)
    assert run.log() == ["joined"]
    assert [t.event for t in step.transitions] == ["FINISH", "done.state.work"]
    assert step.microsteps == 2


def joined() -> Definition:
    return machine("join", initial="p", states={
        "p": parallel({
            "r1": state(initial="a", states={"a": state(on={"A_DONE": "end"}), "end": state(final=True)}),
            "r2": state(initial="b", states={"b": state(on={"B_DONE": "end"}), "end": state(final=True)}),
        }, on={"done.state.p": "merged"}),
        "merged": state(),
    })  # fmt: skip


def test_a_parallel_state_with_one_region_final_keeps_waiting_for_the_others() -> None:
    run = Run(joined())
    assert run.send("A_DONE").configuration == ("p.r1.end", "p.r2.b")


def test_a_parallel_state_raises_done_state_when_every_region_is_final() -> None:
    run = Run(joined())
    run.send("A_DONE")
    step = run.send("B_DONE")
    assert step.configuration == ("merged",)
    assert [t.event for t in step.transitions] == ["B_DONE", "done.state.p"]


def test_regions_finishing_in_the_same_step_join_once() -> None:
    d = machine("join_once", initial="p", states={
        "p": parallel({
            "r1": state(initial="a", states={"a": state(on={"ALL": "end"}), "end": state(final=True)}),
            "r2": state(initial="b", states={"b": state(on={"ALL": "end"}), "end": state(final=True)}),
        }, on={"done.state.p": transition(None, action=log("join"))}),  # p stays: a second would show
    })  # fmt: skip
    run = Run(d)
    assert run.send_and_log("ALL") == ["join"]


def test_an_eventless_transition_fires_as_soon_as_its_guard_holds() -> None:
    d = machine("eventless", initial="a", states={
        "a": state(on={"MARK": transition(None, action=set_flag("ready"))},
                   always=[transition("b", guard=is_set("ready"))]),
        "b": state(),
    })  # fmt: skip
    run = Run(d)
    assert run.configuration == ("a",)
    step = run.send("MARK")
    assert step.configuration == ("b",)
    assert [t.event for t in step.transitions] == ["MARK", None]


def test_eventless_transitions_are_followed_when_the_machine_starts() -> None:
    d = machine("eventless_start", initial="a", states={
        "a": state(always=[transition("b")]), "b": state(always=[transition("c")]), "c": state(),
    })  # fmt: skip
    step = Run(d).last
    assert step.configuration == ("c",)
    assert step.entered == ("a", "b", "c")
    assert step.microsteps == 3


def test_an_eventless_loop_is_a_typed_error_at_the_microstep_cap() -> None:
    d = machine("loop", initial="a", states={
        "a": state(on={"GO": "b"}),
        "b": state(always=[transition("c")]), "c": state(always=[transition("b")]),
    })  # fmt: skip
    run = Run(d, max_microsteps=50)
    with pytest.raises(StepLimitExceeded) as err:
        run.send("GO")
    assert err.value.limit == 50 and err.value.event == "GO"


def compound_with_transitions(internal: bool) -> Definition:
    return machine("kinds", initial="outer", states={
        "outer": traced("outer", initial="one", states={"one": traced("one"), "two": traced("two")},
                        on={"SELF": "outer", "TO_TWO": transition("two", internal=internal),
                            "NOTE": transition(None, action=log("noted"))}),
    })  # fmt: skip


def test_an_external_self_transition_on_a_compound_exits_and_reenters_it() -> None:
    run = Run(compound_with_transitions(internal=False))
    assert run.send_and_log("SELF") == ["exit:one", "exit:outer", "enter:outer", "enter:one"]


def test_an_internal_transition_to_a_descendant_does_not_exit_the_source() -> None:
    run = Run(compound_with_transitions(internal=True))
    assert run.send_and_log("TO_TWO") == ["exit:one", "enter:two"]
    assert run.configuration == ("outer.two",)


def test_an_external_transition_to_a_descendant_exits_and_reenters_the_source() -> None:
    run = Run(compound_with_transitions(internal=False))
    assert run.send_and_log("TO_TWO") == ["exit:one", "exit:outer", "enter:outer", "enter:two"]


def test_a_targetless_transition_runs_its_actions_and_exits_nothing() -> None:
    run = Run(compound_with_transitions(internal=False))
    step = run.send("NOTE")
    assert run.log()[-1:] == ["noted"]
    assert step.exited == () and step.entered == ()
    assert step.configuration == ("outer.one",)


def test_an_event_no_active_state_handles_is_not_allowed_and_lists_the_allowed_events() -> None:
    run = Run(nested_parallel())
    run.send("GO")
    with pytest.raises(EventNotAllowed) as err:
        run.send("GO")
    assert err.value.allowed == ["NEXT", "STOP"]
    assert err.value.state == "p"


def test_an_event_whose_every_guard_is_false_is_guard_rejected() -> None:
    d = machine("guarded", initial="p", states={
        "p": parallel({"r1": state(on={"E": transition("r1", guard=is_set("never"))}),
                       "r2": state(on={"E": transition("r2", guard=is_set("never"))})}),
    })  # fmt: skip
    with pytest.raises(GuardRejected):
        Run(d).send("E")


def test_a_raising_action_is_action_failed_naming_the_callable_and_the_state() -> None:
    def boom(ctx: Any, event: Any) -> None:
        raise RuntimeError("no")

    d = machine("raise", initial="outer", states={
        "outer": state(initial="inner", states={"inner": state(on={"E": "other"}, on_exit=boom),
                                                "other": state()}),
    })  # fmt: skip
    with pytest.raises(ActionFailed) as err:
        Run(d).send("E")
    assert err.value.where == "on_exit 'boom' of 'outer.inner'"


def test_a_raising_eventless_guard_is_action_failed_naming_the_guard() -> None:
    def broken(ctx: Any, event: Any) -> bool:
        raise KeyError("missing")

    d = machine("raise_guard", initial="a", states={
        "a": state(on={"GO": "b"}), "b": state(always=[transition("a", guard=broken)]),
    })  # fmt: skip
    with pytest.raises(ActionFailed) as err:
        Run(d).send("GO")
    assert err.value.where == "guard 'broken' of 'b' --(eventless)-->" and err.value.event == "GO"


def test_entering_a_top_level_final_state_marks_the_step_done() -> None:
    d = machine("finish", initial="a", states={"a": state(on={"END": "end"}), "end": state(final=True)})
    run = Run(d)
    assert not run.last.done
    assert run.send("END").done


def test_a_final_child_of_a_compound_does_not_finish_the_machine() -> None:
    run = Run(joined())
    assert not run.send("A_DONE").done


def test_a_context_an_action_breaks_is_context_invalid() -> None:
    class Counter(BaseModel):
        n: int = 0

    def corrupt(ctx: Any, event: Any) -> None:
        ctx.n = "many"

    d = machine("ctx", context=Counter, initial="a", states={
        "a": state(initial="b", states={"b": state(on={"E": transition(None, action=corrupt)})}),
    })  # fmt: skip
    with pytest.raises(ContextInvalid):
        Run(d, ctx_json='{"n": 1}').send("E")


def test_a_context_an_action_changes_is_returned_validated() -> None:
    class Counter(BaseModel):
        n: int = 0

    def bump(ctx: Any, event: Any) -> None:
        ctx.n += 1

    d = machine("ctx_ok", context=Counter, initial="a", states={
        "a": state(initial="b", states={"b": state(on={"E": transition(None, action=bump)})}),
    })  # fmt: skip
    step = Run(d, ctx_json='{"n": 1}').send("E")
    assert step.context == Counter(n=2) and step.context_json == '{"n":2}'


def test_a_stored_configuration_naming_an_unknown_state_is_invalid_argument() -> None:
    chart = CompiledChart(nested_parallel())
    with pytest.raises(InvalidArgument):
        chart.step(("p.r1.nope",), {}, "{}", Event("NEXT", {}, "i1"))


def test_handlers_are_the_states_whose_transition_the_event_would_select() -> None:
    chart = CompiledChart(nested_parallel())
    assert chart.handlers(("p.r1.a", "p.r2.x"), "NEXT") == ["p.r1.a", "p.r2.x"]
    assert chart.handlers(("p.r1.a", "p.r2.x"), "STOP") == ["p"]


def test_timers_and_effects_are_looked_up_by_full_path() -> None:
    def work(ctx: Any, event: Any) -> None: ...

    from statemachines import Effect

    d = machine("lookups", initial="outer", states={
        "outer": state(initial="inner", after={"1h": "late"},
                       states={"inner": state(effect=Effect(work), on={"done.work": "end"}),
                               "end": state(final=True)}),
        "late": state(final=True),
    })  # fmt: skip
    chart = CompiledChart(d)
    assert chart.timers["outer"] == ["1h"] and chart.timers["outer.inner"] == []
    assert [e.name for e in chart.effects["outer.inner"]] == ["work"]
    assert chart.final == {"outer.end", "late"} and chart.top_final == {"late"}
