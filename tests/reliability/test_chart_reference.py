"""The reference interpreter itself, on the worked examples of docs/statecharts.md: it must say
what the documentation says before its agreement with the core means anything."""

from __future__ import annotations

from typing import Any

from reliability.chart_reference import RefChart, RefError, RefResult, reference_send, reference_start

START = {"n": 0, "log": []}


def traced(path: str, **body: Any) -> dict[str, Any]:
    return {"on_enter": [f"enter:{path}"], "on_exit": [f"exit:{path}"], **body}


def go(target: str | None, *actions: str, **kw: Any) -> list[dict[str, Any]]:
    return [{"target": target, "actions": list(actions), **kw}]


def run(spec: dict[str, Any], *events: str, cap: int = 100) -> RefResult:
    chart = RefChart(spec)
    result = reference_start(chart, START, cap)
    for name in events:
        result = reference_send(chart, result, name, {}, cap)
    return result


def test_exits_innermost_first_then_actions_then_entries_outermost_first() -> None:
    spec = {
        "name": "order_of_things",
        "initial": "idle",
        "states": {
            "idle": traced("idle", on={"GO": go("p", "action")}),
            "p": traced(
                "p",
                type="parallel",
                on={"STOP": go("idle", "action")},
                states={
                    "r1": traced("p.r1", initial="a", states={"a": traced("p.r1.a")}),
                    "r2": traced("p.r2", initial="x", states={"x": traced("p.r2.x")}),
                },
            ),
        },
    }
    result = run(spec, "GO", "STOP")
    assert result.context["log"] == [
        "enter:idle",
        "exit:idle", "action", "enter:p", "enter:p.r1", "enter:p.r1.a", "enter:p.r2", "enter:p.r2.x",
        "exit:p.r2.x", "exit:p.r2", "exit:p.r1.a", "exit:p.r1", "exit:p", "action", "enter:idle",
    ]  # fmt: skip


def test_a_parallel_state_joins_when_every_region_is_final() -> None:
    spec = {
        "name": "order",
        "initial": "open",
        "states": {
            "open": {"on": {"PAY": go("fulfilment")}},
            "fulfilment": {
                "type": "parallel",
                "on": {"done.state.fulfilment": go("shipped")},
                "states": {
                    "goods": {"initial": "picking", "states": {
                        "picking": {"on": {"PICKED": go("packed")}}, "packed": {"final": True}}},
                    "invoice": {"initial": "drafting", "states": {
                        "drafting": {"on": {"SENT": go("sent")}}, "sent": {"final": True}}},
                },
            },
            "shipped": {"final": True},
        },
    }  # fmt: skip
    assert run(spec, "PAY").configuration == ("fulfilment.goods.picking", "fulfilment.invoice.drafting")
    assert run(spec, "PAY", "PICKED").configuration == (
        "fulfilment.goods.packed",
        "fulfilment.invoice.drafting",
    )
    done = run(spec, "PAY", "PICKED", "SENT")
    assert done.configuration == ("shipped",) and done.done


def test_shallow_history_re_enters_the_last_active_child() -> None:
    spec = {
        "name": "review",
        "initial": "review",
        "states": {
            "review": {
                "initial": "first",
                "on": {"PAUSE": go("paused")},
                "states": {
                    "first": {"on": {"APPROVE": go("second")}},
                    "second": {"on": {"APPROVE": go("approved")}},
                    "last": {"history": {"default": "first", "deep": False}},
                },
            },
            "paused": {"on": {"RESUME": go("review.last")}},
            "approved": {"final": True},
        },
    }
    result = run(spec, "APPROVE", "PAUSE", "RESUME")
    assert result.configuration == ("review.second",)
    assert result.history == {"review.last": ("review.second",)}


def test_an_internal_transition_does_not_exit_its_compound_source() -> None:
    def spec(internal: bool) -> dict[str, Any]:
        kind = {"type": "internal"} if internal else {}
        return {
            "name": "modes",
            "initial": "outer",
            "states": {
                "outer": {
                    "initial": "one",
                    "states": {"one": {}, "two": {}},
                    "on": {"TWO": go("two", **kind)},
                }
            },
        }

    assert run(spec(True), "TWO").moves == [("exit", "outer.one"), ("enter", "outer.two")]
    assert run(spec(False), "TWO").moves == [
        ("exit", "outer.one"), ("exit", "outer"), ("enter", "outer"), ("enter", "outer.two")
    ]  # fmt: skip


def test_a_loop_of_eventless_transitions_hits_the_cap() -> None:
    spec = {
        "name": "ping_pong",
        "initial": "idle",
        "states": {
            "idle": {"on": {"GO": go("ping")}},
            "ping": {"always": go("pong")},
            "pong": {"always": go("ping")},
        },
    }
    try:
        run(spec, "GO", cap=10)
    except RefError as err:
        assert err.kind == "StepLimitExceeded"
    else:
        raise AssertionError("expected the step limit")


def test_refusals_say_whether_any_state_declares_the_event() -> None:
    spec = {
        "name": "guarded",
        "initial": "a",
        "states": {"a": {"on": {"GO": go("b", guard="odd")}}, "b": {}},
    }
    for event, kind in (("GO", "GuardRejected"), ("NOPE", "EventNotAllowed")):
        try:
            run(spec, event)
        except RefError as err:
            assert err.kind == kind
        else:
            raise AssertionError(f"expected {kind}")
