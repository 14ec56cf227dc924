"""SCXML 3.12.1 event descriptors and the selection rules around them, on the pure chart core."""

from __future__ import annotations

import pytest

from statemachines import EventNotAllowed, machine, state
from statemachines.chart import CompiledChart
from statemachines.chart.events import Lookup, descriptors, matches
from tests.scxml_support import Run, yaml_run


def test_3_12_1_a_descriptor_matches_the_event_itself_and_its_token_extensions() -> None:
    assert matches("error", "error")
    assert matches("error", "error.send.failed")
    assert matches("a.b", "a.b.c")
    assert not matches("a.b", "a.bc")
    assert not matches("error.send", "error")


def test_3_12_1_the_wildcard_matches_every_event() -> None:
    assert matches("*", "anything.at.all")


def test_3_12_1_a_trailing_dot_star_is_the_same_descriptor() -> None:
    assert descriptors("error.* done.state.*") == ("error", "done.state")


def test_3_12_1_a_key_with_several_descriptors_matches_any_of_them() -> None:
    run = yaml_run("""
name: several
initial: top
states:
  top:
    initial: a
    states:
      a: {on: {"go start": b}}
      b: {on: {"back": a}}
""")
    assert run.send("start").configuration == ("top.b",)
    assert run.send("back").configuration == ("top.a",)
    assert run.send("go.now").configuration == ("top.b",)


def test_3_12_1_a_prefix_key_takes_a_longer_event_but_not_a_longer_token() -> None:
    run = yaml_run("""
name: prefixes
initial: a
states:
  a: {initial: waiting, states: {waiting: {}}, on: {"order.paid": b}}
  b: {final: true}
""")
    with pytest.raises(EventNotAllowed):
        run.send("order.paidx")
    assert run.send("order.paid.card").configuration == ("b",)


def test_3_13_the_first_matching_transition_in_document_order_wins_across_keys() -> None:
    run = yaml_run("""
name: order_of_keys
initial: top
states:
  top:
    initial: a
    states:
      a: {on: {"*": wild, "go": specific}}
      wild: {final: true}
      specific: {final: true}
""")
    assert run.send("go").configuration == ("top.wild",)


def test_done_state_of_a_parallel_state_does_not_match_its_regions_done_events() -> None:
    """Our paths are dotted: `done.state.p` must not take `done.state.p.r1` (a region finished)."""
    run = yaml_run("""
name: joins
initial: p
states:
  p:
    type: parallel
    states:
      r1: {initial: x, states: {x: {on: {A: y}}, y: {final: true}}}
      r2: {initial: x, states: {x: {on: {B: y}}, y: {final: true}}}
    on: {"done.state.p": joined}
  joined: {final: true}
""")
    assert run.send("A").configuration == ("p.r1.y", "p.r2.x")
    assert run.send("B").configuration == ("joined",)


def test_a_lookup_probes_only_declared_prefixes() -> None:
    lookup = Lookup(["a", "a.b.c", "*"])
    assert lookup.keys("a.b.c.d") == ("a.b.c", "a", "*")
    assert lookup.keys("z") == ("*",)


def test_charts_without_descriptors_keep_exact_names_and_their_errors() -> None:
    chart = CompiledChart(machine("plain", initial="a", states={
        "a": state(initial="x", states={"x": state(on={"GO": "y"}), "y": state()}),
    }))  # fmt: skip
    run = Run(chart)
    with pytest.raises(EventNotAllowed):
        run.send("GONE")
    assert run.send("GO").configuration == ("a.y",)


def test_an_event_named_exactly_like_a_key_with_spaces_still_matches_it() -> None:
    """Charts matched whole keys before descriptors existed; an event name with spaces keeps
    working (SCXML event names have none)."""
    run = yaml_run("""
name: spaced
initial: top
states:
  top: {initial: a, states: {a: {on: {"place order": b}}, b: {}}}
""")
    assert run.send("place order").configuration == ("top.b",)


def test_flat_machines_keep_exact_names_for_keys_with_spaces_or_a_star() -> None:
    from statemachines import Engine, ManualClock

    flat = machine("flat_names", initial="a", states={
        "a": state(on={"*": "b", "x y": "b"}), "b": state(on={"*": "a"}),
    })  # fmt: skip
    assert not flat.spec.is_chart
    engine = Engine("sqlite:///:memory:", clock=ManualClock())
    engine.register(flat)
    engine.start("flat_names", instance_id="f")
    with pytest.raises(EventNotAllowed):
        engine.send("f", "anything")
    assert engine.send("f", "x y").state == "b"
    engine.close()
