"""SCXML's one external queue, SQLite and PostgreSQL: an event from outside (`engine.send`) to a
chart with executable content is applied after the instance's `<send>` events already due (each
delivered as its own step, in the caller's transaction), never before them."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from statemachines import (
    Engine,
    EventNotAllowed,
    InstanceClosed,
    ManualClock,
    TokenInvalid,
    loads_definition,
    sending,
)
from statemachines.scxml import load
from statemachines.sends import pending
from tests.scxml_support import scxml

#: `go` means something else before and after the queued `first` is delivered.
ORDER = scxml("""
  <datamodel><data id="log" expr="[]"/></datamodel>
  <state id="s0">
    <onentry><send event="first"/></onentry>
    <transition event="first" target="s1"><assign location="log" expr="log + [_event.name]"/></transition>
    <transition event="go" target="overtaken"/>
  </state>
  <state id="s1">
    <transition event="go" target="after"><assign location="log" expr="log + [_event.name]"/></transition>
  </state>
  <state id="after">
    <onentry><send event="again"/></onentry>
    <transition event="again" target="s1"/>
  </state>
  <state id="overtaken"/>""", ' name="order"')

#: Sends with and without delay, delivered by due time: `soon` (1s) before `now` (2s, sent first).
DUE = scxml("""
  <datamodel><data id="log" expr="[]"/></datamodel>
  <state id="s0">
    <onentry>
      <send event="now" delay="2s"/><send event="soon" delay="1s"/><send event="later" delay="1h"/>
    </onentry>
    <transition event="now soon later poke"><assign location="log" expr="log + [_event.name]"/></transition>
  </state>""", ' name="due"')

#: The queued `loop` never settles: its step exceeds the step limit and fails the instance.
LOOPING = scxml("""
  <state id="s0">
    <onentry><send event="loop"/></onentry>
    <transition event="loop" target="a"/>
    <transition event="go" target="a"/>
  </state>
  <state id="a"><transition target="b"/></state>
  <state id="b"><transition target="a"/></state>""", ' name="looping"')

ENDING = scxml("""
  <state id="s0">
    <onentry><send event="stop"/></onentry>
    <transition event="stop" target="end"/>
    <transition event="go" target="s0"/>
  </state>
  <final id="end"/>""", ' name="ending"')


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    engine = Engine(db_url, clock=clock)
    for document in (ORDER, DUE, LOOPING, ENDING):
        engine.register(load(document))
    yield engine
    engine.close()


def test_an_outside_event_is_applied_after_the_send_queued_before_it(engine: Engine) -> None:
    engine.start("order", instance_id="o1")
    snap = engine.send("o1", "go", actor="caller")
    assert snap.state == "after" and snap.context["log"] == ["first", "go"]  # not "overtaken"
    records = engine.history("o1")
    assert [(r.event, r.actor, r.outcome) for r in records] == [
        ("start", None, "applied"), ("first", "send", "applied"), ("go", "caller", "applied"),
    ]  # fmt: skip


def test_due_sends_go_first_in_due_order_and_are_deleted(engine: Engine, clock: ManualClock) -> None:
    engine.start("due", instance_id="d1")
    clock.advance("2s")
    assert engine.send("d1", "poke").context["log"] == ["soon", "now", "poke"]
    assert [s[1] for s in pending(engine.runtime, "d1")] == ["later"]


def test_a_delayed_send_not_yet_due_is_not_delivered_by_an_outside_event(
    engine: Engine, clock: ManualClock
) -> None:
    engine.start("due", instance_id="d1")
    clock.advance("1s")
    assert engine.send("d1", "poke").context["log"] == ["soon", "poke"]
    assert [s[1] for s in pending(engine.runtime, "d1")] == ["now", "later"]
    clock.advance("1s")
    assert engine.run_due() == 1
    assert engine.get("d1").context["log"] == ["soon", "poke", "now"]


def test_an_idempotent_replay_delivers_nothing(engine: Engine) -> None:
    engine.start("order", instance_id="o1")
    first = engine.send("o1", "go", idempotency_key="k1")
    assert [s[1] for s in pending(engine.runtime, "o1")] == ["again"]  # due, queued by `after`
    replayed = engine.send("o1", "go", idempotency_key="k1")
    assert (replayed.state, replayed.version) == (first.state, first.version)
    assert [s[1] for s in pending(engine.runtime, "o1")] == ["again"]
    assert [r.event for r in engine.history("o1")] == ["start", "first", "go"]


def test_a_rejected_outside_event_is_recorded_after_the_deliveries(engine: Engine) -> None:
    engine.start("order", instance_id="o1")
    engine.send("o1", "go")
    with pytest.raises(EventNotAllowed):  # `again` takes the instance back to s1 first...
        engine.send("o1", "again")  # ...where nothing takes `again`
    records = engine.history("o1")
    assert [(r.event, r.actor, r.outcome) for r in records][-2:] == [
        ("again", "send", "applied"), ("again", None, "rejected"),
    ]  # fmt: skip
    assert engine.get("o1").state == "s1" and pending(engine.runtime, "o1") == []


def test_a_delivered_send_that_fails_the_instance_closes_it_to_the_outside_event_and_is_kept(
    engine: Engine,
) -> None:
    engine.start("looping", instance_id="l1")
    with pytest.raises(InstanceClosed) as raised:
        engine.send("l1", "go")
    assert raised.value.status == "failed"
    snap = engine.get("l1")
    assert (snap.status, snap.state) == ("failed", "s0")  # committed: the failure happened first
    assert [(r.event, r.outcome) for r in engine.history("l1")] == [("start", "applied"), ("loop", "failed")]
    assert [s[1] for s in pending(engine.runtime, "l1")] == ["loop"]  # kept for `retry`, as a worker does


def test_a_delivered_send_that_ends_the_instance_closes_it_to_the_outside_event(engine: Engine) -> None:
    engine.start("ending", instance_id="e1")
    with pytest.raises(InstanceClosed) as raised:
        engine.send("e1", "go", idempotency_key="k1")
    assert raised.value.status == "completed"
    assert engine.get("e1").state == "end"
    assert [(r.event, r.actor) for r in engine.history("e1")] == [("start", None), ("stop", "send")]


def test_a_due_send_that_cannot_be_read_fails_the_instance_before_the_outside_event(engine: Engine) -> None:
    engine.start("order", instance_id="o1")
    with engine.runtime.transaction() as cur:
        corrupt = "UPDATE sm_sends SET payload = 'not json' WHERE instance_id = :id"
        cur.execute(engine.runtime.db.sql(corrupt), {"id": "o1"})
    with pytest.raises(InstanceClosed):
        engine.send("o1", "go")
    last = engine.history("o1")[-1]
    assert (last.event, last.outcome) == ("first", "failed")
    assert "could not be delivered" in (last.reason or "")
    assert pending(engine.runtime, "o1") == []  # dropped, as a worker drops it


#: Each outside `tick` queues an `echo`: in queue order the log alternates, whoever delivers.
ECHO = scxml("""
  <datamodel><data id="log" expr="[]"/></datamodel>
  <state id="s0">
    <transition event="tick"><assign location="log" expr="log + ['t']"/><send event="echo"/></transition>
    <transition event="echo"><assign location="log" expr="log + ['e']"/></transition>
  </state>""", ' name="echo"')


def test_a_worker_delivering_meanwhile_neither_duplicates_nor_reorders_a_send(db_url: str) -> None:
    sender, worker = Engine(db_url), Engine(db_url)
    stop = threading.Event()

    def deliver() -> None:
        while not stop.is_set():
            worker.run_due()

    try:
        for engine in (sender, worker):
            engine.register(load(ECHO))
        sender.start("echo", instance_id="e1")
        thread = threading.Thread(target=deliver)
        thread.start()
        try:
            for _ in range(30):
                sender.send("e1", "tick")
        finally:
            stop.set()
            thread.join()
        worker.run_due()
        assert sender.get("e1").context["log"] == ["t", "e"] * 30
        assert [r.event for r in sender.history("e1")] == ["start", *["tick", "echo"] * 30]
    finally:
        sender.close()
        worker.close()


FLAT = """
name: flat
initial: idle
states:
  idle: {on: {go: busy}}
  busy: {on: {go: idle}}
"""

CHART_WITHOUT_CONTENT = """
name: plain_chart
initial: outer
states:
  outer:
    initial: a
    states:
      a: {on: {go: b}}
      b: {on: {go: a}}
"""


@pytest.mark.parametrize("definition", [FLAT, CHART_WITHOUT_CONTENT], ids=["flat", "chart_without_content"])
def test_machines_that_cannot_send_never_look_at_the_queue(
    db_url: str, definition: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_for_this_machine(*args: object) -> None:
        raise AssertionError("a machine without executable content looked at the send queue")

    monkeypatch.setattr(sending, "deliver_due_first", not_for_this_machine)
    engine = Engine(db_url)
    try:
        spec = loads_definition(definition)
        engine.register(spec)
        engine.start(spec.name, instance_id="m1")
        assert engine.send("m1", "go").version == 2
    finally:
        engine.close()


# Callback tokens -------------------------------------------------------------------------------

#: A queued `first` that keeps the instance in s0 (targetless), then the token's `approve`.
APPROVAL = scxml("""
  <datamodel><data id="log" expr="[]"/></datamodel>
  <state id="s0">
    <onentry><send event="first"/></onentry>
    <transition event="first"><assign location="log" expr="log + [_event.name]"/></transition>
    <transition event="approve" target="approved">
      <assign location="log" expr="log + [_event.name]"/>
    </transition>
  </state>
  <state id="approved"/>""", ' name="approval"')

#: A queued `away` that takes the instance out of the state the token was issued in.
MOVING = scxml("""
  <state id="s0">
    <onentry><send event="away"/></onentry>
    <transition event="away" target="s1"/>
    <transition event="approve" target="approved"/>
  </state>
  <state id="s1"/>
  <state id="approved"/>""", ' name="moving"')


@pytest.fixture
def token_engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    engine = Engine(db_url, clock=clock, secret="fifo-tokens-secret-0123456789")
    for document in (APPROVAL, MOVING):
        engine.register(load(document))
    yield engine
    engine.close()


def test_a_callback_token_is_applied_after_the_send_queued_before_it(token_engine: Engine) -> None:
    token_engine.start("approval", instance_id="a1")
    token = token_engine.token("a1", "approve")
    snap = token_engine.send_token(token)
    assert snap.state == "approved" and snap.context["log"] == ["first", "approve"]
    assert [(r.event, r.actor) for r in token_engine.history("a1")] == [
        ("start", None), ("first", "send"), ("approve", "token"),
    ]  # fmt: skip


def test_a_token_whose_state_a_queued_send_leaves_is_stale_and_the_delivery_stays(
    token_engine: Engine,
) -> None:
    token_engine.start("moving", instance_id="m1")
    token = token_engine.token("m1", "approve")
    with pytest.raises(TokenInvalid, match="stale"):
        token_engine.send_token(token)
    assert token_engine.get("m1").state == "s1"  # the delivery was committed, not rolled back
    assert [(r.event, r.actor) for r in token_engine.history("m1")] == [("start", None), ("away", "send")]
    assert pending(token_engine.runtime, "m1") == []
