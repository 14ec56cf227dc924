"""SCXML's queues on the engine, SQLite and PostgreSQL: internal events in the same transaction,
external and delayed `<send>` stored and delivered in later transactions (6.2), `<cancel>` (6.3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from statemachines import Engine, ManualClock
from statemachines.scxml import load
from statemachines.sends import pending
from tests.scxml_support import scxml

PING = scxml("""
  <datamodel><data id="log" expr="[]"/></datamodel>
  <state id="s0">
    <onentry>
      <send event="first"/><send event="second"><param name="n" expr="2"/></send>
      <raise event="inside"/>
    </onentry>
    <transition event="inside"><assign location="log" expr="log + [_event.name]"/></transition>
    <transition event="first"><assign location="log" expr="log + [_event.name]"/></transition>
    <transition event="second" target="done">
      <assign location="log" expr="log + [(_event.name, _event.data.n, _event.type)]"/>
    </transition>
  </state>
  <final id="done"/>""", ' name="ping"')

TIMEOUT = scxml("""
  <state id="waiting">
    <onentry><send event="timeout" delay="2s" id="t1"/></onentry>
    <transition event="timeout" target="late"/>
    <transition event="answer" target="answered"><cancel sendid="t1"/></transition>
  </state>
  <final id="late"/>
  <final id="answered"/>""", ' name="timeout"')


@pytest.fixture
def scxml_engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    engine = Engine(db_url, clock=clock)
    engine.register(load(PING))
    engine.register(load(TIMEOUT))
    yield engine
    engine.close()


def test_6_2_an_external_send_waits_for_a_later_transaction(scxml_engine: Engine) -> None:
    snap = scxml_engine.start("ping", instance_id="p1")
    assert snap.state == "s0" and snap.context["log"] == ["inside"]  # internal: same transaction
    queued = [(s[1], s[2]) for s in pending(scxml_engine.runtime, "p1")]
    assert queued == [("first", None), ("second", {"n": 2})]


def test_6_2_external_sends_are_delivered_in_order_as_external_events(scxml_engine: Engine) -> None:
    scxml_engine.start("ping", instance_id="p1")
    assert scxml_engine.run_due() == 2
    snap = scxml_engine.get("p1")
    assert snap.state == "done" and snap.status == "completed"
    assert snap.context["log"] == ["inside", "first", ["second", 2, "external"]]
    assert [r.event for r in scxml_engine.history("p1")] == ["start", "first", "second"]
    assert [r.actor for r in scxml_engine.history("p1")][1:] == ["send", "send"]


def test_5_10_1_a_delivered_send_carries_its_sendid_and_origin(db_url: str, clock: ManualClock) -> None:
    engine = Engine(db_url, clock=clock)
    engine.register(load(scxml("""
      <datamodel><data id="got" expr="None"/></datamodel>
      <state id="s0">
        <onentry><send event="hello" id="greeting"/></onentry>
        <transition event="hello" target="s1">
          <assign location="got" expr="[_event.sendid, _event.origin, _event.origintype]"/>
        </transition>
      </state>
      <state id="s1"/>""", ' name="origin"')))
    engine.start("origin", instance_id="o1")
    engine.run_due()
    got = engine.get("o1").context["got"]
    assert got == ["greeting", "#_scxml_o1", "http://www.w3.org/TR/scxml/#SCXMLEventProcessor"]
    engine.close()


def test_6_2_4_a_delayed_send_is_a_durable_timer(scxml_engine: Engine, clock: ManualClock) -> None:
    scxml_engine.start("timeout", instance_id="t1")
    assert scxml_engine.run_due() == 0
    clock.advance("1s")
    assert scxml_engine.run_due() == 0 and scxml_engine.get("t1").state == "waiting"
    clock.advance("1s")
    assert scxml_engine.run_due() == 1
    assert scxml_engine.get("t1").state == "late"


def test_6_2_4_a_delayed_send_survives_an_engine_restart(db_url: str, clock: ManualClock) -> None:
    first = Engine(db_url, clock=clock)
    first.register(load(TIMEOUT))
    first.start("timeout", instance_id="t1")
    first.close()
    clock.advance("5s")
    second = Engine(db_url, clock=clock)
    second.register(load(TIMEOUT))
    assert second.next_due() is not None
    assert second.run_due() == 1
    assert second.get("t1").state == "late"
    second.close()


def test_6_3_cancel_drops_a_pending_delayed_send(scxml_engine: Engine, clock: ManualClock) -> None:
    scxml_engine.start("timeout", instance_id="t1")
    assert scxml_engine.send("t1", "answer").state == "answered"
    assert pending(scxml_engine.runtime, "t1") == []
    clock.advance("1m")
    assert scxml_engine.run_due() == 0


def test_6_3_cancel_only_touches_the_instances_own_sends(scxml_engine: Engine, clock: ManualClock) -> None:
    scxml_engine.start("timeout", instance_id="t1")
    scxml_engine.start("timeout", instance_id="t2")
    scxml_engine.send("t1", "answer")
    clock.advance("2s")
    assert scxml_engine.run_due() == 1
    assert scxml_engine.get("t2").state == "late"


def test_a_finished_instance_drops_its_undelivered_sends(db_url: str, clock: ManualClock) -> None:
    engine = Engine(db_url, clock=clock)
    engine.register(load(scxml("""
      <state id="s0">
        <onentry><send event="later" delay="1s"/></onentry>
        <transition event="stop" target="end"/>
      </state>
      <final id="end"/>""", ' name="drops"')))
    engine.start("drops", instance_id="d1")
    engine.send("d1", "stop")
    assert pending(engine.runtime, "d1") == []
    engine.close()


def test_a_delivered_event_no_state_takes_is_recorded_as_rejected(db_url: str, clock: ManualClock) -> None:
    engine = Engine(db_url, clock=clock)
    engine.register(load(scxml("""
      <state id="s0"><onentry><send event="unheard"/></onentry><transition event="go" target="s1"/></state>
      <state id="s1"/>""", ' name="deaf"')))
    engine.start("deaf", instance_id="x1")
    assert engine.run_due() == 1
    last = engine.history("x1")[-1]
    assert (last.event, last.outcome) == ("unheard", "rejected")
    assert pending(engine.runtime, "x1") == []
    assert engine.get("x1").status == "active"
    engine.close()


def test_a_send_whose_step_fails_fails_the_instance_and_is_kept(db_url: str, clock: ManualClock) -> None:
    """A step limit is the one way content itself can fail a step: a delivered event is then like
    a timer whose transition raised."""
    engine = Engine(db_url, clock=clock)
    engine.register(load(scxml("""
      <state id="s0">
        <onentry><send event="loop"/></onentry>
        <transition event="loop" target="a"/>
      </state>
      <state id="a"><transition target="b"/></state>
      <state id="b"><transition target="a"/></state>""", ' name="looping"')))
    engine.start("looping", instance_id="l1")
    engine.run_due()
    assert engine.get("l1").status == "failed"
    assert [s[1] for s in pending(engine.runtime, "l1")] == ["loop"]
    engine.close()


def test_the_queue_table_is_created_by_the_migrations(db_url: str) -> None:
    engine = Engine(db_url)
    with engine.runtime.read() as cur:
        cur.execute("SELECT count(*) FROM sm_sends")
        assert cur.fetchone()[0] == 0
    engine.close()


def test_a_worker_delivers_sends_in_its_rounds(scxml_engine: Engine) -> None:
    from statemachines.worker import Worker

    scxml_engine.start("ping", instance_id="p1")
    assert Worker(scxml_engine).run_once() == 2
    assert scxml_engine.get("p1").state == "done"


def test_a_send_row_that_cannot_be_read_fails_its_instance_not_the_others(scxml_engine: Engine) -> None:
    scxml_engine.start("ping", instance_id="bad")
    scxml_engine.start("ping", instance_id="good")
    with scxml_engine.runtime.transaction() as cur:
        corrupt = "UPDATE sm_sends SET payload = 'not json' WHERE instance_id = :id"
        cur.execute(scxml_engine.runtime.db.sql(corrupt), {"id": "bad"})
    scxml_engine.run_due()
    assert scxml_engine.get("bad").status == "failed"
    assert scxml_engine.get("good").state == "done"


def test_a_send_row_whose_instance_cannot_even_be_failed_is_dropped_not_claimed_forever(
    scxml_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    scxml_engine.start("ping", instance_id="bad")
    scxml_engine.start("ping", instance_id="good")
    with scxml_engine.runtime.transaction() as cur:
        corrupt = "UPDATE sm_sends SET payload = 'not json' WHERE instance_id = :id"
        cur.execute(scxml_engine.runtime.db.sql(corrupt), {"id": "bad"})

    def cannot_fail(*args: object, **kwargs: object) -> None:
        raise ValueError("failing the instance failed too")

    monkeypatch.setattr(scxml_engine.runtime.applier, "fail", cannot_fail)
    scxml_engine.run_due()
    assert pending(scxml_engine.runtime, "bad") == []  # dropped: the next round does not claim it
    assert scxml_engine.get("bad").status == "active"
    assert scxml_engine.get("good").state == "done"
