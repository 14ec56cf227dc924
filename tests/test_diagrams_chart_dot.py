"""Statecharts in Graphviz: clusters for compound states, dashed regions, H nodes, clipped arrows.

Structure is read back from `dot -Tjson` (what Graphviz laid out), ids from the KYC chart:
s1 checks (parallel), s2/s8/s12 its regions, s3 documents, s17 review, s20 its history.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
from test_diagrams_chart_helpers import kyc_definition
from test_diagrams_helpers import AWKWARD_NAMES, Layout, layout, order_definition

from diagrams import draw, render
from statemachines import DefinitionError, history, machine, state


@pytest.fixture(scope="module")
def kyc(needs_dot_module: str) -> Layout:
    return layout(draw(kyc_definition()))


@pytest.fixture(scope="module")
def needs_dot_module() -> str:
    import shutil

    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz `dot` not installed (apt-get install graphviz)")
    return dot


def members(lay: Layout, cluster: str) -> set[str]:
    """Names of the nodes Graphviz placed inside `cluster` (at any depth)."""
    by_gvid = {o["_gvid"]: o["name"] for o in lay.graph["objects"]}
    return {by_gvid[i] for i in lay.nodes[cluster]["nodes"]}


def edge_from(lay: Layout, starts: str) -> tuple[str, str, Any]:
    found = [(t, h, e) for t, h, e in lay.edges if e.text.startswith(starts)]
    assert len(found) == 1, [e.text for _, _, e in found]
    return found[0]


def test_compound_state_is_a_cluster_labelled_with_its_name_and_actions(kyc: Layout) -> None:
    assert kyc.nodes["cluster_s17"].text == "review | entry / log_decision"
    assert {"s18", "s19", "s20"} <= members(kyc, "cluster_s17")


def test_parallel_regions_are_dashed_clusters_inside_the_parallel_cluster(kyc: Layout) -> None:
    assert "dashed" not in kyc.nodes["cluster_s1"].styles()
    for region, name in [("cluster_s2", "identity"), ("cluster_s8", "sanctions"), ("cluster_s12", "credit")]:
        assert kyc.nodes[region].text == name
        assert "dashed" in kyc.nodes[region].styles()
    inside = members(kyc, "cluster_s1")
    assert {"s4", "s9", "s13"} <= inside and "s17" not in inside


def test_a_nested_compound_state_is_a_cluster_inside_its_region(kyc: Layout) -> None:
    assert {"s4", "s5", "s6"} <= members(kyc, "cluster_s3") and "s7" not in members(kyc, "cluster_s3")
    assert "dashed" not in kyc.nodes["cluster_s3"].styles()


def test_each_compound_state_has_its_own_initial_marker_inside_it(kyc: Layout) -> None:
    for compound, first in [("s3", "s4"), ("s17", "s18"), ("s8", "s9")]:
        assert (f"{compound}_initial", first) in [(t, h) for t, h, _ in kyc.edges]
        assert f"{compound}_initial" in members(kyc, f"cluster_{compound}")
    assert not [t for t, _, _ in kyc.edges if t == "s1_initial"]  # a parallel state enters every region


def test_initial_marker_into_a_compound_child_attaches_to_its_cluster(kyc: Layout) -> None:
    [edge] = [e for t, h, e in kyc.edges if t == "s2_initial"]
    assert edge["lhead"] == "cluster_s3"


def test_history_is_a_small_circled_H_with_a_dotted_arrow_to_its_default(kyc: Layout) -> None:
    h = kyc.nodes["s20"]
    assert (h["shape"], h.text) == ("circle", "H")
    [default] = [e for t, hd, e in kyc.edges if t == "s20"]
    assert "dotted" in default.styles() and ("s20", "s18") in [(t, hd) for t, hd, _ in kyc.edges]


def test_deep_history_is_H_star(needs_dot_module: str) -> None:
    lay = layout(draw(machine("deep", initial="a", states={
        "a": state(initial="b", states={"b": state(), "h": history(default="b", deep=True)},
                   on={"OUT": "c"}),
        "c": state(on={"BACK": "a.h"}),
    })))  # fmt: skip
    assert lay.nodes["s2"].text == "H*"


def test_final_children_are_double_circles(kyc: Layout) -> None:
    for final in ["checked", "verified", "clear", "passed", "approved"]:
        assert kyc.state(final)["shape"] == "doublecircle"


def test_arrow_into_a_compound_state_ends_at_its_cluster(kyc: Layout) -> None:
    tail, head, edge = edge_from(kyc, "SUBMITTED")
    assert (tail, head, edge["lhead"]) == ("s0", "s1_anchor", "cluster_s1")


def test_arrow_out_of_a_compound_state_starts_at_its_cluster(kyc: Layout) -> None:
    tail, head, edge = edge_from(kyc, "WITHDRAW")
    assert (tail, edge["ltail"], head) == ("s1_anchor", "cluster_s1", kyc.node_id("withdrawn"))
    [join] = [e for _, _, e in kyc.edges if e.text == "done.state.checks"]
    assert (join["ltail"], join["lhead"]) == ("cluster_s1", "cluster_s17")  # cluster to cluster


def test_anchor_points_are_invisible(kyc: Layout) -> None:
    assert kyc.nodes["s1_anchor"]["style"] == "invis"


def test_timer_of_a_compound_state_is_dashed_and_leaves_its_cluster(kyc: Layout) -> None:
    tail, _, edge = edge_from(kyc, "after 3d")
    assert tail == "s1_anchor" and edge["ltail"] == "cluster_s1" and "dashed" in edge.styles()


def test_done_state_arrow_is_drawn_from_the_state_that_finished(kyc: Layout) -> None:
    tail, head, edge = edge_from(kyc, "done.state.checks.identity.documents")
    assert (tail, edge["ltail"], head) == ("s3_anchor", "cluster_s3", "s7")


def test_eventless_arrows_are_labelled_with_their_guard_or_always(kyc: Layout) -> None:
    assert kyc.edge("scored", "passed", "[good_score]").text == "[good_score]"
    assert kyc.edge("scored", "manual", "always").text == "always"


def test_arrow_to_a_history_state_ends_at_the_H(kyc: Layout) -> None:
    assert edge_from(kyc, "RESUME")[:2] == (kyc.node_id("paused"), "s20")


def child_to_parent() -> Any:
    return machine("reenter", initial="outer", states={
        "outer": state(initial="a", states={
            "a": state(on={"RESTART": "outer"}),   # a child's arrow to its own parent
        }, on={"RESET": "outer", "FIRST": "outer.a"}),  # self-transition, parent to child
    })  # fmt: skip


def test_arrows_between_a_cluster_and_its_own_children_are_not_clipped(needs_dot_module: str) -> None:
    graph = draw(child_to_parent())
    proc = subprocess.run(["dot", "-Tjson"], input=graph.source.encode(), capture_output=True, check=True)
    assert proc.stderr == b""  # Graphviz warns about lhead/ltail on an arrow inside the cluster
    lay = layout(graph)
    restart = edge_from(lay, "RESTART")
    assert restart[:2] == ("s1", "s0_anchor") and restart[2]["lhead"] is None
    first = edge_from(lay, "FIRST")
    assert first[:2] == ("s0_anchor", "s1") and first[2]["ltail"] is None


def test_a_compound_state_transition_to_itself_is_written_in_its_label(needs_dot_module: str) -> None:
    lay = layout(draw(child_to_parent()))
    assert lay.nodes["cluster_s0"].text == "outer | RESET \u21bb"
    assert not [e for _, _, e in lay.edges if e.text.startswith("RESET")]


def test_a_transition_shared_by_many_children_is_one_arrow_from_a_note(needs_dot_module: str) -> None:
    children = {f"c{i}": {"on": {"NEXT": f"c{i + 1}", "RESET": "start"}} for i in range(6)}
    children["c6"] = {"final": True}
    spec = {"name": "shared", "initial": "start", "states": {
        "start": {"on": {"GO": "work"}},
        "work": {"initial": "c0", "states": children},
    }}  # fmt: skip
    lay = layout(draw(spec))
    resets = [(t, e) for t, _, e in lay.edges if e.text.startswith("RESET")]
    assert len(resets) == 1 and lay.nodes[resets[0][0]].text.startswith("from 6 states | work.c0, work.c1")


def test_flat_machines_are_drawn_without_clusters() -> None:
    source = draw(order_definition()).source
    assert "cluster" not in source and "compound" not in source and "lhead" not in source


def test_awkward_names_inside_clusters_render_exactly(needs_dot_module: str) -> None:
    names = [n for n in AWKWARD_NAMES if "." not in n]  # `.` separates a statechart's path
    inner = {n: {"on": {f'go "{i}" <&>': names[(i + 1) % len(names)]}} for i, n in enumerate(names)}
    spec = {"name": "awkward chart", "initial": "outer", "states": {
        "outer": {"initial": names[0], "states": inner, "on_enter": ['ent"er <x>']},
    }}  # fmt: skip
    lay = layout(draw(spec))
    assert lay.nodes["cluster_s0"].text == 'outer | entry / ent"er <x>'
    for name in names:
        assert lay.state(name).text == name
    assert lay.edge(names[0], names[1], "go").text == 'go "0" <&>'


def test_unknown_targets_in_a_chart_dict_are_a_definition_error() -> None:
    spec = {"name": "bad", "initial": "a", "states": {"a": {"initial": "x", "states": {
        "x": {"on": {"GO": "nowhere"}}}}}}  # fmt: skip
    with pytest.raises(DefinitionError) as exc:
        draw(spec)
    assert exc.value.problems == ["state 'a.x': event 'GO' targets unknown state 'nowhere'"]


def big_chart(regions: int = 6, depth: int = 3, width: int = 5) -> dict[str, Any]:
    """`regions` parallel regions, each `depth` compound levels of `width` chained states."""

    def level(prefix: str, d: int) -> dict[str, Any]:
        states: dict[str, Any] = {}
        for i in range(width):
            name = f"{prefix}{d}_{i}"
            nxt = f"{prefix}{d}_{i + 1}" if i + 1 < width else None
            st: dict[str, Any] = {"on": {"NEXT": nxt}} if nxt else {"final": True}
            if d < depth and i == 0:
                st = {**level(f"{name}_", d + 1), "on": {"NEXT": nxt, "JUMP": "top_done"}}
            states[name] = st
        return {"initial": f"{prefix}{d}_0", "states": states}

    body = {f"r{r}": level(f"r{r}_", 1) for r in range(regions)}
    return {"name": "big", "initial": "work", "states": {
        "work": {"type": "parallel", "states": body, "on": {"done.state.work": "top_done"},
                 "after": {"1d": "top_done"}},
        "top_done": {"final": True},
    }}  # fmt: skip


def test_a_big_chart_renders_in_time(needs_dot_module: str) -> None:
    started = time.monotonic()
    data = render(draw(big_chart()), "json")
    assert time.monotonic() - started < 30
    assert data.count(b'"cluster_') > 6 * 3
