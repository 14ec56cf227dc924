"""Migrating statechart instances: `state_map` maps leaf or compound states (a compound state's
descendants follow it), the mapped states must form a configuration of the target version,
`sm_chart_states` and the timers of each active state follow, and a flat instance can move into
a statechart (its new ancestors are entered without running anything)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from statemachines import Engine, ManualClock, machine, parallel, state


def work(version: str, outer: str = "work", review: str = "review") -> Any:
    return machine(
        "job",
        initial=outer,
        version=version,
        states={
            outer: state(
                initial="draft",
                states={
                    "draft": state(on={"SUBMIT": review}),
                    review: state(on={"APPROVE": "done"}, after={"1h": "draft"}),
                },
            ),
            "done": state(final=True),
        },
    )


def checks(version: str, second: str = "b") -> Any:
    return machine(
        "checks",
        initial="checks",
        version=version,
        states={
            "checks": parallel(
                {
                    "a": state(initial="x", states={"x": state(on={"GO": "y"}), "y": state()}),
                    second: state(initial="x", states={"x": state(after={"1d": "y"}), "y": state()}),
                }
            ),
        },
    )


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    eng = Engine(db_url, clock=clock)
    yield eng
    eng.close()


def reviewing(engine: Engine) -> None:
    engine.register(work("1"))
    engine.start("job", instance_id="j1")
    engine.send("j1", "SUBMIT")


def test_a_leaf_state_is_mapped_inside_its_compound_state(engine: Engine) -> None:
    reviewing(engine)
    engine.register(work("2", review="checking"))
    report = engine.migrate(["j1"], state_map={"work.review": "work.checking"})
    assert report.skipped == []
    snap = engine.get("j1")
    assert (snap.configuration, snap.definition_version) == (("work.checking",), "2")
    assert [(t.state, t.event) for t in engine.status("j1").timers] == [("work.checking", "after.1h")]
    assert engine.instances(machine="job", state="work.checking")[0].id == "j1"
    assert engine.send("j1", "APPROVE").state == "done"


def test_a_compound_state_mapped_carries_its_descendants(engine: Engine, clock: ManualClock) -> None:
    reviewing(engine)
    engine.register(work("2", outer="job"))
    engine.migrate(["j1"], state_map={"work": "job"})
    assert engine.get("j1").configuration == ("job.review",)
    assert engine.instances(machine="job", state="job")[0].id == "j1"
    assert engine.instances(machine="job", state="work") == []
    clock.advance("1h")
    engine.run_due()
    assert engine.get("j1").configuration == ("job.draft",)


def test_a_kept_chart_state_keeps_its_timer(engine: Engine) -> None:
    reviewing(engine)
    before = engine.status("j1").timers
    engine.register(work("1b"))  # identical states, another name
    engine.migrate(["j1"])
    assert engine.status("j1").timers == before


def test_a_map_onto_a_compound_state_without_a_child_is_skipped(engine: Engine) -> None:
    reviewing(engine)
    engine.register(work("2", review="checking"))
    report = engine.migrate(["j1"], state_map={"work.review": "work"})
    assert "compound state 'work' of version '2' would have no active child" in report.skipped[0].reason
    assert engine.get("j1").definition_version == "1"


def test_a_parallel_region_is_renamed_with_its_children(engine: Engine) -> None:
    engine.register(checks("1"))
    engine.start("checks", instance_id="c1")
    engine.send("c1", "GO")
    engine.register(checks("2", second="c"))
    report = engine.migrate(["c1"], state_map={"checks.b": "checks.c"})
    assert report.skipped == []
    assert engine.get("c1").configuration == ("checks.a.y", "checks.c.x")
    assert [t.state for t in engine.status("c1").timers] == ["checks.c.x"]


def test_a_parallel_state_missing_a_region_is_skipped(engine: Engine) -> None:
    engine.register(checks("1"))
    engine.start("checks", instance_id="c1")
    engine.register(checks("2", second="c"))
    report = engine.migrate(["c1"])
    assert "'checks.b'" in report.skipped[0].reason
    assert engine.get("c1").definition_version == "1"


def test_a_flat_instance_moves_into_a_statechart(engine: Engine) -> None:
    engine.register(
        machine("job", initial="draft", version="flat",
                states={"draft": state(on={"SUBMIT": "review"}), "review": state(on={"APPROVE": "done"}),
                        "done": state(final=True)})
    )  # fmt: skip
    engine.start("job", instance_id="j1")
    engine.send("j1", "SUBMIT")
    engine.register(work("2"))
    report = engine.migrate(["j1"], state_map={"review": "work.review"})
    assert report.skipped == [] and report.migrated[0].armed == ("work.review",)
    snap = engine.get("j1")
    assert snap.configuration == ("work.review",)
    assert engine.history("j1")[-1].configuration == ("work.review",)
    assert engine.send("j1", "APPROVE").state == "done"
