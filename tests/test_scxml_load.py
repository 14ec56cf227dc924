"""`statemachines.scxml.load` / `dump` and `statemachines import-scxml`: the mapping of SCXML
chapter 3 onto definitions, refusals naming element and line, round trips."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from statemachines import DefinitionError, loads_definition, machine, state, transition
from statemachines.chart import CompiledChart
from statemachines.cli import main
from statemachines.loading import load_definition
from statemachines.scxml import dump, load
from tests.scxml_support import Run, scxml

RICH = scxml("""
  <datamodel><data id="n" expr="0"/><data id="items">[1, 2]</data></datamodel>
  <state id="s0" initial="s01">
    <onentry><log label="in" expr="n"/></onentry>
    <onexit><assign location="n" expr="n + 1"/></onexit>
    <state id="s01">
      <transition event="go.* other" cond="n &lt; 5" target="s02" type="internal">
        <send event="later" delayexpr="'1s'" idlocation="sid"><param name="a" expr="1"/></send>
        <if cond="n == 1"><raise event="one"/><elseif cond="n == 2"/><cancel sendidexpr="sid"/>
        <else/><foreach array="items" item="it" index="i"><log expr="it"/></foreach></if>
      </transition>
    </state>
    <state id="s02"><transition event="back" target="h"/></state>
    <history id="h" type="deep"><transition target="s01"/></history>
    <transition event="done.state.s0" target="p"/>
  </state>
  <parallel id="p">
    <state id="r1"><final id="r1f"><donedata><param name="x" expr="n"/></donedata></final></state>
    <state id="r2"><state id="r2a"><transition target="r2b r1f"/></state><state id="r2b"/></state>
    <transition event="error.execution" target="end"/>
  </parallel>
  <final id="end"><donedata><content>{"ok": true}</content></donedata></final>""", ' name="rich"')


def test_3_2_the_document_becomes_a_nested_definition_named_after_it() -> None:
    spec = load(RICH).spec
    assert spec.name == "rich" and spec.initial == "s0"
    assert spec.data == {"n": "0", "items": "[1, 2]"}
    assert list(spec.states["s0"].states) == ["s01", "s02", "h"]
    assert spec.states["p"].type == "parallel"
    assert spec.states["end"].final


def test_3_3_a_compound_state_without_initial_starts_in_its_first_child() -> None:
    chart = load(scxml('<state id="a"><state id="b"/><state id="c"/></state>'))
    assert chart.spec.states["a"].initial == "b"


def test_3_3_an_initial_element_names_the_first_child() -> None:
    initial = '<initial><transition target="c"/></initial>'
    doc = scxml(f'<state id="a">{initial}<state id="b"/><state id="c"/></state>')
    assert load(doc).spec.states["a"].initial == "c"


def test_3_10_history_keeps_its_type_and_default() -> None:
    history = load(RICH).spec.states["s0"].states["h"].history
    assert history is not None and history.deep and history.default == "s0.s01"


def test_3_12_targets_ids_become_paths_and_done_events_name_the_path() -> None:
    s0 = load(RICH).spec.states["s0"]
    assert s0.states["s01"].on["go.* other"][0].target == "s0.s02"
    assert s0.states["s01"].on["go.* other"][0].type == "internal"
    assert "done.state.s0" in s0.on
    r2a = load(RICH).spec.states["p"].states["r2"].states["r2a"]
    assert r2a.always[0].target == ["p.r2.r2b", "p.r1.r1f"]


def test_3_13_document_order_survives_a_descriptor_declared_twice() -> None:
    doc = scxml("""<state id="s0">
      <transition event="a" cond="False" target="x"/><transition event="*" target="y"/>
      <transition event="a" target="x"/></state><final id="x"/><final id="y"/>""")
    assert list(load(doc).spec.states["s0"].on) == ["a", "*", "a a"]
    assert Run(CompiledChart(load(doc))).send("a").configuration == ("y",)


@pytest.mark.parametrize(
    ("body", "element", "line", "words"),
    [
        ('<state id="a">\n<invoke src="x.scxml"/></state>', "<invoke>", 2, "not supported"),
        ('<state id="a"><onentry>\n<script>x = 1</script></onentry></state>', "<script>", 2, "scripts"),
        ('<state id="a">\n<transition cond="x === 1" target="a"/></state>', "<transition>", 2, "expression"),
        ('<datamodel>\n<data id="x" src="data.json"/></datamodel><state id="a"/>', "<data id='x'>", 2, "src"),
        ('<state id="a" initial="c">\n<state id="b"/></state><state id="c"/>', "<state id='a'>", 1,
         "is not inside"),
        ('<state id="a"><onentry>\n<send event="e" type="http://www.w3.org/TR/scxml/#BasicHTTPEventProcessor"/>'
         "</onentry></state>", "<send>", 2, "HTTP"),
        ('<state id="a.b"/>', "<state id='a.b'>", 1, "'.'"),
        ('<state id="a">\n<finalize/></state>', "<finalize>", 2, "not supported inside <state>"),
        ('<state id="a"><onentry>\n<send event="e" eventexpr="\'e\'"/></onentry></state>', "<send>", 2,
         "cannot both be given"),
        ('<state id="a"><onentry>\n<send event="e" namelist=""/></onentry></state>', "<send>", 2,
         "empty namelist"),
        ('<state id="a">\n<state id="b" intial="c"/></state>', "<state id='b'>", 2, "['intial']"),
        ('<state id="a"><onentry>\n<send event="e"><param name="p" expr="1"/><content>x</content></send>'
         "</onentry></state>", "<send>", 2, "<content> excludes"),
        ('<state id="a"><onentry>\n<cancel sendid="a" sendidexpr="\'a\'"/></onentry></state>', "<cancel>", 2,
         "cannot both be given"),
        ('<state id="a"><final id="f">\n<donedata><param name="p" expr="1"/><content>x</content></donedata>'
         "</final></state>", "<donedata>", 2, "<content> excludes"),
        ('<state id="a"><onentry><if cond="True"><else/>\n<elseif cond="False"/></if></onentry></state>',
         "<elseif>", 2, "after the <else>"),
        ('<datamodel><data id="x" expr="1"/></datamodel><state id="a"><datamodel>\n<data id="x"/></datamodel>'
         "</state>", "<data id='x'>", 2, "declared twice"),
        ('<datamodel>\n<data id="x" expr="1">2</data></datamodel><state id="a"/>', "<data id='x'>", 2,
         "cannot both"),
        ('<datamodel><data id="x"/></datamodel><state id="a"><onentry>\n'
         '<assign location="x" expr="1">2</assign></onentry></state>', "<assign>", 2, "cannot both"),
        ('<state id="a"><onentry>\n<send event="e" delay="soon"/></onentry></state>', "<send>", 2,
         "not a duration"),
        ('<state id="a"><onentry>\n<raise event="a b"/></onentry></state>', "<raise>", 2, "one token"),
    ],
)  # fmt: skip
def test_unsupported_constructs_are_refused_naming_element_and_line(
    body: str, element: str, line: int, words: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        load(scxml(body))
    problem = caught.value.problems[0]
    assert problem.startswith(f"<text>:{line}: {element}")
    assert words in problem


def test_other_datamodels_are_refused() -> None:
    doc = '<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="xpath"><state id="a"/></scxml>'
    with pytest.raises(DefinitionError, match="datamodel 'xpath' is not supported"):
        load(doc)


def test_dtds_and_entities_are_refused_before_expansion() -> None:
    doc = ('<?xml version="1.0"?><!DOCTYPE scxml [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
           '<scxml xmlns="http://www.w3.org/2005/07/scxml"><state id="&b;"/></scxml>')  # fmt: skip
    with pytest.raises(DefinitionError, match="no DTDs or entities"):
        load(doc)


def test_elements_of_other_namespaces_are_refused() -> None:
    doc = scxml('<state id="a"><x:thing xmlns:x="urn:other"/></state>')
    with pytest.raises(DefinitionError, match=r"<thing> is in namespace 'urn:other'"):
        load(doc)


def test_malformed_xml_names_its_line() -> None:
    with pytest.raises(DefinitionError, match=r"<text>:2: not well-formed"):
        load(scxml('<state id="a">\n</stat>'))


def test_load_reads_a_path_a_file_object_or_text(tmp_path: Path) -> None:
    path = tmp_path / "m.scxml"
    path.write_text(RICH, encoding="utf-8")
    specs = [load(path).spec, load(str(path)).spec, load(io.BytesIO(RICH.encode())).spec, load(RICH).spec]
    assert all(s == specs[0] for s in specs)


def test_a_name_given_to_load_overrides_the_documents() -> None:
    assert load(RICH, name="renamed").name == "renamed"


def test_an_unreadable_path_is_a_definition_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read"):
        load(tmp_path / "missing.scxml")


def test_dump_then_load_gives_the_same_spec() -> None:
    loaded = load(RICH)
    assert load(dump(loaded)).spec == loaded.spec


def test_a_yaml_definition_with_content_dumps_and_loads_back() -> None:
    d = loads_definition("""
name: counter
initial: counting
binding: early
data: {n: "0"}
states:
  counting:
    on: {tick: {target: null, content: [{assign: {location: n, expr: "n + 1"}}]}}
    always: [{target: done, cond: "n >= 3"}]
  done: {final: true}
""")
    assert load(dump(d)).spec == d.spec


def test_dump_refuses_data_declared_twice_which_scxml_cannot_say() -> None:
    d = loads_definition("""
name: twice
initial: a
data: {n: "0"}
states:
  a: {data: {n: "1"}, on: {go: b}}
  b: {final: true}
""")
    with pytest.raises(DefinitionError, match="data 'n' is declared by the machine and by state 'a'"):
        dump(d)


def test_dump_refuses_python_callables() -> None:
    def ready(ctx: object, event: object) -> bool:
        return True

    d = machine("py", initial="a", states={"a": state(on={"GO": transition("b", guard=ready)}), "b": state()})
    with pytest.raises(DefinitionError, match="guard and action callables have no SCXML form"):
        dump(d)


def test_cli_import_scxml_writes_a_yaml_definition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rich.scxml"
    source.write_text(RICH, encoding="utf-8")
    out = tmp_path / "rich.yaml"
    assert main(["import-scxml", str(source), "-o", str(out)]) == 0
    assert load_definition(out).spec == load(RICH).spec
    assert "wrote" in capsys.readouterr().out


def test_cli_import_scxml_reports_refusals_with_their_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.scxml"
    source.write_text(scxml('<state id="a">\n<invoke/></state>'), encoding="utf-8")
    out = tmp_path / "bad.yaml"
    assert main(["import-scxml", str(source), "-o", str(out)]) == 1
    assert f"{source}:2: <invoke>" in capsys.readouterr().err
    assert not out.exists()


def test_several_onentry_elements_load_as_blocks_and_dump_back_apart() -> None:
    handlers = '<onentry><raise event="x"/></onentry><onentry><raise event="y"/></onentry>'
    doc = scxml(f'<state id="a">{handlers}</state>')
    loaded = load(doc)
    assert loaded.spec.states["a"].enter_content == [
        {"block": [{"raise": {"event": "x"}}]}, {"block": [{"raise": {"event": "y"}}]}
    ]
    assert dump(loaded).count("<onentry>") == 2
    assert load(dump(loaded)).spec == loaded.spec


def test_3_6_a_deep_initial_is_kept_as_a_dotted_path_and_dumped_as_its_id() -> None:
    doc = scxml('<state id="a"><state id="b"><state id="c"/></state></state>', ' initial="c"')
    loaded = load(doc)
    assert loaded.spec.initial == "a.b.c"
    assert ' initial="c"' in dump(loaded) and load(dump(loaded)).spec == loaded.spec


def test_elements_without_a_namespace_are_read_as_scxml() -> None:
    states = '<state id="a"><transition event="go" target="b"/></state><final id="b"/>'
    doc = f'<scxml initial="a">{states}</scxml>'
    assert load(doc).spec.states["a"].on["go"][0].target == "b"


def test_3_6_an_initial_element_with_several_targets_dumps_as_an_initial_attribute() -> None:
    doc = scxml("""<state id="s"><initial><transition target="b2 c2"/></initial>
      <parallel id="p"><state id="b"><state id="b1"/><state id="b2"/></state>
      <state id="c"><state id="c1"/><state id="c2"/></state></parallel></state>""")
    loaded = load(doc)
    assert loaded.spec.states["s"].initial == ["p.b.b2", "p.c.c2"]
    assert '<state id="s" initial="b2 c2">' in dump(loaded)
    assert load(dump(loaded)).spec == loaded.spec


def test_initial_and_history_content_load_and_dump_back() -> None:
    doc = scxml("""<state id="s"><initial><transition target="a"><raise event="i"/></transition></initial>
      <history id="h"><transition target="a"><raise event="h"/></transition></history>
      <state id="a"/></state>""")
    loaded = load(doc)
    st = loaded.spec.states["s"]
    assert st.initial_content == [{"raise": {"event": "i"}}]
    history = st.states["h"].history
    assert history is not None and history.content == [{"raise": {"event": "h"}}]
    assert load(dump(loaded)).spec == loaded.spec


@pytest.mark.parametrize(
    "body",
    ['<state id="a"/><transition target="a"/>', '<parallel id="p"><initial/><state id="a"/></parallel>',
     '<final id="f"><initial/></final>'],
)  # fmt: skip
def test_elements_out_of_place_are_refused_not_ignored(body: str) -> None:
    with pytest.raises(DefinitionError, match="is not supported inside"):
        load(scxml(body))
