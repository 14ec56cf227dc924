"""Definitions from YAML or JSON files: parsed as data only (`yaml.safe_load`), never executed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from statemachines.definition import Definition
from statemachines.errors import DefinitionError


def loads_definition(
    text: str, registry: Mapping[str, Any] | None = None, *, fmt: str = "yaml"
) -> Definition:
    """Parse YAML (a superset of JSON) or strict JSON text into a checked `Definition`."""
    try:
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, ValueError) as exc:
        raise DefinitionError("?", [f"not valid {fmt.upper()}: {exc}"]) from None
    return Definition.from_dict(data, registry)


def load_definition(path: str | Path, registry: Mapping[str, Any] | None = None) -> Definition:
    """Load `*.yaml`, `*.yml` or `*.json`."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DefinitionError(p.name, [f"cannot read {p}: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError(p.name, [f"{p} is not UTF-8 text: {exc}"]) from None
    return loads_definition(text, registry, fmt="json" if p.suffix == ".json" else "yaml")


def dump_definition(definition: Definition, path: str | Path) -> None:
    """Write a definition's spec as JSON (or YAML when the file ends in .yaml/.yml)."""
    p = Path(path)
    if p.suffix in (".yaml", ".yml"):
        p.write_text(yaml.safe_dump(definition.to_dict(), sort_keys=False), encoding="utf-8")
    else:
        p.write_text(definition.to_json(), encoding="utf-8")
