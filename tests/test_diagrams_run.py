"""Run diagrams: one instance's history drawn on its definition, from an engine or a history list."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from test_diagrams_helpers import Layout, layout, order_definition, run_order

from diagrams import draw_run
from statemachines import Engine

VISITED = "#dbeafe"


@pytest.fixture(scope="module")
def a1(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` not installed (apt-get install graphviz)")
    engine = Engine(f"sqlite:///{tmp_path_factory.mktemp('run') / 'a1.db'}")
    run_order(engine)
    lay = layout(draw_run(engine, "A1"))
    engine.close()
    return lay


def test_visited_states_are_filled(a1: Layout) -> None:
    for name in ["pending", "processing", "backorder", "shipped"]:
        assert "filled" in a1.state(name).styles()
        assert a1.state(name)["fillcolor"] == VISITED


def test_unvisited_states_are_not_filled(a1: Layout) -> None:
    assert "filled" not in a1.state("cancelled").styles()


def test_taken_edges_are_numbered_by_history_seq(a1: Layout) -> None:
    assert a1.edge("pending", "processing", "PAYMENT").text.endswith(" | #3")
    assert a1.edge("processing", "shipped", "SHIPPED").text == "SHIPPED | #8"


def test_a_loop_taken_twice_shows_both_numbers_and_the_count(a1: Layout) -> None:
    assert a1.edge("processing", "backorder", "OUT_OF_STOCK").text == "OUT_OF_STOCK | #4, #6 (2\u00d7)"
    assert a1.edge("backorder", "processing", "RESTOCKED").text == "RESTOCKED | #5, #7 (2\u00d7)"


def test_taken_edges_are_bold_and_others_grey(a1: Layout) -> None:
    assert float(a1.edge("processing", "shipped", "SHIPPED")["penwidth"]) > 2
    assert a1.edge("pending", "cancelled", "CANCEL")["color"] == "#9ca3af"


def test_start_edge_is_numbered_one(a1: Layout) -> None:
    [start] = [e for tail, _, e in a1.edges if tail == "__initial__"]
    assert start.text == "start #1"


def test_rejected_events_are_listed_in_a_note(a1: Layout) -> None:
    note = a1.nodes["__rejected__"]
    assert note["shape"] == "note"
    assert note.text == (
        "rejected events (2) | #2 PAYMENT_RECEIVED in pending: refused by every guard"
        " | #9 CANCEL in shipped: not allowed"
    )


def test_states_name_the_rejections_they_saw(a1: Layout) -> None:
    assert "rejected #2" in a1.state("pending").text


def test_completed_instance_shows_its_final_state_as_finished(a1: Layout) -> None:
    done = a1.state("completed")
    assert done.text == "completed | finished here"
    assert done["fillcolor"] == "#bbf7d0" and float(done["penwidth"]) == 3


def test_title_names_the_instance_and_its_status(a1: Layout) -> None:
    assert a1.title == "order-lifecycle run A1: completed, state completed, 10 history records, 2 rejected"


def test_active_instance_highlights_its_current_state(db_url: str, needs_dot: str) -> None:
    engine = Engine(db_url)
    engine.register(order_definition())
    engine.start("order-lifecycle", {"total": 40}, instance_id="B2")
    engine.send("B2", "PAYMENT_RECEIVED", {"amount": 40})
    engine.send("B2", "OUT_OF_STOCK")
    current = layout(draw_run(engine, "B2")).state("backorder")
    assert current.text == "backorder | current state"
    assert current["fillcolor"] == "#fde68a" and float(current["penwidth"]) == 3
    engine.close()


def test_cancelled_instance_is_shown_cancelled_in_its_state(db_url: str, needs_dot: str) -> None:
    engine = Engine(db_url)
    engine.register(order_definition())
    engine.start("order-lifecycle", {"total": 40}, instance_id="C3")
    engine.cancel("C3", reason="customer asked")
    lay = layout(draw_run(engine, "C3"))
    assert lay.state("pending").text == "pending | cancelled here"
    assert "filled" not in lay.state("cancelled").styles()
    assert lay.title.startswith("order-lifecycle run C3: cancelled, state pending")
    engine.close()


def test_run_is_drawn_from_the_database_alone(db_url: str, needs_dot: str) -> None:
    writer = Engine(db_url)
    run_order(writer)
    writer.close()
    reader = Engine(db_url)  # registers nothing: the spec comes from the definitions table
    lay = layout(draw_run(reader, "A1"))
    assert lay.edge("backorder", "processing", "RESTOCKED").text.endswith("(2\u00d7)")
    reader.close()


def test_run_from_a_history_list_and_a_spec(tmp_path: Path, needs_dot: str) -> None:
    engine = Engine(f"sqlite:///{tmp_path / 'h.db'}")
    run_order(engine)
    history = engine.history("A1")
    engine.close()
    from_list = layout(draw_run(history, spec=order_definition(), instance_id="A1"))
    assert from_list.state("completed").text == "completed | finished here"
    as_dicts = layout(draw_run([r.as_dict() for r in history], spec=order_definition().spec))
    assert as_dicts.edge("processing", "backorder", "OUT").text.endswith("(2\u00d7)")


def test_failed_status_given_with_a_history_list_is_shown(needs_dot: str) -> None:
    history = [{"seq": 1, "event": "start", "source": None, "target": "shipped", "outcome": "applied"}]
    lay = layout(draw_run(history, spec=order_definition(), status="failed"))
    assert lay.state("shipped").text.endswith("failed here")
    assert lay.state("shipped")["fillcolor"] == "#fecaca"


def test_history_steps_missing_from_the_definition_are_drawn_in_red(needs_dot: str) -> None:
    history: list[dict[str, Any]] = [
        {"seq": 1, "event": "start", "source": None, "target": "pending", "outcome": "applied"},
        {"seq": 2, "event": "ARCHIVE", "source": "pending", "target": "archived", "outcome": "applied"},
    ]
    lay = layout(draw_run(history, spec=order_definition()))
    assert lay.state("archived").text == "archived | not in this definition | current state"
    edge = lay.edge("pending", "archived", "ARCHIVE")
    assert edge.text == "ARCHIVE | not in this definition | #2" and edge["color"] == "#b91c1c"


def test_internal_transition_taken_is_numbered_inside_the_state(needs_dot: str) -> None:
    history = [
        {"seq": 1, "event": "start", "source": None, "target": "shipped", "outcome": "applied"},
        {
            "seq": 2,
            "event": "done.send_tracking_mail",
            "source": "shipped",
            "target": "shipped",
            "outcome": "applied",
        },
    ]
    lay = layout(draw_run(history, spec=order_definition()))
    text = lay.state("shipped").text
    assert "done.send_tracking_mail / record_payment" in text and " | #2 | " in text


def test_draw_run_needs_an_instance_id_with_an_engine(tmp_path: Path) -> None:
    engine = Engine(f"sqlite:///{tmp_path / 'e.db'}")
    with pytest.raises(TypeError, match="instance id is missing"):
        draw_run(engine)
    engine.close()


def test_draw_run_needs_a_spec_with_a_history_list() -> None:
    with pytest.raises(TypeError, match="needs the definition"):
        draw_run([])


def boom(ctx: Any, call: Any) -> None:
    raise RuntimeError("smtp down")


def test_failed_instance_shows_the_failure_in_its_state(db_url: str, needs_dot: str) -> None:
    from statemachines import Effect, ManualClock, Retry, machine, state

    mail = machine(
        "mail",
        initial="sending",
        states={
            "sending": state(effect=Effect(boom, retry=Retry(max_attempts=1)), on={"done.boom": "sent"}),
            "sent": state(final=True),
        },
    )
    engine = Engine(db_url, clock=ManualClock())
    engine.register(mail)
    engine.start("mail", instance_id="M1")
    engine.run_due()
    assert engine.get("M1").status == "failed"
    lay = layout(draw_run(engine, "M1"))
    engine.close()
    sending = lay.state("sending")
    assert "failed here" in sending.text and "RuntimeError: smtp down" in sending.text
    assert sending["fillcolor"] == "#fecaca"


def test_failed_outcome_in_a_history_list_means_failed(needs_dot: str) -> None:
    spec = {
        "name": "mail",
        "initial": "sending",
        "states": {"sending": {"effects": ["boom"], "on": {"done.boom": "sent"}}, "sent": {"final": True}},
    }
    history = [
        {"seq": 1, "event": "start", "source": None, "target": "sending", "outcome": "applied"},
        {
            "seq": 2,
            "event": "error.boom",
            "source": "sending",
            "target": "sending",
            "outcome": "failed",
            "reason": "effect 'boom' failed 3 times",
        },
    ]
    lay = layout(draw_run(history, spec=spec))
    assert lay.state("sending").text.endswith("failed here | effect 'boom' failed 3 times")
