"""The definition format's JSON Schema and its reference, docs/definitions.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from statemachines import loads_definition
from statemachines.examples import expense_approval, flaky_payment, subscription
from statemachines.examples.orders import YAML_PATH, registry
from statemachines.schema import definition_schema
from statemachines.spec import MachineSpec

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "definitions.md"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = definition_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def yaml_blocks() -> list[Any]:
    text = REFERENCE.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```yaml\n(.*?)^```", text, flags=re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(pytest.param(match.group(1), id=f"definitions.md:{line}"))
    return blocks


def test_the_shipped_yaml_example_is_valid(validator: Draft202012Validator) -> None:
    data = yaml.safe_load(YAML_PATH.read_text(encoding="utf-8"))
    assert list(validator.iter_errors(data)) == []


@pytest.mark.parametrize(
    "definition",
    [subscription.subscription, expense_approval.expense_approval, flaky_payment.payment],
    ids=lambda d: d.name,
)
def test_the_example_definitions_as_data_are_valid(validator: Draft202012Validator, definition: Any) -> None:
    assert list(validator.iter_errors(definition.to_dict())) == []


@pytest.mark.parametrize(
    "mistake",
    [
        {"states": {"pending": {"onn": {}}}},  # a misspelt key
        {"states": {"pending": {"final": [True]}}},  # a wrong type
        {"states": {"pending": {"on": {"GO": {"guard": "g"}}}}},  # a transition without target
        {"states": {"pending": {"type": "serial"}}},  # not a state type
        {"name": ""},
    ],
)
def test_mistakes_are_flagged(validator: Draft202012Validator, mistake: dict[str, Any]) -> None:
    data = {"name": "m", "initial": "pending", "states": {"pending": None}}
    data.update(mistake)
    assert list(validator.iter_errors(data)) != []
    with pytest.raises(ValueError):
        MachineSpec.model_validate(data)  # the schema agrees with the loader


def test_every_property_has_a_description() -> None:
    schema = definition_schema()
    bodies = [schema, *schema["$defs"].values()]
    missing = [
        f"{body.get('title')}.{prop}"
        for body in bodies
        for prop, value in body.get("properties", {}).items()
        if not value.get("description")
    ]
    assert missing == []


def test_nested_states_are_described_recursively() -> None:
    state = definition_schema()["$defs"]["State"]
    assert state["properties"]["states"]["additionalProperties"] == {"$ref": "#/$defs/StateOrEmpty"}
    assert set(state["properties"]) >= {"initial", "states", "type", "history", "always"}


def test_the_reference_has_examples() -> None:
    assert len(yaml_blocks()) >= 5


@pytest.mark.parametrize("block", yaml_blocks())
def test_every_reference_example_loads_and_is_valid(block: str, validator: Draft202012Validator) -> None:
    data = yaml.safe_load(block)
    assert list(validator.iter_errors(data)) == []
    loads_definition(block, REGISTRY)


def _names() -> dict[str, Any]:
    """The names the reference's examples use: the order example's, plus a few stand-ins."""
    from pydantic import BaseModel

    class Expense(BaseModel):
        amount: float = 0

    def stand_in(ctx: Any, event: Any) -> None:
        return None

    names: dict[str, Any] = dict(registry)
    names["Expense"] = Expense
    for name in ("log_entry", "log_exit", "charge_card", "is_large", "notify", "send_reminder",
                 "record_result", "mark_verified", "all_checks_done"):  # fmt: skip
        names[name] = stand_in
    return names


REGISTRY = _names()
