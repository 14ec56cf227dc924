"""The data form of executable content (SCXML section 4): what `enter_content`, `exit_content` and a
transition's `content` hold in a spec, in YAML, JSON or Python.

A block is a list of items; each item is a one-key mapping naming what it does:

```yaml
- raise: done.checking                      # <raise event>
- log: {label: total, expr: "total"}        # <log label expr>
- assign: {location: total, expr: "total + 1"}
- if:                                       # <if>/<elseif>/<else>: branches in order,
    - {cond: "total > 10", do: [...]}       # the last one may have no cond (the else)
    - {do: [...]}
- foreach: {array: "items", item: it, index: i, do: [...]}
- send: {event: tick, delay: 2s, id: t1}    # or eventexpr, delayexpr, target, idlocation,
                                            # namelist, params, content
- cancel: {sendid: t1}                      # or sendidexpr
- block: [...]                              # a block of its own: an error stops it alone
```

`block` is how a state keeps SCXML's several `<onentry>` (or `<onexit>`) elements apart: an error
in one stops only that one (SCXML 3.8, 3.9).

Expressions (`expr`, `cond`, ...) are text for `statemachines.chart.expressions`; they are only
checked for syntax here: ECMAScript-only constructs are refused, other text that does not parse is
kept (it raises `error.execution` when evaluated; `statemachines.content_illegal` lists it for the
loaders' warnings). Items are normalised (a bare `raise: x` becomes `{"event": "x"}` ...) so
a spec dumps and hashes the same however it was written. Validation errors are `ValueError`s
that pydantic reports with the item's position.
"""

from __future__ import annotations

import ast
import re
from typing import Any

#: Per item kind: the keys it may have. `do` holds a nested block.
_KEYS: dict[str, frozenset[str]] = {
    "raise": frozenset({"event"}),
    "log": frozenset({"label", "expr"}),
    "assign": frozenset({"location", "expr"}),
    "if": frozenset(),  # a list of branches, checked apart
    "foreach": frozenset({"array", "item", "index", "do"}),
    "send": frozenset({
        "event", "eventexpr", "target", "targetexpr", "type", "typeexpr", "delay", "delayexpr",
        "id", "idlocation", "namelist", "params", "content",
    }),
    "cancel": frozenset({"sendid", "sendidexpr"}),
    "block": frozenset(),  # a nested block, checked apart
}
#: Keys of an item (or a param) that hold expressions (syntax-checked at definition time), and
#: those that hold locations; in the order the loaders report them.
EXPRESSION_KEYS = ("cond", "expr", "array", "eventexpr", "targetexpr", "typeexpr", "delayexpr", "sendidexpr")
LOCATION_KEYS = ("location", "item", "index", "idlocation")
#: Pairs of keys of which at most one may be given (SCXML: "must not occur with").
EXCLUSIVE = (
    ("event", "eventexpr"), ("target", "targetexpr"), ("type", "typeexpr"), ("delay", "delayexpr"),
    ("id", "idlocation"), ("sendid", "sendidexpr"), ("namelist", "content"), ("params", "content"),
)  # fmt: skip
KINDS = tuple(_KEYS)


def normalise_block(value: Any, where: str = "content") -> list[dict[str, Any]]:
    """A block in its canonical form; raises ValueError naming the first problem and where."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}: a block of executable content is a list, got {type(value).__name__}")
    return [_item(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _item(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict) or len(item) != 1:
        raise ValueError(f"{where}: an item is a mapping with exactly one of {list(KINDS)}, got {item!r:.80}")
    ((kind, body),) = item.items()
    if kind not in _KEYS:
        raise ValueError(f"{where}: unknown executable content {kind!r}; known: {list(KINDS)}")
    where = f"{where}.{kind}"
    if kind == "if":
        return {"if": _branches(body, where)}
    if kind == "block":
        return {"block": normalise_block(body, where)}
    if kind == "raise" and isinstance(body, str):
        body = {"event": body}
    if not isinstance(body, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(body).__name__}")
    unknown = sorted(set(body) - _KEYS[kind])
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed: {sorted(_KEYS[kind])}")
    out: dict[str, Any] = {}
    for key, val in body.items():
        if val is None:
            continue
        if key == "do":
            out[key] = normalise_block(val, f"{where}.do")
        elif key == "namelist":
            out[key] = _names(val, f"{where}.namelist")
        elif key == "params":
            out[key] = [_param(p, f"{where}.params[{i}]") for i, p in enumerate(_listed(val, where))]
        elif key == "content":
            out[key] = _content(val, f"{where}.content")
        else:
            out[key] = _text(val, f"{where}.{key}", key in EXPRESSION_KEYS)
    for a, b in EXCLUSIVE:
        if a in out and b in out:
            raise ValueError(f"{where}: {a!r} and {b!r} cannot both be given")
    _required(kind, out, where)
    return {kind: out}


def _required(kind: str, out: dict[str, Any], where: str) -> None:
    needs = {
        "raise": [("event",)],
        "assign": [("location",)],
        "foreach": [("array",), ("item",)],
        "cancel": [("sendid", "sendidexpr")],
    }.get(kind, [])
    for options in needs:
        if not any(o in out for o in options):
            raise ValueError(f"{where}: needs {' or '.join(repr(o) for o in options)}")
    if kind == "assign" and "expr" not in out:
        out["expr"] = "None"  # <assign location="x"/> with no value: SCXML leaves it empty
    if kind == "send" and "event" not in out and "eventexpr" not in out:
        raise ValueError(f"{where}: needs 'event' or 'eventexpr'")
    for key in LOCATION_KEYS:
        if key in out:
            location_problem(out[key], f"{where}.{key}")


def _branches(body: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(body, list) or not body:
        raise ValueError(f"{where}: a non-empty list of branches {{cond, do}} (the last may omit cond)")
    branches: list[dict[str, Any]] = []
    for i, branch in enumerate(body):
        at = f"{where}[{i}]"
        if not isinstance(branch, dict) or set(branch) - {"cond", "do"}:
            raise ValueError(f"{at}: a branch is a mapping with 'cond' and 'do'")
        out: dict[str, Any] = {}
        if branch.get("cond") is not None:
            out["cond"] = _text(branch["cond"], f"{at}.cond", True)
        elif i != len(body) - 1:
            raise ValueError(f"{at}: only the last branch (the else) may omit 'cond'")
        out["do"] = normalise_block(branch.get("do"), f"{at}.do")
        branches.append(out)
    return branches


def _param(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or "name" not in value or set(value) - {"name", "expr", "location"}:
        raise ValueError(f"{where}: a param is {{name, expr}} or {{name, location}}")
    if ("expr" in value) == ("location" in value):
        raise ValueError(f"{where}: a param needs exactly one of 'expr' and 'location'")
    out = {"name": _text(value["name"], f"{where}.name", False)}
    if "expr" in value:
        out["expr"] = _text(value["expr"], f"{where}.expr", True)
    else:
        out["location"] = _text(value["location"], f"{where}.location", False)
        location_problem(out["location"], f"{where}.location")
    return out


def _content(value: Any, where: str) -> dict[str, str]:
    """`{expr: ...}` (evaluated when sent) or `{text: ...}` (sent as it is)."""
    if isinstance(value, dict) and len(value) == 1 and ("expr" in value or "text" in value):
        ((key, text),) = value.items()
        return {key: _text(text, f"{where}.{key}", key == "expr")}
    raise ValueError(f"{where}: content is {{expr: ...}} or {{text: ...}}")


def _names(value: Any, where: str) -> list[str]:
    names = value.split() if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where}: a list of locations")
    for name in names:
        location_problem(name, where)
    return list(names)


def _listed(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{where}.params: a list of params")
    return value


def _text(value: Any, where: str, expression: bool) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{where}: expected text, got {type(value).__name__}")
    text = str(value)
    if expression:
        expression_problem(text, where)
    return text


class IllegalExpressionWarning(UserWarning):
    """A definition holds an expression (or location) that does not parse in the expression
    language: it is kept, and evaluating it raises `error.execution` (SCXML 5.9, B.2)."""


#: Written where an illegal expression is reported at load.
RAISES_LATER = "it raises error.execution when evaluated"
#: ECMAScript-only constructs (outside string literals) in text that does not parse: a document
#: written for the ECMAScript data model, refused at load rather than failing at every evaluation.
_STRINGS = re.compile(r"'(?:[^'\\\n]|\\.)*'" r'|"(?:[^"\\\n]|\\.)*"')
_ECMASCRIPT = re.compile(
    r"===|!==|&&|\|\||=>|\+\+|--|\?|!(?!=)"
    r"|\b(?:typeof|instanceof|function|var|let|const|new|delete|void)\b"
)


def ecmascript_construct(text: str) -> str | None:
    """The first ECMAScript-only construct of `text`, if it has one (only asked of text that
    does not parse: `x --1` and `a if b else c` are Python)."""
    found = _ECMASCRIPT.search(_STRINGS.sub("''", text))
    return found.group(0) if found else None


def _parse_problem(text: str) -> str | None:
    """Why `text` is not one Python expression (the language's syntax), or None."""
    try:
        ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        return str(exc.msg)
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, nesting too deep
        return type(exc).__name__
    return None


def expression_problem(text: str, where: str) -> str | None:
    """None when `text` is an expression; else why not (the text is kept: evaluating it raises
    `error.execution`). Raises ValueError for ECMAScript-only constructs, which are refused."""
    problem = _parse_problem(text)
    if problem is not None:
        _refuse_ecmascript(text, where)
        return f"{where}: {text[:80]!r} is not an expression ({problem}): {RAISES_LATER}"
    return None


def location_problem(text: str, where: str) -> str | None:
    """None when `text` names a location (`x`, `x.y`, `x[0]`, `x['k'].y`); else why not (kept,
    as `expression_problem`). Raises ValueError for ECMAScript-only constructs."""
    if is_location(text):
        return None
    if _parse_problem(text) is not None:
        _refuse_ecmascript(text, where)
    return f"{where}: {text[:80]!r} is not a location (a name, then .attribute or [index]): {RAISES_LATER}"


def is_location(text: str) -> bool:
    return location_tree(text) is not None


def location_tree(text: str) -> ast.expr | None:
    """The syntax tree of `text` if it names a location (a name, then .attribute or [index])."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    node = tree
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return tree if isinstance(node, ast.Name) else None


def _refuse_ecmascript(text: str, where: str) -> None:
    construct = ecmascript_construct(text)
    if construct is not None:
        raise ValueError(
            f"{where}: {construct!r} is ECMAScript, which the expression language (Python-style, "
            "see docs/scxml.md) does not read"
        )


def normalise_data(value: Any, where: str = "data") -> dict[str, str | None]:
    """A datamodel: `{id: expression or None}`, in document order (later ones may use earlier)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: a mapping of data ids to expressions")
    out: dict[str, str | None] = {}
    for key, expr in value.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise ValueError(f"{where}: data id {key!r} must be an identifier not starting with '_'")
        out[key] = None if expr is None else _text(expr, f"{where}.{key}", True)
    return out


def normalise_donedata(value: Any, where: str = "donedata") -> dict[str, Any] | None:
    """`{params: [...]}` or `{content: {expr|text}}`: the data of the done event of a final state."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"params", "content"}:
        raise ValueError(f"{where}: donedata is {{params: [...]}} or {{content: {{expr: ...}}}}")
    if "params" in value:
        params = [_param(p, f"{where}.params[{i}]") for i, p in enumerate(_listed(value["params"], where))]
        return {"params": params}
    return {"content": _content(value["content"], f"{where}.content")}
