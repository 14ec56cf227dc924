"""Mermaid `stateDiagram-v2` text, checked line by line."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_diagrams_helpers import order_definition, run_order

from diagrams import run_to_mermaid, to_mermaid
from statemachines import Engine

DEFINITION = """\
stateDiagram-v2
    direction LR
    %% order-lifecycle
    state "pending" as s0
    state "processing" as s1
    s1 : entry / notify_warehouse
    s1 : exit / release_stock
    state "shipped" as s2
    s2 : effect / send_tracking_mail (5 attempts)
    s2 : done.send_tracking_mail / record_payment
    state "backorder" as s3
    state "completed" as s4
    state "cancelled" as s5
    [*] --> s0
    s0 --> s1 : PAYMENT_RECEIVED [paid_enough] / record_payment
    s0 --> s5 : CANCEL
    s0 --> s5 : after 7d
    s1 --> s2 : SHIPPED
    s1 --> s3 : OUT_OF_STOCK
    s2 --> s4 : DELIVERED
    s2 --> s5 : error.send_tracking_mail
    s3 --> s1 : RESTOCKED
    s4 --> [*]
    s5 --> [*]
"""


@pytest.fixture
def a1_lines(tmp_path: Path) -> list[str]:
    engine = Engine(f"sqlite:///{tmp_path / 'm.db'}")
    run_order(engine)
    text = run_to_mermaid(engine, "A1")
    engine.close()
    return text.splitlines()


def test_definition_lines() -> None:
    assert to_mermaid(order_definition()).splitlines() == DEFINITION.splitlines()


def test_starts_with_the_header_and_left_to_right() -> None:
    assert to_mermaid(order_definition()).splitlines()[:2] == ["stateDiagram-v2", "    direction LR"]


def test_every_state_is_declared_once_with_its_label() -> None:
    lines = to_mermaid(order_definition()).splitlines()
    declared = [ln for ln in lines if ln.startswith("    state ")]
    assert declared == [
        f'    state "{name}" as s{i}' for i, name in enumerate(order_definition().spec.states)
    ]


def test_final_states_lead_to_the_end_marker() -> None:
    ends = [ln for ln in to_mermaid(order_definition()).splitlines() if ln.endswith("--> [*]")]
    assert ends == ["    s4 --> [*]", "    s5 --> [*]"]


def test_run_numbers_taken_edges_by_history_seq(a1_lines: list[str]) -> None:
    assert "    [*] --> s0 : start #1" in a1_lines
    assert "    s0 --> s1 : PAYMENT_RECEIVED [paid_enough] / record_payment \u00b7 #3" in a1_lines
    assert "    s2 --> s4 : DELIVERED \u00b7 #10" in a1_lines


def test_run_counts_a_loop_taken_twice(a1_lines: list[str]) -> None:
    assert "    s1 --> s3 : OUT_OF_STOCK \u00b7 #4, #6 (2\u00d7)" in a1_lines
    assert "    s3 --> s1 : RESTOCKED \u00b7 #5, #7 (2\u00d7)" in a1_lines


def test_run_leaves_untaken_edges_unnumbered(a1_lines: list[str]) -> None:
    assert "    s0 --> s5 : CANCEL" in a1_lines


def test_run_classes_visited_current_and_unvisited_states(a1_lines: list[str]) -> None:
    assert "    class s0,s1,s2,s3 visited" in a1_lines
    assert "    class s4 completed" in a1_lines
    assert "    class s5 unvisited" in a1_lines
    defined = {ln.split()[1] for ln in a1_lines if ln.startswith("    classDef ")}
    assert {"visited", "completed", "unvisited"} <= defined


def test_run_lists_rejected_events_in_notes(a1_lines: list[str]) -> None:
    start = a1_lines.index("    note right of s0")
    assert a1_lines[start : start + 3] == [
        "    note right of s0",
        "        rejected #2 PAYMENT_RECEIVED in pending: refused by every guard",
        "    end note",
    ]
    assert "        rejected #9 CANCEL in shipped: not allowed" in a1_lines


def test_run_of_an_active_instance_marks_the_current_state(tmp_path: Path) -> None:
    engine = Engine(f"sqlite:///{tmp_path / 'b.db'}")
    engine.register(order_definition())
    engine.start("order-lifecycle", {"total": 40}, instance_id="B2")
    lines = run_to_mermaid(engine, "B2").splitlines()
    engine.close()
    assert "    class s0 current" in lines
    assert "    %% order-lifecycle run B2: active, state pending, 1 history record" in lines
