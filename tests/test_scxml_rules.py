"""SCXML rules around `_event`, failing conditions and send ids, each tested on its own: in memory
where the chart core alone decides, through an engine on SQLite and PostgreSQL where the send
queue takes part."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from statemachines import DefinitionError, Engine, ManualClock, loads_definition
from statemachines.scxml import load
from statemachines.sends import pending
from statemachines.testing import run_until_idle
from tests.scxml_support import scxml, scxml_run

PASS_FAIL = '<final id="pass"/><final id="fail"/>'


@pytest.fixture(autouse=True)
def _quiet_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="statemachines.scxml")


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    engine = Engine(db_url, clock=clock)
    yield engine
    engine.close()


def _run(engine: Engine, body: str, name: str) -> str:
    """Register the document, start one instance, deliver everything it sends; its final state."""
    engine.register(load(scxml(body, f' name="{name}"')))
    engine.start(name, instance_id=f"{name}-1")
    run_until_idle(engine)
    return engine.get(f"{name}-1").state


def test_5_9_1_a_failing_cond_on_an_external_event_still_raises_error_execution(engine: Engine) -> None:
    """Nothing is enabled by the event, but its failed cond queued error.execution, which the
    same macrostep processes (SCXML 5.9.1, Appendix D: the internal queue after any event)."""
    body = f"""<state id="s0"><onentry><send event="ext"/></onentry>
        <transition event="ext" cond="undeclared > 1" target="fail"/>
        <transition event="error.execution" target="pass"/>
      </state>{PASS_FAIL}"""
    assert _run(engine, body, "cond_ext") == "pass"


def test_5_9_1_an_event_sent_from_outside_whose_cond_fails_is_applied_not_rejected(engine: Engine) -> None:
    engine.register(load(scxml("""<datamodel><data id="errors" expr="0"/></datamodel>
      <state id="s0"><transition event="go" cond="undeclared" target="s1"/>
        <transition event="error.execution"><assign location="errors" expr="errors + 1"/></transition>
      </state><state id="s1"/>""", ' name="outside"')))
    engine.start("outside", instance_id="o1")
    snap = engine.send("o1", "go")
    assert snap.state == "s0" and snap.context["errors"] == 1


def test_5_10_1_a_send_without_an_id_delivers_a_blank_sendid(engine: Engine) -> None:
    body = f"""<state id="s0"><onentry><send event="foo"/></onentry>
        <transition event="foo" cond="not _event.sendid" target="pass"/>
        <transition event="*" target="fail"/>
      </state>{PASS_FAIL}"""
    assert _run(engine, body, "blank_sendid") == "pass"


def test_5_10_1_a_send_with_idlocation_delivers_the_generated_sendid(engine: Engine) -> None:
    body = f"""<datamodel><data id="sid"/></datamodel>
      <state id="s0"><onentry><send event="foo" idlocation="sid"/></onentry>
        <transition event="foo" cond="_event.sendid == sid and len(sid) > 0" target="pass"/>
        <transition event="*" target="fail"/>
      </state>{PASS_FAIL}"""
    assert _run(engine, body, "located_sendid") == "pass"


def test_6_3_a_cancel_of_an_empty_sendid_leaves_sends_without_an_id_alone(
    engine: Engine, clock: ManualClock
) -> None:
    engine.register(load(scxml("""
      <state id="s0"><onentry><send event="later" delay="1s"/><cancel sendidexpr="''"/></onentry>
        <transition event="later" target="s1"/></state>
      <state id="s1"/>""", ' name="anon"')))
    engine.start("anon", instance_id="a1")
    assert [s[1] for s in pending(engine.runtime, "a1")] == ["later"]
    clock.advance("1s")
    assert engine.run_due() == 1 and engine.get("a1").state == "s1"


def test_5_10_assigning_event_to_data_keeps_its_fields_equal_to_event() -> None:
    run = scxml_run(f"""<datamodel><data id="copy"/></datamodel>
      <state id="s0"><onentry><raise event="foo"/></onentry>
        <transition event="foo" target="s1"><assign location="copy" expr="_event"/></transition>
      </state>
      <state id="s1">
        <transition cond="copy == _event and copy['name'] == 'foo'" target="pass"/>
        <transition target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)
    assert run.context["copy"]["type"] == "internal"


def test_5_4_assigning_a_value_the_context_cannot_store_raises_error_execution() -> None:
    run = scxml_run(f"""<datamodel><data id="x" expr="0"/></datamodel>
      <state id="s0"><onentry><assign location="x" expr="{{1, 2}}"/></onentry>
        <transition event="error.execution" cond="x == 0" target="pass"/>
        <transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_4_2_content_may_raise_its_own_error_and_done_events() -> None:
    """Only `done.state.<id>` is checked against the document: other `done.x`/`error.x` names are
    events like any other for a chart that raises events itself."""
    run = scxml_run(f"""
      <state id="s0"><onentry><raise event="error.mine"/></onentry>
        <transition event="error.mine" target="s1"/><transition event="*" target="fail"/></state>
      <state id="s1"><onentry><raise event="done.mine"/></onentry>
        <transition event="done.mine" target="pass"/><transition event="*" target="fail"/></state>
      {PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_5_10_ioprocessors_names_the_scxml_processor_by_its_type_uri_too() -> None:
    run = scxml_run(f"""<datamodel><data id="where"
        expr="_ioprocessors['http://www.w3.org/TR/scxml/#SCXMLEventProcessor']['location']"/></datamodel>
      <state id="s0"><transition cond="where == _ioprocessors['scxml']['location'] == '#_scxml_i1'"
        target="pass"/><transition target="fail"/></state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_5_5_donedata_that_fails_raises_error_execution_then_the_done_event_with_empty_data() -> None:
    run = scxml_run(f"""
      <datamodel><data id="errors" expr="0"/></datamodel>
      <state id="s0" initial="s01">
        <transition event="error.execution"><assign location="errors" expr="errors + 1"/></transition>
        <transition event="done.state.s0" cond="errors == 1 and _event.data is None" target="pass"/>
        <transition event="done.state.s0" target="fail"/>
        <state id="s01"><transition target="s02"/></state>
        <final id="s02"><donedata><param name="p" location="undeclared"/></donedata></final>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_3_7_a_done_event_may_be_taken_after_its_state_was_left() -> None:
    """`done.state.s0` waits on the internal queue behind the event that leaves `s0`."""
    run = scxml_run(f"""
      <state id="s0" initial="s01">
        <transition event="leave" target="s1"/>
        <state id="s01"><transition target="s02"/></state>
        <final id="s02"><onentry><raise event="leave"/></onentry></final>
      </state>
      <state id="s1">
        <transition event="done.state.s0" target="pass"/><transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_3_13_transitions_after_an_unguarded_one_load_and_are_never_taken(engine: Engine) -> None:
    """SCXML selects the first enabled transition in document order (3.13): one after an
    unguarded transition of the same event, or after an unguarded eventless one, is dead but
    legal, so the document loads and runs; the first transition is the one taken."""
    body = f"""<datamodel><data id="n" expr="0"/></datamodel>
      <state id="s0"><transition target="s1"/><transition target="fail"/></state>
      <state id="s1"><onentry><send event="go"/></onentry>
        <transition event="go" target="s2"><assign location="n" expr="n + 1"/></transition>
        <transition event="go" target="fail"/></state>
      <state id="s2"><transition cond="n == 1" target="pass"/><transition target="fail"/></state>
      {PASS_FAIL}"""
    assert _run(engine, body, "dead") == "pass"


def test_a_chart_without_a_binding_still_reports_a_shadowed_transition() -> None:
    """Definitions written by hand (no `binding`) keep the check: there it is a mistake."""
    with pytest.raises(DefinitionError, match="shadows another unguarded transition"):
        loads_definition("""
name: shadow
initial: a
states:
  a:
    initial: b
    states: {b: {}}
    always: [{target: c}, {target: d}]
  c: {}
  d: {}
""")
