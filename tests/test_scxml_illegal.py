"""Illegal expressions (SCXML 5.9.1-5.9.3, 4.6, 5.10, B.2): text that is not an expression (or a
location) of the language is an error of evaluation, not of the document. It loads with one
`IllegalExpressionWarning` each, naming element, line and text, and raises `error.execution`
when evaluated, processed in the same transaction as the other run-time errors. ECMAScript-only
constructs, `<script>`, `<invoke>` and the other unsupported features are still refused at load.
Runs go through a real engine on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from statemachines import DefinitionError, Engine, ManualClock, StepLimitExceeded
from statemachines.cli import main
from statemachines.definition import Definition
from statemachines.loading import load_definition, loads_definition
from statemachines.scxml import IllegalExpressionWarning, dump, load
from statemachines.testing import run_until_idle
from tests.scxml_support import scxml

PASS_FAIL = '<final id="pass"/><final id="fail"/>'


@pytest.fixture(autouse=True)
def _quiet_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="statemachines.scxml")


def quietly(doc: str) -> Definition:
    """`load` with the warnings it emits recorded (and checked: at least one, all ours)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        definition = load(doc)
    assert caught and all(w.category is IllegalExpressionWarning for w in caught)
    return definition


def final_state(db_url: str, clock: ManualClock, definition: Definition) -> str:
    """Start an instance, deliver everything it sends, and return where it ends."""
    engine = Engine(db_url, clock=clock)
    try:
        engine.register(definition)
        engine.start(definition.name, instance_id="i1")
        run_until_idle(engine)
        return engine.get("i1").state
    finally:
        engine.close()


def run(db_url: str, clock: ManualClock, body: str) -> str:
    return final_state(db_url, clock, quietly(scxml(body + PASS_FAIL, ' name="illegal"')))


def test_5_9_1_an_illegal_cond_is_false_and_raises_error_execution(db_url: str, clock: ManualClock) -> None:
    assert run(db_url, clock, """
      <state id="s0"><transition cond="1 = 1" target="fail"/><transition target="s1"/></state>
      <state id="s1"><onentry><raise event="foo"/></onentry>
        <transition event="error.execution" target="pass"/><transition event="*" target="fail"/>
      </state>""") == "pass"


@pytest.mark.timeout(120)  # before the cap on internal events, this start never returned
def test_5_9_1_an_illegal_eventless_cond_nothing_takes_the_error_of_is_a_step_limit_not_a_hang(
    db_url: str, clock: ManualClock
) -> None:
    definition = quietly(scxml('<state id="s0"><transition cond="1 = 1" target="f"/></state><final id="f"/>',
                               ' name="illegal"'))  # fmt: skip
    engine = Engine(db_url, clock=clock)
    try:
        engine.register(definition)
        with pytest.raises(StepLimitExceeded, match=r"internal event 'error\.execution'"):
            engine.start("illegal", instance_id="i1")
        assert engine.instances() == []  # nothing was written
    finally:
        engine.close()


def test_5_4_an_illegal_expr_in_assign_raises_error_execution_and_stops_its_block(
    db_url: str, clock: ManualClock
) -> None:
    assert run(db_url, clock, """
      <datamodel><data id="x" expr="1"/></datamodel>
      <state id="s0"><onentry><assign location="x" expr="return"/><assign location="x" expr="2"/>
        <raise event="foo"/></onentry>
        <transition event="error.execution" cond="x == 1" target="s1"/><transition event="*" target="fail"/>
      </state>
      <state id="s1"><transition event="foo" target="fail"/><transition cond="x == 1" target="pass"/>
        <transition target="fail"/></state>""") == "pass"


def test_5_9_2_an_illegal_assign_location_raises_error_execution(db_url: str, clock: ManualClock) -> None:
    assert run(db_url, clock, """
      <datamodel><data id="x" expr="1"/></datamodel>
      <state id="s0"><onentry><assign location="x + 1" expr="2"/><raise event="foo"/></onentry>
        <transition event="error.execution" cond="x == 1" target="pass"/>
        <transition event="*" target="fail"/></state>""") == "pass"


def test_4_6_an_illegal_foreach_item_runs_nothing_of_the_body_and_raises_error_execution(
    db_url: str, clock: ManualClock
) -> None:
    assert run(db_url, clock, """
      <datamodel><data id="n" expr="0"/><data id="arr" expr="[1, 2, 3]"/></datamodel>
      <state id="s0"><onentry><foreach array="arr" item="'continue'" index="i">
          <assign location="n" expr="n + 1"/></foreach><raise event="bar"/></onentry>
        <transition event="error.execution" cond="n == 0" target="pass"/>
        <transition event="*" target="fail"/></state>""") == "pass"


def test_6_2_an_illegal_content_expr_in_send_raises_error_execution_naming_the_send(
    db_url: str, clock: ManualClock
) -> None:
    assert run(db_url, clock, """
      <state id="s0"><onentry><send event="sent" id="s1"><content expr="return"/></send></onentry>
        <transition event="error.execution" cond="_event.sendid == 's1'" target="s1"/>
        <transition event="*" target="fail"/></state>
      <state id="s1"><onentry><send event="later" delay="1s"/></onentry>
        <transition event="sent" target="fail"/><transition event="later" target="pass"/>
      </state>""") == "pass"


@pytest.mark.parametrize(
    "send",
    [
        '<send eventexpr="return" id="s1"/>',
        '<send event="sent" targetexpr="1 = 1" id="s1"/>',
        '<send event="sent" delayexpr="return" id="s1"/>',
        '<send event="sent" id="s1" namelist="x[0"/>',
        '<send event="sent" id="s1"><param name="p" expr="return"/></send>',
        '<send event="sent" id="s1"><param name="p" location="1 + x"/></send>',
    ],
    ids=["eventexpr", "targetexpr", "delayexpr", "namelist", "param expr", "param location"],
)
def test_6_2_an_illegal_send_attribute_or_param_raises_error_execution_and_sends_nothing(
    db_url: str, clock: ManualClock, send: str
) -> None:
    assert run(db_url, clock, f"""
      <datamodel><data id="x" expr="[1]"/></datamodel>
      <state id="s0"><onentry>{send}<raise event="after"/></onentry>
        <transition event="error.execution" cond="_event.sendid == 's1'" target="s1"/>
        <transition event="*" target="fail"/></state>
      <state id="s1"><onentry><send event="later" delay="1s"/></onentry>
        <transition event="later" target="pass"/><transition event="*" target="fail"/></state>""") == "pass"


def test_5_5_illegal_donedata_raises_error_execution_then_the_done_event_without_data(
    db_url: str, clock: ManualClock
) -> None:
    assert run(db_url, clock, """
      <state id="s0" initial="f"><final id="f"><donedata><content expr="return"/></donedata></final>
        <transition event="error.execution" target="s1"/><transition event="*" target="fail"/></state>
      <state id="s1"><transition event="done.state.s0" cond="_event.data is None" target="pass"/>
        <transition event="*" target="fail"/></state>""") == "pass"


def test_5_2_data_with_an_illegal_expr_is_unset_and_raises_error_execution(
    db_url: str, clock: ManualClock
) -> None:
    assert run(db_url, clock, """
      <datamodel><data id="v" expr="1 = 1"/></datamodel>
      <state id="s0"><transition event="error.execution" cond="v is None" target="s1"/>
        <transition event="*" target="fail"/></state>
      <state id="s1"><onentry><assign location="v" expr="1"/></onentry>
        <transition cond="v == 1" target="pass"/><transition target="fail"/></state>""") == "pass"


def test_load_warns_once_per_illegal_expression_naming_element_line_and_text() -> None:
    doc = scxml("""
      <state id="s0">
        <transition cond="1 = 1" target="s0"/>
        <onentry><foreach array="[1]" item="'continue'"><log expr="return"/></foreach></onentry>
      </state>""")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load(doc)
    assert [w.category for w in caught] == [IllegalExpressionWarning] * 3
    messages = [str(w.message) for w in caught]
    assert messages[0].startswith("<text>:3: <transition>: cond='1 = 1'")
    assert messages[1].startswith("<text>:4: <foreach>: item=\"'continue'\"")
    assert messages[2].startswith("<text>:4: <log>: expr='return'")
    assert all("raises error.execution when evaluated" in m for m in messages)


def test_a_string_literal_with_ecmascript_operators_inside_is_only_illegal() -> None:
    definition = quietly(scxml("""<state id="s0"><transition cond="'a &amp;&amp; b' = 1" target="s0"/>
      </state>"""))
    assert definition.spec.states["s0"].always[0].cond == "'a && b' = 1"


@pytest.mark.parametrize(
    ("body", "element", "words"),
    [
        ('<state id="a">\n<transition cond="x === 1" target="a"/></state>', "<transition>", "'==='"),
        ('<state id="a">\n<transition cond="typeof x == \'y\'" target="a"/></state>', "<transition>",
         "typeof"),
        ('<datamodel>\n<data id="f" expr="function(a) {return a + 1;}"/></datamodel><state id="a"/>',
         "<data id='f'>", "function"),
        ('<state id="a">\n<transition cond="!done" target="a"/></state>', "<transition>", "'!'"),
        ('<state id="a"><onentry>\n<assign location="x" expr="a &amp;&amp; b"/></onentry></state>',
         "<assign>", "'&&'"),
        ('<state id="a"><onentry>\n<foreach array="[1]" item="typeof x"/></onentry></state>', "<foreach>",
         "typeof"),
        ('<state id="a"><onentry>\n<script>x = 1</script></onentry></state>', "<script>", "scripts"),
        ('<state id="a">\n<invoke src="x.scxml"/></state>', "<invoke>", "not supported"),
        ('<state id="a"><onentry>\n<send event="e" type="http://www.w3.org/TR/scxml/#BasicHTTPEventProcessor"/>'
         "</onentry></state>", "<send>", "HTTP"),
    ],
)  # fmt: skip
def test_ecmascript_scripts_invoke_and_http_are_still_refused_at_load_naming_element_and_line(
    body: str, element: str, words: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a refused document warns about nothing
        with pytest.raises(DefinitionError) as caught:
            load(scxml(body))
    problem = caught.value.problems[0]
    assert problem.startswith(f"<text>:2: {element}")
    assert words in problem


ILLEGAL_DOC = scxml("""
  <datamodel><data id="v" expr="1 = 1"/><data id="x" expr="0"/></datamodel>
  <state id="s0">
    <onentry><send event="e" namelist="x no]"/><foreach array="[1]" item="'continue'"/></onentry>
    <transition cond="1 = 1" target="fail"/>
    <transition event="error.execution" target="s1"><assign location="x + 1" expr="return"/></transition>
  </state>
  <state id="s1"><transition cond="v is None" target="pass"/><transition target="fail"/></state>"""
                    + PASS_FAIL, ' name="illegal"')  # fmt: skip


def test_dump_writes_illegal_expressions_back_as_they_were() -> None:
    definition = quietly(ILLEGAL_DOC)
    text = dump(definition)
    for attr in ('expr="1 = 1"', 'namelist="x no]"', "item=\"'continue'\"", 'cond="1 = 1"',
                 'location="x + 1"', 'expr="return"'):  # fmt: skip
        assert attr in text
    assert quietly(text).spec == definition.spec


def test_import_scxml_writes_illegal_expressions_warns_on_stderr_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "illegal.scxml"
    source.write_text(ILLEGAL_DOC, encoding="utf-8")
    out = tmp_path / "illegal.yaml"
    assert main(["import-scxml", str(source), "-o", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 6 and all(line.startswith(f"warning: {source}:") for line in err)
    assert err[0].startswith(f"warning: {source}:2: <data id='v'>: expr='1 = 1'")
    assert err[3].startswith(f"warning: {source}:5: <transition>: cond='1 = 1'")
    with pytest.warns(IllegalExpressionWarning):
        assert load_definition(out).spec == quietly(ILLEGAL_DOC).spec


def test_the_yaml_form_of_illegal_expressions_runs_as_the_document_does(
    tmp_path: Path, db_url: str, clock: ManualClock
) -> None:
    out = tmp_path / "illegal.yaml"
    (tmp_path / "illegal.scxml").write_text(ILLEGAL_DOC, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllegalExpressionWarning)
        assert main(["import-scxml", str(tmp_path / "illegal.scxml"), "-o", str(out)]) == 0
    with pytest.warns(IllegalExpressionWarning):
        from_yaml = load_definition(out)
    assert final_state(db_url, clock, from_yaml) == "pass"


def test_a_yaml_definition_with_an_illegal_expression_warns_naming_where() -> None:
    with pytest.warns(IllegalExpressionWarning) as caught:
        loads_definition("""
name: m
initial: a
states:
  a: {always: [{target: b, cond: "1 = 1"}]}
  b: {final: true}
""", source="m.yaml")  # fmt: skip
    assert len(caught) == 1
    assert str(caught[0].message).startswith("m.yaml: state 'a' always[0] cond: '1 = 1' is not an expression")


def test_a_yaml_definition_with_an_ecmascript_expression_is_refused() -> None:
    with pytest.raises(DefinitionError) as caught:
        loads_definition("""
name: m
initial: a
states:
  a: {always: [{target: b, cond: "x === 1"}]}
  b: {final: true}
""")  # fmt: skip
    assert "'===' is ECMAScript" in " ".join(caught.value.problems)
