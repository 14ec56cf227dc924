"""Definitions from YAML or JSON files: parsed as data only (a `yaml.SafeLoader`), never executed."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statemachines.content_illegal import warn_illegal
from statemachines.definition import Definition
from statemachines.errors import DefinitionError

if TYPE_CHECKING:
    import yaml


@cache
def _safe_loader() -> type[yaml.SafeLoader]:
    """`yaml.SafeLoader` with YAML 1.2 booleans (only true/false).

    YAML 1.1 also reads on/off/yes/no as booleans, which turns the `on:` key every state has
    (and events named ON/OFF/YES/NO) into `True`/`False`. Built (and PyYAML imported) on first
    use: importing the package, or a CLI call without a definition file, does not need it.
    """
    import yaml

    class SafeLoader(yaml.SafeLoader):
        pass

    SafeLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    SafeLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return SafeLoader


def loads_definition(
    text: str,
    registry: Mapping[str, Any] | None = None,
    *,
    fmt: str = "yaml",
    source: str | None = None,
    _stacklevel: int = 2,
) -> Definition:
    """Parse YAML (a superset of JSON) or strict JSON text into a checked `Definition`.

    `source` (a file name) starts every syntax error message, with the line and column, so the
    reader can open the file at the mistake. An expression that does not parse is kept (it raises
    `error.execution` when evaluated) and warned about (`IllegalExpressionWarning`).
    """
    import yaml

    where = source or "?"
    try:
        data = json.loads(text) if fmt == "json" else yaml.load(text, Loader=_safe_loader())
    except yaml.MarkedYAMLError as exc:
        raise DefinitionError(where, [_yaml_problem(exc, source)]) from None
    except json.JSONDecodeError as exc:
        raise DefinitionError(
            where, [f"{_at(source, exc.lineno, exc.colno)}not valid JSON: {exc.msg}"]
        ) from None
    except (yaml.YAMLError, ValueError) as exc:
        raise DefinitionError(where, [f"{_prefix(source)}not valid {fmt.upper()}: {exc}"]) from None
    except RecursionError:  # both parsers recurse per nesting level
        raise DefinitionError(
            where, [f"{_prefix(source)}not valid {fmt.upper()}: nested too deeply"]
        ) from None
    except Exception as exc:  # PyYAML's own constructor bugs (`!!timestamp foo`: AttributeError)
        raise DefinitionError(
            where, [f"{_prefix(source)}not valid {fmt.upper()}: {type(exc).__name__}: {exc}"]
        ) from None
    definition = Definition.from_dict(data, registry)
    warn_illegal(definition.spec, source or definition.name, stacklevel=_stacklevel)
    return definition


def _prefix(source: str | None) -> str:
    return f"{source}: " if source else ""


def _at(source: str | None, line: int, column: int) -> str:
    """`file:line:column: ` (what editors and terminals link), or `line L, column C: ` for text."""
    return f"{source}:{line}:{column}: " if source else f"line {line}, column {column}: "


def _yaml_problem(exc: yaml.MarkedYAMLError, source: str | None) -> str:
    """`file:line:column: not valid YAML: <problem> (<context>)`, 1-based like editors count."""
    mark = exc.problem_mark or exc.context_mark
    at = (
        f"{source or 'line'}{':' if source else ' '}{mark.line + 1}:{mark.column + 1}: "
        if mark
        else _prefix(source)
    )
    what = exc.problem or "syntax error"
    context = f" ({exc.context})" if exc.context else ""
    return f"{at}not valid YAML: {what}{context}"


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
    fmt = "json" if p.suffix == ".json" else "yaml"
    return loads_definition(text, registry, fmt=fmt, source=str(p), _stacklevel=3)


def dump_definition(definition: Definition, path: str | Path) -> None:
    """Write a definition's spec as JSON (or YAML when the file ends in .yaml/.yml)."""
    p = Path(path)
    if p.suffix in (".yaml", ".yml"):
        import yaml

        p.write_text(yaml.safe_dump(definition.to_dict(), sort_keys=False), encoding="utf-8")
    else:
        p.write_text(definition.to_json(), encoding="utf-8")
