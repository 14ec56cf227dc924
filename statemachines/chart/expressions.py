"""The expression language of executable content: a safe subset of Python, never `eval`/`exec`.

Expressions (`cond`, `expr`, `array`, `eventexpr`, `delayexpr`, ...) are evaluated by `simpleeval`
(the `scxml` extra), which walks the syntax tree itself and allows only literals, arithmetic,
comparisons, boolean logic, conditional expressions, subscripts, comprehensions, calls of the
functions listed in `FUNCTIONS`, and attribute reads on data (below). There is no import, no
assignment, no access to names beginning with `_` other than the system variables, and sizes
(powers, strings, comprehensions) are bounded by simpleeval's limits.

Names (W3C SCXML 5.10, with the Python data model's conventions):

- every key of the context (a dict; with a context model, its fields);
- `_event`: the event being processed, with `name`, `type` (`platform`, `internal` or
  `external`), `sendid`, `origin`, `origintype`, `invokeid` and `data` (its payload);
- `_sessionid` (the instance id), `_name` (the machine), `_ioprocessors` (`scxml` with its
  `location`, `#_scxml_<instance id>`);
- `In('state')`: whether a state is active, by full path or by name;
- `hasattr(x, 'name')`: whether `x.name` can be read by the rules below;
- `true`, `false`, `null` (ECMAScript's spellings) as `True`, `False`, `None`.

`a.b` reads key `b` of a dict `a` (so `_event.data.x` works); otherwise only methods that read:
`get`, `keys`, `values`, `items`, `copy` of dicts, `index`, `count`, `copy` of lists, and
simpleeval's list for strings and numbers. Anything an expression raises is
an `ExpressionError`, which executable content turns into `error.execution`; so is text that does
not parse (definitions keep it, as SCXML makes it an error of evaluation: `Evaluator.compile`).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping
from typing import Any

SCXML_PROCESSOR = "http://www.w3.org/TR/scxml/#SCXMLEventProcessor"


#: ECMAScript's spellings of the constants, for documents written for that data model (a key of
#: the context with the same name wins).
LITERALS = {"true": True, "false": False, "null": None}


class ExpressionError(Exception):
    """An expression could not be evaluated (bad name, type error, forbidden construct...)."""


class EventView:
    """`_event` as expressions see it: read-only fields of the event being processed."""

    __slots__ = ("data", "invokeid", "name", "origin", "origintype", "sendid", "type")
    FIELDS = frozenset(__slots__)

    def __init__(
        self, name: str, type: str, data: Any, sendid: str | None, origin: str | None
    ) -> None:
        self.name = name
        self.type = type
        self.data = data
        self.sendid = sendid
        self.origin = origin
        self.origintype = SCXML_PROCESSOR if origin else None
        self.invokeid = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as data (what assigning `_event` to a location stores)."""
        return {name: getattr(self, name) for name in sorted(self.FIELDS)}

    def __eq__(self, other: object) -> bool:
        """Equal to an `_event` with the same fields, or to the dict a location stored of one."""
        if isinstance(other, EventView):
            return self.as_dict() == other.as_dict()
        if isinstance(other, dict):
            return self.as_dict() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:  # what `<log expr="_event"/>` shows
        return f"_event({self.as_dict()!r})"


def session_location(instance_id: str) -> str:
    """The SCXML address of an instance (its `_ioprocessors` location, `origin` of its sends)."""
    return f"#_scxml_{instance_id}"


def _safe_functions() -> dict[str, Callable[..., Any]]:
    return {
        "len": len, "str": str, "int": int, "float": float, "bool": bool, "abs": abs, "min": min,
        "max": max, "round": round, "sorted": sorted, "list": list, "dict": dict, "tuple": tuple,
        "set": set,
    }  # fmt: skip


class Names(Mapping[str, Any]):
    """The names an expression sees: system variables first, then the context's keys."""

    __slots__ = ("context", "event", "system")

    def __init__(self, system: dict[str, Any], context: Callable[[], Any], event: Callable[[], Any]) -> None:
        self.system = system
        self.context = context
        self.event = event

    def __getitem__(self, key: str) -> Any:
        if key == "_event":
            return self.event()
        if key in self.system:
            return self.system[key]
        context = data_of(self.context())
        if key not in context and key in LITERALS:
            return LITERALS[key]
        return context[key]

    def __iter__(self) -> Iterator[str]:
        return iter([*self.system, "_event", *data_of(self.context())])

    def __len__(self) -> int:
        return len(self.system) + 1 + len(data_of(self.context()))


def data_of(context: Any) -> dict[str, Any]:
    """The context as a dict of names: itself, or a model's fields (`vars`)."""
    return context if isinstance(context, dict) else vars(context)


class Evaluator:
    """One per run of the algorithm (built only when a chart has expressions)."""

    def __init__(
        self,
        instance_id: str,
        machine: str,
        context: Callable[[], Any],
        event: Callable[[], Any],
        is_active: Callable[[str], bool],
    ) -> None:
        try:
            import simpleeval
        except ImportError as exc:  # pragma: no cover - the extra is part of `test`
            raise ExpressionError(
                "expressions need the simpleeval package: pip install 'statemachines[scxml]'"
            ) from exc
        self._simpleeval = simpleeval
        system = {
            "_sessionid": instance_id,
            "_name": machine,
            # the SCXML I/O processor, by its short name and by its type URI (SCXML 5.10)
            "_ioprocessors": {
                name: {"location": session_location(instance_id)} for name in ("scxml", SCXML_PROCESSOR)
            },
        }
        functions = {**_safe_functions(), "In": is_active, "hasattr": self._has}
        self._engine = _DataEval(simpleeval, names=Names(system, context, event), functions=functions)
        self._parsed: dict[str, ast.AST | str] = {}  # text -> its tree, or why it does not parse

    def compile(self, text: str) -> ast.AST:
        """The syntax tree of `text`. Text that is not an expression (kept by the definition: SCXML
        makes it an error of evaluation, 5.9) raises ExpressionError, every time it is evaluated."""
        tree = self._parsed.get(text)
        if tree is None:
            try:
                tree = ast.parse(text.strip(), mode="eval").body
            except SyntaxError as exc:
                tree = f"{text[:200]!r} is not an expression: {exc.msg}"
            except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, nesting too deep
                tree = f"{text[:200]!r} is not an expression: {type(exc).__name__}"
            self._parsed[text] = tree
        if isinstance(tree, str):
            raise ExpressionError(tree)
        return tree

    def eval(self, text: str) -> Any:
        """The value of `text`; ExpressionError for anything that goes wrong."""
        tree = self.compile(text)
        try:
            self._engine.expr = text
            return self._engine._eval(tree)
        except ExpressionError:
            raise
        except Exception as exc:  # whatever the expression did wrong is the document's error
            raise ExpressionError(f"{text[:200]!r}: {type(exc).__name__}: {exc}") from exc

    def truth(self, text: str) -> bool:
        return bool(self.eval(text))

    def _has(self, value: Any, name: str) -> bool:
        """`hasattr(x, 'name')`: whether `x.name` would be read, by the rules of `a.b` below
        (a key of a dict, a field of `_event`, a reading method), never Python's own."""
        if not isinstance(name, str) or name.startswith("_") or name in self._simpleeval.DISALLOW_METHODS:
            return False
        if isinstance(value, dict) and name in value:
            return True
        if isinstance(value, EventView):
            return name in EventView.FIELDS
        return name in _readers(self._simpleeval, type(value))


#: Methods of the mutable types an expression may call: those that only read.
_READ_ONLY: dict[type, frozenset[str]] = {
    dict: frozenset({"get", "keys", "values", "items", "copy"}),
    list: frozenset({"index", "count", "copy"}),
}


def _readers(simpleeval: Any, kind: type) -> frozenset[str] | set[str]:
    """The attributes an expression may read on a value of `kind`: the read-only methods of
    dicts and lists; simpleeval's list for its other (immutable) basic types; nothing else."""
    if kind in _READ_ONLY:
        return _READ_ONLY[kind]
    if kind in (str, int, float, tuple, bool):
        return simpleeval.BASIC_ALLOWED_ATTRS.get(kind, set())
    return frozenset()


def _DataEval(simpleeval: Any, **kwargs: Any) -> Any:
    """simpleeval's compound-types evaluator with attribute reads limited to data (see module)."""

    class DataEval(simpleeval.EvalWithCompoundTypes):  # type: ignore[misc, name-defined]
        def _eval_attribute(self, node: ast.Attribute) -> Any:
            # `str.format` would read attributes by itself (`'{0.__globals__}'.format(f)`):
            # simpleeval's list of such methods is refused like private attributes.
            if node.attr.startswith("_") or node.attr in simpleeval.DISALLOW_METHODS:
                raise ExpressionError(f"attribute {node.attr!r} is not available")
            value = self._eval(node.value)
            if isinstance(value, dict) and node.attr in value:
                return value[node.attr]
            if isinstance(value, EventView):
                if node.attr in EventView.FIELDS:
                    return getattr(value, node.attr)
            elif node.attr in _readers(simpleeval, type(value)):
                return getattr(value, node.attr)
            raise ExpressionError(f"{type(value).__name__} value has no attribute {node.attr!r}")

    return DataEval(**kwargs)
