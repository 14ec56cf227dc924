"""SCXML chapters 4 and 5: executable content and the data model, rule by rule, in memory."""

from __future__ import annotations

import logging

import pytest

from tests.scxml_support import scxml_run

PASS_FAIL = '<final id="pass"/><final id="fail"/>'


def test_4_2_raise_puts_an_internal_event_processed_in_the_same_call() -> None:
    run = scxml_run(f"""
      <state id="s0">
        <onentry><raise event="foo"/><raise event="bar"/></onentry>
        <transition event="foo" target="s1"/>
        <transition event="*" target="fail"/>
      </state>
      <state id="s1"><transition event="bar" target="pass"/><transition event="*" target="fail"/></state>
      {PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_4_3_if_elseif_else_runs_the_first_branch_whose_cond_holds() -> None:
    run = scxml_run(f"""
      <datamodel><data id="x" expr="2"/><data id="seen" expr="[]"/></datamodel>
      <state id="s0">
        <onentry>
          <if cond="x == 1"><assign location="seen" expr="seen + ['one']"/>
          <elseif cond="x == 2"/><assign location="seen" expr="seen + ['two']"/>
          <elseif cond="x > 0"/><assign location="seen" expr="seen + ['positive']"/>
          <else/><assign location="seen" expr="seen + ['other']"/>
          </if>
        </onentry>
        <transition cond="seen == ['two']" target="pass"/><transition target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_4_6_foreach_visits_items_in_order_with_their_index_and_declares_new_names() -> None:
    run = scxml_run(f"""
      <datamodel><data id="items" expr="[3, 1, 2]"/><data id="out" expr="[]"/></datamodel>
      <state id="s0">
        <onentry>
          <foreach array="items" item="it" index="i">
            <assign location="out" expr="out + [(i, it)]"/>
          </foreach>
        </onentry>
        <transition cond="out == [(0, 3), (1, 1), (2, 2)] and it == 2" target="pass"/>
        <transition target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_4_6_foreach_iterates_over_a_copy_of_the_array() -> None:
    run = scxml_run(f"""
      <datamodel><data id="items" expr="[1, 2]"/><data id="n" expr="0"/></datamodel>
      <state id="s0">
        <onentry>
          <foreach array="items" item="it"><assign location="items" expr="items + [it]"/>
            <assign location="n" expr="n + 1"/></foreach>
        </onentry>
        <transition cond="n == 2 and items == [1, 2, 1, 2]" target="pass"/><transition target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_4_6_foreach_over_something_not_a_sequence_raises_error_execution() -> None:
    run = scxml_run(f"""
      <datamodel><data id="n" expr="5"/></datamodel>
      <state id="s0">
        <onentry><foreach array="n" item="it"><raise event="never"/></foreach></onentry>
        <transition event="error.execution" target="pass"/><transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_4_7_log_writes_its_label_and_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="statemachines.scxml"):
        scxml_run("""<datamodel><data id="x" expr="41"/></datamodel>
          <state id="s0"><onentry><log label="answer" expr="x + 1"/></onentry></state>""")
    assert "answer: 42" in caplog.text


def test_4_1_an_error_stops_the_rest_of_the_block_and_raises_error_execution() -> None:
    run = scxml_run(f"""
      <datamodel><data id="x" expr="0"/></datamodel>
      <state id="s0">
        <onentry><assign location="x" expr="1 / 0"/><assign location="x" expr="2"/></onentry>
        <transition event="error.execution" cond="x == 0" target="pass"/>
        <transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_5_4_assign_to_an_undeclared_location_is_an_error() -> None:
    run = scxml_run(f"""
      <state id="s0">
        <onentry><assign location="nowhere" expr="1"/></onentry>
        <transition event="error.execution" target="pass"/><transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)
    assert "nowhere" not in run.context


def test_5_4_assign_into_nested_data_by_field_and_index() -> None:
    run = scxml_run("""
      <datamodel><data id="order" expr="{'lines': [0, 0], 'owner': {}}"/></datamodel>
      <state id="s0"><onentry>
        <assign location="order.owner['name']" expr="'ada'"/><assign location="order['lines'][1]" expr="7"/>
      </onentry></state>""")
    assert run.context["order"] == {"lines": [0, 7], "owner": {"name": "ada"}}


def test_5_3_early_binding_binds_every_states_data_at_the_start() -> None:
    run = scxml_run(f"""
      <state id="s0"><transition cond="later == 5" target="pass"/><transition target="fail"/></state>
      <state id="s1"><datamodel><data id="later" expr="5"/></datamodel></state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_5_3_late_binding_binds_a_states_data_when_it_is_first_entered() -> None:
    run = scxml_run("""
      <state id="s0"><transition event="go" target="s1"/></state>
      <state id="s1"><datamodel><data id="later" expr="5"/></datamodel></state>""", ' binding="late"')
    assert "later" not in run.context
    run.send("go")
    assert run.context["later"] == 5


def test_5_3_data_given_at_the_start_wins_over_the_declared_expression() -> None:
    from statemachines.chart import CompiledChart
    from statemachines.scxml import load
    from tests.scxml_support import Run, scxml

    chart = CompiledChart(load(scxml('<datamodel><data id="x" expr="1"/></datamodel><state id="s0"/>')))
    assert Run(chart, '{"x": 9}').context == {"x": 9}


def test_5_9_1_a_cond_that_fails_is_false_and_raises_error_execution() -> None:
    run = scxml_run(f"""
      <state id="s0">
        <transition cond="missing > 1" target="fail"/>
        <transition event="error.execution" target="pass"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_5_9_2_in_tests_whether_a_state_is_active() -> None:
    run = scxml_run(f"""
      <parallel id="p">
        <state id="a"><transition cond="In('b')" target="pass"/></state>
        <state id="b"/>
      </parallel>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_5_10_system_variables_are_bound_and_read_only() -> None:
    run = scxml_run(f"""
      <state id="s0">
        <onentry><assign location="_sessionid" expr="'x'"/></onentry>
        <transition event="error.execution" target="s1"/>
      </state>
      <state id="s1">
        <transition cond="_sessionid == 'i1' and _name == 'sys' and
                          _ioprocessors['scxml']['location'] == '#_scxml_i1'" target="pass"/>
        <transition target="fail"/>
      </state>{PASS_FAIL}""", ' name="sys"')
    assert run.configuration == ("pass",)


def test_5_10_1_event_is_not_bound_before_the_first_event() -> None:
    run = scxml_run(f"""
      <datamodel><data id="seen" expr="'unset'"/></datamodel>
      <state id="s0">
        <onentry><assign location="seen" expr="_event.name"/></onentry>
        <transition event="error.execution" cond="seen == 'unset'" target="pass"/>
        <transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_5_10_1_event_type_is_internal_platform_or_external() -> None:
    run = scxml_run("""
      <datamodel><data id="types" expr="[]"/></datamodel>
      <state id="s0">
        <onentry><raise event="mine"/><assign location="nowhere" expr="1"/></onentry>
        <transition event="mine" ><assign location="types" expr="types + [_event.type]"/></transition>
        <transition event="error"><assign location="types" expr="types + [_event.type]"/></transition>
        <transition event="outside"><assign location="types" expr="types + [_event.type]"/></transition>
      </state>""")
    run.send("outside")
    assert run.context["types"] == ["internal", "platform", "external"]


def test_5_5_donedata_params_become_the_done_events_data() -> None:
    run = scxml_run(f"""
      <datamodel><data id="x" expr="7"/></datamodel>
      <state id="s0" initial="s01">
        <final id="s01"><donedata><param name="answer" expr="x * 6"/></donedata></final>
        <transition event="done.state.s0" cond="_event.data.answer == 42" target="pass"/>
        <transition event="done.state.s0" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_5_7_donedata_content_becomes_the_done_events_data() -> None:
    run = scxml_run(f"""
      <state id="s0" initial="s01">
        <final id="s01"><donedata><content>{{"a": [1, 2]}}</content></donedata></final>
        <transition event="done.state.s0" cond="_event.data == {{'a': [1, 2]}}" target="pass"/>
        <transition event="done.state.s0" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_6_2_send_to_internal_queues_the_event_internally_with_its_data() -> None:
    run = scxml_run(f"""
      <state id="s0">
        <onentry><send event="ping" target="#_internal"><param name="n" expr="3"/></send></onentry>
        <transition event="ping" cond="_event.data.n == 3 and _event.type == 'internal'" target="pass"/>
        <transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_6_2_a_send_that_fails_names_its_sendid_in_error_execution() -> None:
    run = scxml_run(f"""
      <datamodel><data id="sid" expr="None"/></datamodel>
      <state id="s0">
        <onentry><send event="x" target="nowhere" idlocation="sid"/></onentry>
        <transition event="error.execution" cond="_event.sendid == sid" target="pass"/>
        <transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_6_2_4_an_unreachable_session_raises_error_communication() -> None:
    run = scxml_run(f"""
      <state id="s0">
        <onentry><send event="x" target="#_scxml_someone_else"/></onentry>
        <transition event="error.communication" target="pass"/><transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_6_2_4_an_unsupported_send_type_raises_error_execution() -> None:
    run = scxml_run(f"""
      <state id="s0">
        <onentry><send event="x" type="27"/></onentry>
        <transition event="error.execution" target="pass"/><transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_3_5_a_transition_may_enter_several_regions_at_once() -> None:
    run = scxml_run("""
      <state id="s0"><transition event="go" target="b2 c2"/></state>
      <parallel id="p">
        <state id="b"><state id="b1"/><state id="b2"/></state>
        <state id="c"><state id="c1"/><state id="c2"/></state>
      </parallel>""")
    assert run.send("go").configuration == ("p.b.b2", "p.c.c2")


def test_d_content_steps_are_never_replayed_from_a_remembered_plan() -> None:
    """A block's outcome depends on the context, so the same event from the same configuration
    may go elsewhere the second time."""
    run = scxml_run("""
      <datamodel><data id="n" expr="0"/></datamodel>
      <state id="a">
        <transition event="tick"><assign location="n" expr="n + 1"/>
          <if cond="n == 2"><raise event="two"/></if></transition>
        <transition event="two" target="b"/>
      </state>
      <state id="b"/>""")
    assert run.send("tick").configuration == ("a",)
    assert run.send("tick").configuration == ("b",)


def test_3_8_each_onentry_element_is_a_block_of_its_own() -> None:
    run = scxml_run(f"""
      <datamodel><data id="x" expr="0"/></datamodel>
      <state id="s0">
        <onentry><assign location="nowhere" expr="1"/><assign location="x" expr="1"/></onentry>
        <onentry><assign location="x" expr="x + 10"/></onentry>
        <transition event="error.execution" cond="x == 10" target="pass"/>
        <transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_3_6_a_deep_initial_state_enters_its_ancestors_on_the_way() -> None:
    run = scxml_run("""
      <state id="s0" initial="s01">
        <state id="s01"/>
        <state id="s02" initial="s021"><state id="s021"/><state id="s022"/></state>
      </state>""", ' initial="s022"')
    assert run.configuration == ("s0.s02.s022",)


def test_5_9_expressions_may_call_the_reading_methods_of_data() -> None:
    run = scxml_run(f"""
      <datamodel><data id="d" expr="{{'a': 1}}"/><data id="xs" expr="[5, 6]"/></datamodel>
      <state id="s0">
        <transition cond="d.get('a') == 1 and d.get('b') is None and xs.index(6) == 1" target="s1"/>
      </state>
      <state id="s1">
        <onentry><assign location="d" expr="d.pop('a')"/></onentry>
        <transition event="error.execution" cond="d == {{'a': 1}}" target="pass"/>
        <transition event="*" target="fail"/>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_3_6_several_initial_states_enter_their_regions_together() -> None:
    run = scxml_run("""
      <state id="s1" initial="b2 c2">
        <state id="s11">
          <parallel id="p">
            <state id="b"><state id="b1"/><state id="b2"/></state>
            <state id="c"><state id="c1"/><state id="c2"/></state>
          </parallel>
        </state>
      </state>""")
    assert run.configuration == ("s1.s11.p.b.b2", "s1.s11.p.c.c2")


def test_3_6_initial_transition_content_runs_after_the_parents_entry_content() -> None:
    run = scxml_run(f"""
      <datamodel><data id="order" expr="[]"/></datamodel>
      <state id="s0">
        <onentry><assign location="order" expr="order + ['s0']"/></onentry>
        <initial><transition target="s01">
          <assign location="order" expr="order + ['initial']"/></transition></initial>
        <state id="s01"><onentry><assign location="order" expr="order + ['s01']"/></onentry>
          <transition cond="order == ['s0', 'initial', 's01']" target="pass"/><transition target="fail"/>
        </state>
      </state>{PASS_FAIL}""")
    assert run.configuration == ("pass",)


def test_3_10_history_default_content_runs_only_when_the_default_is_taken() -> None:
    run = scxml_run("""
      <datamodel><data id="defaults" expr="0"/></datamodel>
      <state id="outside"><transition event="in" target="h"/></state>
      <state id="s0">
        <history id="h"><transition target="a">
          <assign location="defaults" expr="defaults + 1"/></transition></history>
        <state id="a"><transition event="next" target="b"/></state>
        <state id="b"/>
        <transition event="out" target="outside"/>
      </state>""")
    for name in ("in", "next", "out", "in"):
        run.send(name)
    assert run.configuration == ("s0.b",) and run.context["defaults"] == 1


def test_3_10_an_initial_transition_may_target_a_history_state() -> None:
    run = scxml_run("""
      <state id="s0">
        <initial><transition target="h"/></initial>
        <history id="h"><transition target="b"/></history>
        <state id="a"/>
        <state id="b"><transition event="go" target="a"/></state>
        <transition event="out" target="elsewhere"/>
      </state>
      <state id="elsewhere"><transition event="back" target="s0"/></state>""")
    assert run.configuration == ("s0.b",)  # nothing remembered: the default
    for name in ("go", "out", "back"):
        run.send(name)
    assert run.configuration == ("s0.a",)  # entered by its initial: the history's memory


def test_3_2_the_document_may_start_in_several_states_at_once() -> None:
    run = scxml_run("""
      <parallel id="p">
        <state id="b"><state id="b1"/><state id="b2"/></state>
        <state id="c"><state id="c1"/><state id="c2"/></state>
      </parallel>""", ' initial="b2 c2"')
    assert run.configuration == ("p.b.b2", "p.c.c2")
