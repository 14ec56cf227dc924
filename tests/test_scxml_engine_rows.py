"""Each row of docs/scxml.md's subset table, as a small document run by a real engine on SQLite
and PostgreSQL: started, its sends delivered (the clock jumped to each delayed one), and, where
it says so, the engine restarted in between. Every document ends in `pass` or `fail`."""

from __future__ import annotations

import logging

import pytest

from statemachines import Engine, ManualClock
from statemachines.scxml import load
from statemachines.testing import run_until_idle
from tests.scxml_support import scxml

PASS_FAIL = '<final id="pass"/><final id="fail"/>'

DOCUMENTS = {
    "3.12.1 prefix descriptors": """
      <state id="s0"><onentry><raise event="error.send.failed"/></onentry>
        <transition event="error.sendx" target="fail"/><transition event="error" target="s1"/>
        <transition event="*" target="fail"/></state>
      <state id="s1"><onentry><raise event="foo.bar"/></onentry>
        <transition event="foo.*" target="pass"/><transition event="*" target="fail"/></state>""",
    "3.13 targetless transitions exit nothing": """
      <datamodel><data id="n" expr="0"/></datamodel>
      <state id="s0"><onentry><raise event="t"/><raise event="u"/></onentry>
        <onexit><assign location="n" expr="n + 100"/></onexit>
        <transition event="t"><assign location="n" expr="n + 1"/></transition>
        <transition event="u" cond="n == 1" target="s1"/><transition event="*" target="fail"/></state>
      <state id="s1"><transition cond="n == 101" target="pass"/><transition target="fail"/></state>""",
    "4.6 foreach": """
      <datamodel><data id="arr" expr="[1, 2, 3]"/><data id="sum" expr="0"/></datamodel>
      <state id="s0"><onentry><foreach array="arr" item="x" index="i">
          <assign location="sum" expr="sum + x * 10 + i"/></foreach></onentry>
        <transition cond="sum == 63" target="pass"/><transition target="fail"/></state>""",
    "6.2 delayed sends arrive in delay order": """
      <state id="s0"><onentry><send event="late" delay="5s"/><send event="early" delayexpr="'2s'"/></onentry>
        <transition event="early" target="s1"/><transition event="*" target="fail"/></state>
      <state id="s1"><transition event="late" target="pass"/><transition event="*" target="fail"/></state>""",
    "6.3 cancel by sendid and sendidexpr": """
      <datamodel><data id="sid"/></datamodel>
      <state id="s0"><onentry>
          <send event="bad" delay="1s" id="b1"/><send event="bad" delay="1s" idlocation="sid"/>
          <send event="good" delay="2s"/><cancel sendid="b1"/><cancel sendidexpr="sid"/></onentry>
        <transition event="good" target="pass"/><transition event="*" target="fail"/></state>""",
    "5.5 donedata params and content": """
      <datamodel><data id="v" expr="3"/></datamodel>
      <state id="s0" initial="a"><state id="a"><transition target="f"/></state>
        <final id="f"><donedata><param name="p" expr="v * 2"/><param name="q" location="v"/></donedata>
        </final>
        <transition event="done.state.s0" cond="_event.data == {'p': 6, 'q': 3}" target="s1"/>
        <transition event="*" target="fail"/></state>
      <state id="s1" initial="b"><final id="b"><donedata><content expr="[v, 'x']"/></donedata></final>
        <transition event="done.state.s1" cond="_event.data == [3, 'x']" target="pass"/>
        <transition event="*" target="fail"/></state>""",
    "3.4 parallel done after a delivered send": """
      <parallel id="p"><onentry><send event="go"/></onentry>
        <state id="r1"><state id="a1"><transition target="f1"/></state><final id="f1"/></state>
        <state id="r2"><state id="a2"><transition event="go" target="f2"/></state><final id="f2"/></state>
        <transition event="done.state.p" target="pass"/></parallel>""",
    "5.9.1 error.execution from a failing assign and cond": """
      <datamodel><data id="x" expr="0"/></datamodel>
      <state id="s0"><onentry><assign location="x" expr="undefined_name + 1"/></onentry>
        <transition event="error.execution" target="s1"/><transition event="*" target="fail"/></state>
      <state id="s1"><transition cond="1 / 0" target="fail"/>
        <transition event="error.execution" cond="x == 0" target="pass"/>
        <transition event="*" target="fail"/></state>""",
    "6.2 send to itself with content": """
      <state id="s0"><onentry>
          <send event="e1" targetexpr="_ioprocessors['scxml']['location']">
            <content>hello  world</content></send>
          <send event="e2" target="#_internal"/></onentry>
        <transition event="e2" target="s1"/><transition event="*" target="fail"/></state>
      <state id="s1">
        <transition event="e1" cond="_event.data == 'hello world' and _event.origin == '#_scxml_d1'"
          target="pass"/>
        <transition event="*" target="fail"/></state>""",
}


@pytest.fixture(autouse=True)
def _quiet_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="statemachines.scxml")


@pytest.mark.parametrize("rule", list(DOCUMENTS))
@pytest.mark.parametrize("restart", [False, True], ids=["one engine", "restarted"])
def test_each_row_runs_to_pass_through_an_engine(
    db_url: str, clock: ManualClock, rule: str, restart: bool
) -> None:
    doc = scxml(DOCUMENTS[rule] + PASS_FAIL, ' name="row"')
    engine = Engine(db_url, clock=clock)
    try:
        engine.register(load(doc))
        engine.start("row", instance_id="d1")
        if restart:  # whatever the start queued is in the database, not in this engine
            engine.close()
            engine = Engine(db_url, clock=clock)
            engine.register(load(doc))
        run_until_idle(engine)
        snap = engine.get("d1")
        assert (snap.state, snap.status) == ("pass", "completed")
    finally:
        engine.close()


def test_history_deep_and_shallow_through_an_engine(db_url: str, clock: ManualClock) -> None:
    doc = scxml("""
      <state id="s0" initial="p1">
        <history id="hs" type="shallow"><transition target="p1"/></history>
        <history id="hd" type="deep"><transition target="p1"/></history>
        <state id="p1" initial="a">
          <state id="a"><transition event="next" target="b"/></state><state id="b"/></state>
        <transition event="out" target="outside"/>
      </state>
      <state id="outside">
        <transition event="shallow" target="hs"/><transition event="deep" target="hd"/>
      </state>""", ' name="hist"')
    engine = Engine(db_url, clock=clock)
    try:
        engine.register(load(doc))
        engine.start("hist", instance_id="h1")
        for event in ("next", "out"):
            engine.send("h1", event)
        assert engine.send("h1", "shallow").state == "s0.p1.a"  # p1 remembered, entered by its initial
        engine.send("h1", "next")
        engine.send("h1", "out")
        assert engine.send("h1", "deep").state == "s0.p1.b"  # the atomic state remembered
    finally:
        engine.close()
