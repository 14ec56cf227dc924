"""Definition diagrams: structure checked on Graphviz's own layout (`dot -Tjson`)."""

from __future__ import annotations

import shutil

import graphviz
import pytest
from test_diagrams_helpers import Layout, layout, order_definition

from diagrams import draw
from statemachines.spec import MachineSpec


@pytest.fixture(scope="module")
def orders() -> Layout:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` not installed (apt-get install graphviz)")
    return layout(draw(order_definition()))


def test_draw_returns_a_digraph_with_dot_source() -> None:
    g = draw(order_definition())
    assert isinstance(g, graphviz.Digraph)
    assert g.source.startswith("// statemachines diagram\ndigraph {")


def test_draw_needs_no_graphviz_binary(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "rankdir=LR" in draw(order_definition()).source


def test_draw_accepts_definition_spec_and_dict() -> None:
    definition = order_definition()
    spec = definition.spec
    as_dict = spec.model_dump(mode="json")
    assert draw(definition).source == draw(spec).source == draw(as_dict).source
    assert isinstance(spec, MachineSpec)


def test_draw_rejects_other_types_with_a_clear_message() -> None:
    with pytest.raises(TypeError, match="expected a Definition"):
        draw(42)


def test_jupyter_displays_the_result_as_svg(needs_dot: str) -> None:
    bundle = draw(order_definition())._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]


def test_layout_is_left_to_right(orders: Layout) -> None:
    assert orders.graph["rankdir"] == "LR"


def test_graph_title_is_the_machine_name(orders: Layout) -> None:
    assert orders.title == "order-lifecycle"


def test_every_state_is_one_node(orders: Layout) -> None:
    for name in order_definition().spec.states:
        orders.state(name)


def test_final_states_are_double_circles(orders: Layout) -> None:
    assert orders.state("completed")["shape"] == "doublecircle"
    assert orders.state("cancelled")["shape"] == "doublecircle"
    assert orders.state("pending")["shape"] == "box"


def test_initial_state_has_a_start_dot_pointing_at_it(orders: Layout) -> None:
    assert orders.nodes["__initial__"]["shape"] == "point"
    targets = [head for tail, head, _ in orders.edges if tail == "__initial__"]
    assert targets == [orders.node_id("pending")]


def test_edge_label_is_event_guard_and_action(orders: Layout) -> None:
    edge = orders.edge("pending", "processing", "PAYMENT_RECEIVED")
    assert edge.text == "PAYMENT_RECEIVED | [paid_enough] / record_payment"


def test_plain_event_edge_is_just_the_event(orders: Layout) -> None:
    assert orders.edge("processing", "shipped", "SHIPPED").text == "SHIPPED"


def test_timer_is_a_dashed_edge_labelled_after(orders: Layout) -> None:
    timer = orders.edge("pending", "cancelled", "after")
    assert timer.text == "after 7d"
    assert "dashed" in timer.styles()
    assert "dashed" not in orders.edge("pending", "cancelled", "CANCEL").styles()


def test_entry_and_exit_actions_are_inside_the_state_label(orders: Layout) -> None:
    assert orders.state("processing").text == ("processing | entry / notify_warehouse | exit / release_stock")


def test_effects_and_internal_transitions_are_inside_the_state_label(orders: Layout) -> None:
    text = orders.state("shipped").text
    assert "effect / send_tracking_mail (5 attempts)" in text
    assert "done.send_tracking_mail / record_payment" in text
    assert all("done." not in e.text for _, _, e in orders.edges)


def test_error_edges_of_effects_are_red(orders: Layout) -> None:
    edge = orders.edge("shipped", "cancelled", "error.send_tracking_mail")
    assert edge["color"] == "#b91c1c"


def test_a_self_transition_is_a_loop_edge(needs_dot: str) -> None:
    spec = {
        "name": "m",
        "initial": "a",
        "states": {"a": {"on": {"PING": "a", "END": "b"}}, "b": {"final": True}},
    }
    lay = layout(draw(spec))
    assert lay.edge("a", "a", "PING").text == "PING"


def test_thirty_states_stay_left_to_right_and_wide(needs_dot: str) -> None:
    states = {f"step_{i:02d}": {"on": {"NEXT": f"step_{i + 1:02d}"}} for i in range(34)}
    states["step_34"] = {"final": True}
    lay = layout(draw({"name": "long", "initial": "step_00", "states": states}))
    xs = [float(lay.state(f"step_{i:02d}")["pos"].split(",")[0]) for i in range(35)]
    assert xs == sorted(xs)
    width, height = (float(v) for v in lay.graph["bb"].split(",")[2:])
    assert width > 5 * height
