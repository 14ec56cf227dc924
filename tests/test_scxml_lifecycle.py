"""An instance's pending `<send>` events follow its life: versions, cancel, rewind and prune treat
them like its timers (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from statemachines import Engine, ManualClock
from statemachines.scxml import load
from statemachines.sends import pending
from tests.scxml_support import scxml

TIMEOUT = scxml("""
  <state id="waiting">
    <onentry><send event="timeout" delay="2s" id="t1"/></onentry>
    <transition event="timeout" target="late"/>
    <transition event="answer" target="answered"/>
  </state>
  <final id="late"/>
  <final id="answered"/>""", ' name="timeout"')


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    engine = Engine(db_url, clock=clock)
    engine.register(load(TIMEOUT))
    yield engine
    engine.close()


def test_cancelling_an_instance_drops_its_pending_sends(engine: Engine) -> None:
    engine.start("timeout", instance_id="t1")
    engine.cancel("t1", "no longer needed")
    assert pending(engine.runtime, "t1") == []


def test_rewinding_an_instance_replaces_its_pending_sends_with_those_of_the_restored_entry(
    engine: Engine, clock: ManualClock
) -> None:
    engine.start("timeout", instance_id="t1")
    clock.advance("1s")
    engine.rewind("t1", 1)  # back to after `start`: a fresh entry, entry content does not run again
    assert pending(engine.runtime, "t1") == []
    clock.advance("5s")
    engine.run_due()
    assert engine.get("t1").state == "waiting"


def test_pruning_deletes_the_sends_of_pruned_instances(engine: Engine, clock: ManualClock) -> None:
    engine.start("timeout", instance_id="t1")
    engine.cancel("t1")
    with engine.runtime.transaction() as cur:  # a row left by an older version of the engine
        engine.runtime.applier.charts.sends.insert(cur, "t1", "timeout", "x", "late", "{}", clock.now())
    clock.advance("2d")
    report = engine.prune(before="1d")
    assert report.counts["sends"] == 1
    assert pending(engine.runtime, "t1") == []


def test_a_worker_claims_sends_of_the_instances_own_version_only(
    engine: Engine, db_url: str, clock: ManualClock
) -> None:
    engine.start("timeout", instance_id="t1")
    other = Engine(db_url, clock=clock)  # a process that knows another version of `timeout` only
    try:
        other.register(load(TIMEOUT.replace('delay="2s"', 'delay="3s"')))
        clock.advance("5s")
        assert other.run_due() == 0
        assert engine.get("t1").state == "waiting"
        assert engine.run_due() == 1
        assert engine.get("t1").state == "late"
    finally:
        other.close()
