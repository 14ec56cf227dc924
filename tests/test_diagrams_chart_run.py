"""Runs of statecharts: the whole active configuration marked, visited states filled, arrows numbered.

History records come from `CompiledChart` in memory (`chart_history`), shaped as the engine writes
them: one per event, with the configuration after it.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace
from typing import Any

import pytest
from test_diagrams_chart_helpers import KYC_EVENTS, chart_history, kyc_definition
from test_diagrams_helpers import Layout, layout

from diagrams import draw_run
from diagrams.run import load

CURRENT, VISITED, ACTIVE_CLUSTER = "#fde68a", "#dbeafe", "#fffbeb"


@pytest.fixture(scope="module")
def needs_dot_module() -> str:
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz `dot` not installed (apt-get install graphviz)")
    return dot


def kyc_run(n: int) -> Layout:
    return layout(draw_run(chart_history(kyc_definition(), KYC_EVENTS[:n]), spec=kyc_definition()))


@pytest.fixture(scope="module")
def checking(needs_dot_module: str) -> Layout:
    """Stopped inside `checks`: scanning, screening and scoring active; APPROVE refused."""
    return kyc_run(3)


@pytest.fixture(scope="module")
def resumed(needs_dot_module: str) -> Layout:
    return kyc_run(len(KYC_EVENTS))


def taken(spec_events: int) -> dict[str, list[int]]:
    """Edge label -> history seqs, from the overlay (no Graphviz needed)."""
    chart, run = load(chart_history(kyc_definition(), KYC_EVENTS[:spec_events]), spec=kyc_definition())
    return {f"{chart.edges[i].source} {chart.edges[i].label}": seqs for i, seqs in run.taken.items()}


def test_every_active_atomic_state_is_current(checking: Layout) -> None:
    for name in ["scanning", "screening", "scoring"]:
        assert checking.state(name)["fillcolor"] == CURRENT
        assert checking.state(name).text.endswith("current state")


def test_every_active_compound_state_and_region_is_marked(checking: Layout) -> None:
    for cluster in ["cluster_s1", "cluster_s2", "cluster_s3", "cluster_s8", "cluster_s12"]:
        assert checking.nodes[cluster]["fillcolor"] == ACTIVE_CLUSTER
        assert checking.nodes[cluster].text.endswith("current state")
    assert "filled" not in checking.nodes["cluster_s17"].styles()  # review: not reached


def test_visited_states_that_are_no_longer_active_are_filled(checking: Layout) -> None:
    assert checking.state("uploading")["fillcolor"] == VISITED
    assert checking.state("collecting")["fillcolor"] == VISITED
    assert "filled" not in checking.state("flagged").styles()


def test_the_event_is_numbered_on_the_arrow_of_its_region(checking: Layout) -> None:
    assert checking.edge("uploading", "scanning", "UPLOADED").text == "UPLOADED | #3"


def test_an_arrow_into_a_parallel_state_is_numbered(checking: Layout) -> None:
    [submitted] = [e for _, _, e in checking.edges if e.text.startswith("SUBMITTED")]
    assert submitted.text == "SUBMITTED | #2"


def test_rejected_events_are_listed_and_named_on_the_state_that_refused(checking: Layout) -> None:
    assert checking.nodes["__rejected__"].text == "rejected events (1) | #4 APPROVE in checks: not allowed"
    assert "rejected #4" in checking.nodes["cluster_s1"].text


def test_joins_and_eventless_arrows_taken_inside_a_step_are_numbered() -> None:
    arrows = taken(len(KYC_EVENTS))
    assert arrows["checks.identity.documents.scanning done.verify_id"] == [5]
    assert arrows["checks.identity done.state.checks.identity.documents"] == [5]  # the inner join
    assert arrows["checks.credit.scored always"] == [7]  # the low score went to manual
    assert "checks.credit.scored [good_score]" not in arrows
    assert arrows["checks done.state.checks"] == [8]  # the last region finishing joins checks


def test_a_guarded_eventless_arrow_is_chosen_by_where_the_run_went() -> None:
    history = chart_history(kyc_definition(), KYC_EVENTS[:6], ctx='{"score": 700}')
    chart, run = load(history, spec=kyc_definition())
    labels = {chart.edges[i].label for i in run.taken}
    assert "[good_score]" in labels and "always" not in labels


def test_a_history_arrow_is_numbered_and_the_remembered_state_is_current(resumed: Layout) -> None:
    [resume] = [e for t, h, e in resumed.edges if h == "s20"]
    assert resume.text == "RESUME | #11"
    assert resumed.state("second").text == "second | current state"
    assert resumed.nodes["cluster_s17"]["fillcolor"] == ACTIVE_CLUSTER
    assert "filled" not in resumed.nodes["cluster_s1"].styles() or (
        resumed.nodes["cluster_s1"]["fillcolor"] != ACTIVE_CLUSTER
    )


def test_an_arrow_taken_twice_shows_both_numbers(needs_dot_module: str) -> None:
    events = [*KYC_EVENTS, ("PAUSE", {}), ("RESUME", {})]
    lay = layout(draw_run(chart_history(kyc_definition(), events), spec=kyc_definition()))
    [resume] = [e for _, h, e in lay.edges if h == "s20"]
    assert resume.text == "RESUME | #11, #13 (2\u00d7)"


def test_records_without_a_configuration_count_as_their_target() -> None:
    history = [{k: v for k, v in r.items() if k != "configuration"}
               for r in chart_history(kyc_definition(), KYC_EVENTS[:1])]  # fmt: skip
    _, run = load(history, spec=kyc_definition())
    assert run.active == {"checks"} and run.current == "checks"


def test_a_finished_chart_is_completed() -> None:
    history = chart_history(kyc_definition(), [*KYC_EVENTS, ("APPROVE", {})])
    _, run = load(history, spec=kyc_definition())
    assert (run.status, run.current, run.active) == ("completed", "approved", {"approved"})


class FakeEngine:
    """The three calls draw_run makes on an Engine, with a snapshot that has a configuration."""

    def __init__(self, history: list[dict[str, Any]]) -> None:
        self.records = history
        last = history[-1]
        self.snap = SimpleNamespace(machine="kyc", definition_version="v1", status="active",
                                    state=last["target"], configuration=last["configuration"])  # fmt: skip

    def get(self, instance_id: str) -> Any:
        return self.snap

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        return self.records

    def stored_spec(self, machine: str, version: str | None) -> Any:
        return kyc_definition().spec


def test_drawn_from_an_engine_the_snapshot_configuration_is_current(needs_dot_module: str) -> None:
    lay = layout(draw_run(FakeEngine(chart_history(kyc_definition(), KYC_EVENTS[:3])), "k1"))
    assert lay.title == "kyc run k1: active, state checks, 4 history records, 1 rejected"
    assert lay.state("screening")["fillcolor"] == CURRENT
