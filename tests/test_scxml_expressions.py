"""The expression language of `cond`/`expr` (SCXML 5.9): what it reads, and what it refuses (no
`eval`, no private attributes, no methods that change data or read attributes by themselves)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from statemachines.chart.expressions import Evaluator, EventView, ExpressionError
from tests.scxml_support import scxml_run


def _evaluator(context: dict[str, Any] | None = None) -> Evaluator:
    event = EventView("go", "external", {"n": 1}, None, None)
    return Evaluator("i1", "m", lambda: context or {}, lambda: event, lambda name: name == "a")


def test_5_9_expressions_read_the_context_the_event_and_in() -> None:
    ev = _evaluator({"d": {"x": [1, 2]}})
    assert ev.eval("d.x[1] + _event.data.n") == 3
    assert ev.eval("In('a') and not In('b')") is True
    assert ev.eval("_sessionid + _name") == "i1m"


def test_5_10_1_event_shows_its_fields_when_logged() -> None:
    shown = _evaluator().eval("str(_event)")
    assert shown.startswith("_event({'data': {'n': 1}, 'invokeid': None, 'name': 'go'")


def test_5_10_1_hasattr_says_which_fields_event_has() -> None:
    ev = _evaluator({"d": {"x": 1}})
    fields = ("name", "type", "sendid", "origin", "origintype", "invokeid", "data")
    assert all(ev.eval(f"hasattr(_event, '{name}')") for name in fields)
    assert not ev.eval("hasattr(_event, 'other') or hasattr(_event, '__init__')")
    assert ev.eval("hasattr(d, 'x') and hasattr(d, 'get') and not hasattr(d, 'update')")


@pytest.mark.parametrize(
    "text",
    [
        "().__class__",  # private attributes
        "_event.__init__",
        "'{0.__init__.__globals__}'.format(_event)",  # str.format reads attributes itself
        "'{x}'.format_map(d)",
        "d.update({'y': 1})",  # methods that change data
        "d.x.append(3)",
        "open('/etc/passwd')",  # functions that are not listed
        "__import__('os')",
        "getattr(d, 'x')",
        "'a' * 10**9",  # sizes
        "9 ** 9 ** 9",
    ],
)
def test_5_9_the_expression_language_refuses_what_it_does_not_list(text: str) -> None:
    with pytest.raises(ExpressionError):
        _evaluator({"d": {"x": [1, 2]}}).eval(text)


def test_5_9_a_refused_expression_in_content_is_error_execution(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="statemachines.scxml")
    run = scxml_run("""<datamodel><data id="leak" expr="''"/></datamodel>
      <state id="s0">
        <onentry><raise event="go"/></onentry>
        <transition event="go" target="s1">
          <assign location="leak" expr="'{0.__init__.__globals__}'.format(_event)"/></transition>
      </state>
      <state id="s1">
        <transition event="error.execution" cond="leak == ''" target="pass"/>
        <transition event="*" target="fail"/>
      </state><final id="pass"/><final id="fail"/>""")
    assert run.configuration == ("pass",)


def test_5_9_ecmascript_spellings_of_the_constants_are_understood_unless_data_names_them() -> None:
    assert _evaluator().eval("[true, false, null]") == [True, False, None]
    assert _evaluator({"null": 5}).eval("null") == 5
