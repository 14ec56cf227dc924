"""History pseudo-states (shallow and deep) and the KYC statechart end to end. Pure: no database."""

from __future__ import annotations

from typing import Any

from statemachines import Effect, history, machine, parallel, state
from statemachines.chart import ChartStep, CompiledChart
from statemachines.definition import Definition
from statemachines.records import Event


def send(chart: CompiledChart, step: ChartStep, *events: str) -> ChartStep:
    for name in events:
        step = chart.step(step.configuration, step.history, step.context_json, Event(name, {}, "i1"))
    return step


def start(definition: Definition) -> tuple[CompiledChart, ChartStep]:
    chart = CompiledChart(definition)
    return chart, chart.enter_initial("{}", Event("start", {}, "i1"))


def editor(deep: bool) -> Definition:
    return machine("editor", initial="editing", states={
        "editing": state(initial="text", states={
            "text": state(on={"NEXT": "images"}),
            "images": state(initial="upload", states={"upload": state(on={"NEXT": "crop"}), "crop": state()}),
            "resume": history(default="images" if deep else "text", deep=deep),
        }, on={"PAUSE": "paused"}),
        "paused": state(on={"RESUME": "editing.resume"}),
    })  # fmt: skip


def test_shallow_history_without_a_prior_visit_enters_its_default() -> None:
    d = machine("fresh", initial="paused", states={
        "paused": state(on={"RESUME": "editing.resume"}),
        "editing": state(initial="text", states={
            "text": state(), "images": state(), "resume": history(default="images")}),
    })  # fmt: skip
    chart, step = start(d)
    assert send(chart, step, "RESUME").configuration == ("editing.images",)


def test_shallow_history_reenters_the_last_active_child_at_its_initial_state() -> None:
    chart, step = start(editor(deep=False))
    step = send(chart, step, "NEXT", "NEXT")  # editing.images.crop
    step = send(chart, step, "PAUSE")
    assert step.history == {"editing.resume": ("editing.images",)}
    assert send(chart, step, "RESUME").configuration == ("editing.images.upload",)


def test_deep_history_reenters_the_last_active_atomic_states() -> None:
    chart, step = start(editor(deep=True))
    step = send(chart, step, "NEXT", "NEXT", "PAUSE")
    assert step.history == {"editing.resume": ("editing.images.crop",)}
    assert send(chart, step, "RESUME").configuration == ("editing.images.crop",)


def test_deep_history_without_a_prior_visit_enters_its_default_and_its_initial_states() -> None:
    d = machine("fresh_deep", initial="paused", states={
        "paused": state(on={"RESUME": "editing.resume"}),
        "editing": state(initial="text", states={
            "text": state(),
            "images": state(initial="upload", states={"upload": state(on={"NEXT": "crop"}), "crop": state()}),
            "resume": history(default="images", deep=True)}),
    })  # fmt: skip
    chart, step = start(d)
    assert send(chart, step, "RESUME").configuration == ("editing.images.upload",)


def test_deep_history_of_a_parallel_region_remembers_every_region() -> None:
    d = machine("deep_parallel", initial="work", states={
        "work": state(initial="p", states={
            "p": parallel({
                "r1": state(initial="a", states={"a": state(on={"A": "b"}), "b": state()}),
                "r2": state(initial="x", states={"x": state(on={"X": "y"}), "y": state()}),
            }),
            "h": history(default="p", deep=True)}, on={"PAUSE": "paused"}),
        "paused": state(on={"RESUME": "work.h"}),
    })  # fmt: skip
    chart, step = start(d)
    step = send(chart, step, "A", "PAUSE", "RESUME")
    assert step.configuration == ("work.p.r1.b", "work.p.r2.x")


def test_history_is_recorded_before_the_parents_on_exit_runs_and_survives_other_visits() -> None:
    chart, step = start(editor(deep=False))
    step = send(chart, step, "NEXT", "PAUSE", "RESUME", "PAUSE")
    assert step.history == {"editing.resume": ("editing.images",)}


# The KYC statechart (docs/statecharts.md) ---------------------------------------------------------


def verify_id(ctx: Any, event: Any) -> None: ...


def screen(ctx: Any, event: Any) -> None: ...


def kyc() -> Definition:
    return machine("kyc", initial="collecting", states={
        "collecting": state(on={"SUBMITTED": "checks"}),
        "checks": parallel({
            "identity": state(initial="verifying", states={
                "verifying": state(effect=Effect(verify_id),
                                   on={"done.verify_id": "ok", "error.verify_id": "bad"}),
                "ok": state(final=True), "bad": state(final=True)}),
            "sanctions": state(initial="screening", states={
                "screening": state(effect=Effect(screen), on={"done.screen": "clear"}),
                "clear": state(final=True)}),
        }, on={"done.state.checks": "review", "WITHDRAW": "withdrawn"},
           after={"3d": "escalated"}),
        "review": state(initial="first", states={
            "first": state(on={"APPROVE": "second"}),
            "second": state(on={"APPROVE": "approved"}),
            "last": history(default="first"),
        }, on={"PAUSE": "paused"}),
        "paused": state(on={"RESUME": "review.last"}),
        "escalated": state(on={"RESOLVE": "review"}),
        "approved": state(final=True), "withdrawn": state(final=True),
    })  # fmt: skip


def test_kyc_submitting_starts_both_checks_and_the_timer_of_the_check_phase() -> None:
    chart, step = start(kyc())
    step = send(chart, step, "SUBMITTED")
    assert step.configuration == ("checks.identity.verifying", "checks.sanctions.screening")
    armed = [p for p in step.entered if chart.timers[p] or chart.effects[p]]
    assert armed == ["checks", "checks.identity.verifying", "checks.sanctions.screening"]


def test_kyc_moving_inside_a_region_leaves_the_check_phase_entered() -> None:
    chart, step = start(kyc())
    step = send(chart, step, "SUBMITTED", "done.verify_id")
    assert "checks" not in step.exited and step.exited == ("checks.identity.verifying",)


def test_kyc_joins_when_both_checks_are_final_and_exits_the_check_phase_once() -> None:
    chart, step = start(kyc())
    step = send(chart, step, "SUBMITTED", "done.screen", "done.verify_id")
    assert step.configuration == ("review.first",)
    assert step.exited.count("checks") == 1


def test_kyc_a_failed_check_is_final_too_and_still_joins() -> None:
    chart, step = start(kyc())
    step = send(chart, step, "SUBMITTED", "error.verify_id", "done.screen")
    assert step.configuration == ("review.first",)


def test_kyc_pause_and_resume_returns_to_the_same_review_step() -> None:
    chart, step = start(kyc())
    step = send(chart, step, "SUBMITTED", "done.screen", "done.verify_id", "APPROVE", "PAUSE", "RESUME")
    assert step.configuration == ("review.second",)
    assert send(chart, step, "APPROVE").done


def test_kyc_the_timer_of_the_check_phase_escalates_from_any_region_state() -> None:
    chart, step = start(kyc())
    step = send(chart, step, "SUBMITTED", "done.verify_id", "after.3d")
    assert step.configuration == ("escalated",)
    assert send(chart, step, "RESOLVE").configuration == ("review.first",)
