"""The illegal expressions of a spec: text in an expression or location slot that the expression
language cannot read (`cond: "1 = 1"`, `item: "'continue'"`).

Such text is kept in the definition and raises `error.execution` when evaluated, as SCXML says of
an illegal expression (5.9, B.2); loading a definition file warns about each one
(`IllegalExpressionWarning`, which `statemachines.scxml` exports too), so the author learns of the
mistake when loading rather than from a run.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

from statemachines.content_spec import (
    EXPRESSION_KEYS,
    LOCATION_KEYS,
    IllegalExpressionWarning,
    expression_problem,
    location_problem,
)


def illegal_expressions(spec: Any) -> list[str]:
    """One message per illegal expression or location of a `MachineSpec`, naming where it is."""
    found = list(_data(spec.data, "data"))
    for path, st in spec.walk():
        at = f"state {path!r}"
        found += _data(st.data, f"{at} data")
        for field in ("enter_content", "exit_content", "initial_content"):
            found += _block(getattr(st, field), f"{at} {field}")
        if st.history is not None:
            found += _block(st.history.content, f"{at} history content")
        if st.donedata is not None:
            found += _body(st.donedata, f"{at} donedata")
        groups = [(f"on {key!r}", group) for key, group in st.on.items()]
        for label, group in [*groups, ("always", st.always)]:
            for i, t in enumerate(group):
                where = f"{at} {label}[{i}]"
                if t.cond is not None:
                    found += _problems(expression_problem(t.cond, f"{where} cond"))
                found += _block(t.content, f"{where} content")
    return found


def warn_illegal(spec: Any, source: str, stacklevel: int = 2) -> None:
    """An `IllegalExpressionWarning` per illegal expression of `spec`, each naming `source`."""
    for message in illegal_expressions(spec):
        warnings.warn(f"{source}: {message}", IllegalExpressionWarning, stacklevel=stacklevel + 1)


def _problems(*problems: str | None) -> list[str]:
    return [p for p in problems if p is not None]


def _data(data: dict[str, str | None], where: str) -> Iterator[str]:
    for name, expr in data.items():
        if expr is not None:
            yield from _problems(expression_problem(expr, f"{where} {name}"))


def _block(block: list[dict[str, Any]], where: str) -> Iterator[str]:
    for i, item in enumerate(block):
        ((kind, body),) = item.items()
        at = f"{where}[{i}].{kind}"
        if kind == "block":
            yield from _block(body, at)
        elif kind == "if":
            for j, branch in enumerate(body):
                yield from _body(branch, f"{at}[{j}]")
        elif isinstance(body, dict):
            yield from _body(body, at)


def _body(body: dict[str, Any], where: str) -> Iterator[str]:
    """An item's own expressions and locations, then its params, content and nested block."""
    for key in EXPRESSION_KEYS:
        if key in body:
            yield from _problems(expression_problem(body[key], f"{where}.{key}"))
    for key in LOCATION_KEYS:
        if key in body:
            yield from _problems(location_problem(body[key], f"{where}.{key}"))
    for name in body.get("namelist", ()):
        yield from _problems(location_problem(name, f"{where}.namelist"))
    for i, param in enumerate(body.get("params", ())):
        yield from _body(param, f"{where}.params[{i}]")
    if isinstance(body.get("content"), dict):
        yield from _body(body["content"], f"{where}.content")
    yield from _block(body.get("do", []), f"{where}.do")
