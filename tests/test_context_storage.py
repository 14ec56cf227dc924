"""Contexts and payloads are stored only when their JSON reads back: NaN/Infinity, values JSON
cannot hold and data nested too deeply are refused before anything is written."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import BaseModel

from statemachines import ContextInvalid, Effect, Engine, PayloadInvalid, Retry, machine, state, transition


class Reading(BaseModel):
    value: float = 0.0
    extra: Any = None


class Sample(BaseModel):
    value: float


def set_nan(ctx: Reading, event) -> None:
    ctx.value = math.nan


def set_object(ctx: Reading, event) -> None:
    ctx.extra = object()


def set_inf_in_dict(ctx: dict, event) -> None:
    ctx["value"] = math.inf


def first_action(ctx: Reading, event) -> None:
    pass


MODEL = machine(
    "reading",
    context=Reading,
    initial="open",
    states={
        "open": state(
            on={
                "NAN": transition(None, action=[first_action, set_nan]),
                "OBJECT": transition(None, action=set_object),
                "LEAVE": "done",
            }
        ),
        "done": state(final=True),
    },
)
PLAIN = machine(
    "plain",
    initial="open",
    events={"SAMPLE": Sample},
    states={
        "open": state(on={"INF": transition(None, action=set_inf_in_dict), "SAMPLE": "done", "NOTE": "done"}),
        "done": state(final=True),
    },
)


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def eng(engine: Engine) -> Engine:
    engine.register(MODEL)
    engine.register(PLAIN)
    return engine


# At start ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=repr)
def test_start_with_a_non_finite_float_field_is_context_invalid_and_creates_nothing(eng: Engine, bad) -> None:
    with pytest.raises(ContextInvalid, match="value is NaN or Infinity"):
        eng.start("reading", {"value": bad}, instance_id="r1")
    assert eng.instances() == []


def test_start_with_a_non_finite_float_inside_an_any_field_is_context_invalid(eng: Engine) -> None:
    with pytest.raises(ContextInvalid, match=r"extra\.x\[1\] is NaN or Infinity"):
        eng.start("reading", {"extra": {"x": [1.0, math.nan]}}, instance_id="r1")


@pytest.mark.parametrize(
    "extra", [object(), b"\xff\xfe", deep(5000)], ids=["object", "non-UTF-8 bytes", "5000 levels deep"]
)
def test_start_with_a_value_json_cannot_hold_is_context_invalid(eng: Engine, extra: Any) -> None:
    with pytest.raises(ContextInvalid):
        eng.start("reading", {"extra": extra}, instance_id="r1")
    assert eng.instances() == []


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=repr)
def test_start_of_a_dict_context_with_a_non_finite_number_is_context_invalid(eng: Engine, bad) -> None:
    with pytest.raises(ContextInvalid, match="NaN or Infinity"):
        eng.start("plain", {"a": {"b": bad}}, instance_id="p1")
    assert eng.instances() == []


def test_start_of_a_dict_context_given_as_a_model_with_nan_is_context_invalid(eng: Engine) -> None:
    with pytest.raises(ContextInvalid, match="NaN or Infinity"):
        eng.start("plain", Sample(value=math.nan), instance_id="p1")


def test_start_of_a_dict_context_given_as_a_model_holding_an_object_is_context_invalid(eng: Engine) -> None:
    with pytest.raises(ContextInvalid, match="not JSON-serialisable"):
        eng.start("plain", Reading(extra=object()), instance_id="p1")


def test_a_context_that_reads_back_is_stored_and_read(eng: Engine) -> None:
    eng.start("reading", {"value": 1.5, "extra": {"deep": deep(20)}}, instance_id="r1")
    assert eng.get("r1").context == Reading(value=1.5, extra={"deep": deep(20)})


# After actions -----------------------------------------------------------------------------------


def test_an_action_setting_nan_is_context_invalid_and_writes_nothing(eng: Engine) -> None:
    eng.start("reading", instance_id="r1")
    with pytest.raises(ContextInvalid, match="value is NaN or Infinity"):
        eng.send("r1", "NAN")
    assert eng.get("r1").version == 1
    assert eng.get("r1").context == Reading()
    assert len(eng.history("r1")) == 1


def test_context_invalid_after_an_action_names_the_event_and_the_callbacks_that_ran(eng: Engine) -> None:
    eng.start("reading", instance_id="r1")
    with pytest.raises(ContextInvalid) as info:
        eng.send("r1", "NAN")
    assert info.value.event == "NAN"
    assert info.value.callbacks == [
        "action 'first_action' of 'open' --NAN-->",
        "action 'set_nan' of 'open' --NAN-->",
    ]
    assert "after event 'NAN' (ran: action 'first_action'" in str(info.value)


def test_an_action_storing_an_object_is_context_invalid(eng: Engine) -> None:
    eng.start("reading", instance_id="r1")
    with pytest.raises(ContextInvalid, match="not JSON-serialisable"):
        eng.send("r1", "OBJECT")
    assert eng.get("r1").version == 1


def test_an_action_setting_infinity_in_a_dict_context_is_context_invalid(eng: Engine) -> None:
    eng.start("plain", instance_id="p1")
    with pytest.raises(ContextInvalid, match="value is NaN or Infinity"):
        eng.send("p1", "INF")
    assert eng.get("p1").context == {}


# Payloads ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=repr)
def test_a_payload_with_a_non_finite_number_is_payload_invalid_and_writes_nothing(eng: Engine, bad) -> None:
    eng.start("plain", instance_id="p1")
    with pytest.raises(PayloadInvalid):
        eng.send("p1", "NOTE", {"x": bad})
    assert [r.event for r in eng.history("p1")] == ["start"]


@pytest.mark.parametrize("payload", [{"value": math.nan}, Sample(value=math.inf)], ids=["dict", "model"])
def test_a_schema_payload_with_a_non_finite_number_is_payload_invalid(eng: Engine, payload: Any) -> None:
    eng.start("plain", instance_id="p1")
    with pytest.raises(PayloadInvalid, match="NaN or Infinity"):
        eng.send("p1", "SAMPLE", payload)
    assert eng.get("p1").state == "open"


def test_history_of_refused_payloads_stays_valid_json(eng: Engine) -> None:
    eng.start("plain", instance_id="p1")
    with pytest.raises(PayloadInvalid):
        eng.send("p1", "NOTE", {"x": math.nan})
    eng.send("p1", "NOTE", {"x": 1.5})
    text = json.dumps([r.payload for r in eng.history("p1")], allow_nan=False)
    assert json.loads(text)[-1] == {"x": 1.5}


# Effect results ----------------------------------------------------------------------------------


def measure(ctx: dict, call) -> dict:
    return {"reading": math.nan}


def test_an_effect_returning_nan_is_a_failed_attempt_and_its_result_is_not_stored(engine: Engine) -> None:
    engine.register(
        machine(
            "probe",
            initial="measuring",
            states={
                "measuring": state(
                    effect=Effect(measure, retry=Retry(max_attempts=2)), on={"done.measure": "measured"}
                ),
                "measured": state(final=True),
            },
        )
    )
    engine.start("probe", instance_id="m1")
    assert engine.run_due() == 1
    [attempt] = engine.effect_attempts("m1")
    assert not attempt.ok
    assert "Out of range float values" in (attempt.error or "")
    assert engine.get("m1").state == "measuring"
    json.dumps([r.payload for r in engine.history("m1")], allow_nan=False)
