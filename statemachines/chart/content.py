"""Executable content (W3C SCXML chapter 4 and 5): running the blocks of `statemachines.content_spec`.

The algorithm (`statemachines.chart.algorithm`) calls `run_block` where it runs a state's
`on_enter`/`on_exit` callables or a transition's actions, and `condition` for a transition's
`cond`. What a block does:

- changes the context (`assign`, `foreach` item/index), as an action would;
- raises internal events (`raise`, `send` to `#_internal`): appended to the run's internal queue,
  processed in the same call (the same database transaction) before the call returns;
- sends external events (`send` without target or to the instance itself) and cancels them:
  recorded in `run.sends` in order, for the engine to store (`statemachines.sends`) and deliver
  in a later transaction, after `delay` when one is given (a durable timer);
- logs (`log`, through the `statemachines.scxml` logger).

An error while running an item (an expression that fails, text that is not an expression or a
location of the language, which definitions keep as SCXML asks, an assignment to a location that
does not exist, an unsupported send target or type) stops the rest of its block and places
`error.execution` on the internal queue (SCXML 4.1, 5.9.1, 6.2); a condition that fails counts
as false and does the same. The error's text is the event's `data`.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

from statemachines.chart.expressions import (
    SCXML_PROCESSOR,
    Evaluator,
    EventView,
    ExpressionError,
    data_of,
    session_location,
)
from statemachines.content_spec import location_tree
from statemachines.records import Event, ScxmlEvent

if TYPE_CHECKING:
    from statemachines.chart.algorithm import Interpretation
    from statemachines.chart.tree import Node

log = logging.getLogger("statemachines.scxml")

INTERNAL_TARGET = "#_internal"
#: Send types that mean "the SCXML event I/O processor" (SCXML 6.2.4, C.1).
SCXML_TYPES = frozenset({SCXML_PROCESSOR, "scxml"})
DELAY = re.compile(r"^\s*(\d*\.?\d+)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: Items one call may run (foreach over huge arrays, blocks raising each other): a guard against
#: runaway content, reported like the microstep cap.
MAX_ITEMS = 100_000
#: Platform errors logged per call (see `platform_error`).
LOGGED_ERRORS = 20


class ContentError(Exception):
    """An item of executable content failed: its block stops, `error.execution` is raised (with
    the send id when a `<send>` failed after its id was known: SCXML 5.10.1)."""

    def __init__(self, message: str, sendid: str | None = None) -> None:
        super().__init__(message)
        self.sendid = sendid


def evaluator(run: Interpretation) -> Evaluator:
    """The run's expression evaluator, built on first use."""
    if run.expressions is None:
        run.expressions = Evaluator(
            run.external.instance_id,
            run.tree.name,
            lambda: run.ctx.value,
            lambda: None if run.starting and run.event is run.external else event_view(run),
            lambda name: any(n.path == name or n.name == name for n in run.configuration),
        )
    return run.expressions


def event_view(run: Interpretation) -> EventView:
    """`_event`: the event being processed, with SCXML's fields (see `ScxmlEvent`)."""
    event = run.event
    if isinstance(event, ScxmlEvent):
        return EventView(event.name, event.type, event.payload, event.sendid, event.origin)
    kind = "external" if event is run.external else "platform"
    return EventView(event.name, kind, event.payload, None, None)


def platform_error(run: Interpretation, name: str, message: str, sendid: str | None = None) -> None:
    """Place `error.execution` (or another platform error) on the internal queue; logged for the
    first `LOGGED_ERRORS` internal events of a call (a runaway loop logs a few lines, not
    thousands, before the internal-event cap stops it)."""
    if run.internal_taken < LOGGED_ERRORS:
        log.warning("%s in %s: %s", name, run.external.instance_id, message)
    run.internal_queue.append(
        ScxmlEvent(name, {"error": message}, run.external.instance_id, run.external.actor, None,
                   run.external.at, "platform", sendid)
    )  # fmt: skip


def run_block(run: Interpretation, block: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> None:
    """Run one block; an error stops it and raises `error.execution` (the run goes on)."""
    run.dynamic = True
    try:
        _items(run, block)
    except (ContentError, ExpressionError) as exc:
        platform_error(run, "error.execution", str(exc), getattr(exc, "sendid", None))


def condition(run: Interpretation, text: str) -> bool:
    """A `cond`: its truth; an error counts as false and raises `error.execution` (5.9.1)."""
    run.dynamic = True
    try:
        return evaluator(run).truth(text)
    except ExpressionError as exc:
        platform_error(run, "error.execution", f"cond {exc}")
        return False


def _items(run: Interpretation, block: Any) -> None:
    for item in block:
        run.content_items += 1
        if run.content_items > MAX_ITEMS:
            raise ContentError(f"more than {MAX_ITEMS} items of executable content in one call")
        ((kind, body),) = item.items()
        _RUN[kind](run, body)


def _raise(run: Interpretation, body: dict[str, Any]) -> None:
    run.internal_queue.append(_event(run, body["event"], None, "internal"))


def _log(run: Interpretation, body: dict[str, Any]) -> None:
    value = evaluator(run).eval(body["expr"]) if "expr" in body else None
    log.info("%s: %r", body.get("label", "log"), value, extra={"instance": run.external.instance_id})


def _assign(run: Interpretation, body: dict[str, Any]) -> None:
    assign(run, body["location"], evaluator(run).eval(body["expr"]), create=False)


def _if(run: Interpretation, branches: list[dict[str, Any]]) -> None:
    for branch in branches:
        if "cond" not in branch or condition(run, branch["cond"]):
            _items(run, branch["do"])
            return


def _foreach(run: Interpretation, body: dict[str, Any]) -> None:
    array = evaluator(run).eval(body["array"])
    if isinstance(array, dict) or not isinstance(array, list | tuple | str):
        raise ContentError(f"foreach array {body['array']!r} is not a sequence: {array!r:.80}")
    for key in ("item", "index"):  # an illegal one runs nothing of the body (4.6)
        if key in body:
            location_node(body[key], f"foreach {key}")
    for index, item in enumerate(list(array)):  # a copy: the block may change the array
        assign(run, body["item"], item, create=True)
        if "index" in body:
            assign(run, body["index"], index, create=True)
        _items(run, body.get("do", []))


def _send(run: Interpretation, body: dict[str, Any]) -> None:
    sendid = body.get("id") or uuid.uuid4().hex  # error events name the send even without an id
    try:
        _send_as(run, body, sendid)
    except ExpressionError as exc:
        raise ContentError(str(exc), sendid) from exc
    except ContentError as exc:
        raise ContentError(str(exc), sendid) from exc


def _send_as(run: Interpretation, body: dict[str, Any], sendid: str) -> None:
    ev = evaluator(run)
    name = body["event"] if "event" in body else str(ev.eval(body["eventexpr"]))
    target = body.get("target") if "targetexpr" not in body else str(ev.eval(body["targetexpr"]))
    kind = body.get("type") if "typeexpr" not in body else str(ev.eval(body["typeexpr"]))
    delay_text = body.get("delay") if "delayexpr" not in body else str(ev.eval(body["delayexpr"]))
    if kind is not None and kind not in SCXML_TYPES:
        raise ContentError(f"send type {kind!r} is not supported (only the SCXML event processor)")
    delay = parse_delay(delay_text) if delay_text is not None else 0.0
    if "idlocation" in body:
        assign(run, body["idlocation"], sendid, create=True)
    data = _send_data(run, body)
    if target == INTERNAL_TARGET:
        if delay:
            raise ContentError("a send to #_internal cannot have a delay")
        run.internal_queue.append(_event(run, name, data, "internal", sendid))
        return
    own = session_location(run.external.instance_id)
    if target is not None and target != own:
        if target.startswith("#_scxml_") or target == "#_parent" or target.startswith("#_"):
            platform_error(run, "error.communication", f"send target {target!r} cannot be reached", sendid)
            return
        raise ContentError(f"send target {target!r} is not supported")
    try:
        data_json = json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise ContentError(f"send data of {name!r} is not JSON: {exc}") from exc
    # A send the author gave no id (neither `id` nor `idlocation`) is stored without one: its
    # event's `_event.sendid` is blank (SCXML 5.10.1) and no `<cancel>` can name it.
    named = "id" in body or "idlocation" in body
    run.sends.append(("send", sendid if named else "", name, data_json, delay))


def _cancel(run: Interpretation, body: dict[str, Any]) -> None:
    sendid = body["sendid"] if "sendid" in body else str(evaluator(run).eval(body["sendidexpr"]))
    if sendid:  # "" is how sends without an id are stored: never a cancel's target
        run.sends.append(("cancel", sendid, None, None, 0.0))


def _block(run: Interpretation, items: list[dict[str, Any]]) -> None:
    """A nested block (one of several `<onentry>` of a state): an error stops it alone."""
    try:
        _items(run, items)
    except (ContentError, ExpressionError) as exc:
        platform_error(run, "error.execution", str(exc), getattr(exc, "sendid", None))


_RUN = {
    "raise": _raise, "log": _log, "assign": _assign, "if": _if, "foreach": _foreach,
    "send": _send, "cancel": _cancel, "block": _block,
}  # fmt: skip


def _event(run: Interpretation, name: str, data: Any, kind: str, sendid: str | None = None) -> Event:
    ext = run.external
    origin = session_location(ext.instance_id) if sendid is not None else None
    return ScxmlEvent(name, data, ext.instance_id, ext.actor, None, ext.at, kind, sendid, origin)


def _send_data(run: Interpretation, body: dict[str, Any]) -> Any:
    """`_event.data` of a send: its content, or a dict of its namelist and params (None if none)."""
    ev = evaluator(run)
    if "content" in body:
        content = body["content"]
        return ev.eval(content["expr"]) if "expr" in content else text_value(content["text"])
    if "namelist" not in body and "params" not in body:
        return None
    data: dict[str, Any] = {}
    for name in body.get("namelist", ()):
        data[name] = read(run, name)
    data.update(params(run, body.get("params", ())))
    return data


def params(run: Interpretation, items: Any) -> dict[str, Any]:
    """`<param name expr|location>` values."""
    ev = evaluator(run)
    return {p["name"]: ev.eval(p["expr"]) if "expr" in p else read(run, p["location"]) for p in items}


def done_data(run: Interpretation, state: Node) -> Any:
    """The data of the done event `state` (a final state) raises: its donedata, evaluated."""
    spec = state.spec.donedata
    if spec is None:
        return {}
    run.dynamic = True
    try:
        if "params" in spec:
            return params(run, spec["params"])
        content = spec["content"]
        return evaluator(run).eval(content["expr"]) if "expr" in content else text_value(content["text"])
    except (ContentError, ExpressionError) as exc:
        platform_error(run, "error.execution", f"donedata of {state.path!r}: {exc}")
        return None  # the done event is still raised, with empty data (SCXML 5.5, 5.7)


def bind_data(run: Interpretation, data: dict[str, str | None]) -> None:
    """Bind declared data (SCXML 5.3) that the context does not hold yet, in order; a value that
    fails leaves the name unbound (None) and raises `error.execution`."""
    run.dynamic = True
    context = data_of(run.ctx.value)
    for name, expr in data.items():
        if name in context:
            continue
        try:
            context[name] = evaluator(run).eval(expr) if expr is not None else None
        except ExpressionError as exc:
            context[name] = None
            platform_error(run, "error.execution", f"data {name!r}: {exc}")


def storable(value: Any, location: str) -> Any:
    """`value` as the context can keep it (the context is stored as JSON): `_event` becomes a dict
    of its fields; anything JSON cannot hold (a set, a function) is an error of the assignment,
    not of the step that would store it later."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, EventView):
        return value.as_dict()
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ContentError(f"cannot assign to {location!r}: the value is not JSON data: {exc}") from exc
    return value


def text_value(text: str) -> Any:
    """Inline `<content>` text: its JSON value when it is JSON (`123`, `{"a": 1}`), else the text
    with its whitespace normalised (SCXML B.2.2)."""
    try:
        return json.loads(text)
    except ValueError:
        return " ".join(text.split())


def parse_delay(text: str) -> float:
    """A CSS2 time (`2s`, `.5s`, `150ms`; also `m`, `h`, `d`) in seconds."""
    match = DELAY.match(text)
    if match is None:
        raise ContentError(f"delay {text!r} is not a duration such as '2s' or '150ms'")
    return float(match.group(1)) * _UNITS[match.group(2)]


# Locations -----------------------------------------------------------------------------------------
def location_node(location: str, what: str = "location") -> ast.expr:
    """The syntax tree of a location (`x`, `x.y`, `x[0]`); ContentError when the text is not one
    (a definition keeps such text: using it is the error, SCXML 5.9.2)."""
    node = location_tree(location)
    if node is None:
        raise ContentError(f"{what} {location[:200]!r} is not a location (a name, then .field or [index])")
    return node


def read(run: Interpretation, location: str) -> Any:
    """The value at a location (an expression that must name data)."""
    location_node(location)
    try:
        return evaluator(run).eval(location)
    except ExpressionError as exc:
        raise ContentError(f"location {location!r}: {exc}") from exc


def assign(run: Interpretation, location: str, value: Any, *, create: bool) -> None:
    """Store `value` at `location` (`x`, `x.y`, `x[0]`); `create`: a top-level name may be new
    (foreach, idlocation), else it must be declared data (SCXML 5.4)."""
    node = location_node(location)
    value = storable(value, location)
    context = data_of(run.ctx.value)
    if isinstance(node, ast.Name):
        if node.id.startswith("_"):
            raise ContentError(f"cannot assign to {location!r}: system variables are read-only")
        if not create and node.id not in context:
            raise ContentError(f"cannot assign to {location!r}: no such data")
        if isinstance(run.ctx.value, dict):
            context[node.id] = value
        else:
            setattr(run.ctx.value, node.id, value)
        return
    assert isinstance(node, ast.Attribute | ast.Subscript)  # location_node checked the shape
    container = read(run, ast.unparse(node.value))
    if isinstance(node, ast.Attribute):
        key: Any = node.attr
    else:
        key = evaluator(run).eval(ast.unparse(node.slice))
    try:
        if isinstance(container, dict) or isinstance(node, ast.Subscript):
            if isinstance(container, list) and not -len(container) <= key < len(container):
                raise IndexError(key)
            container[key] = value
        else:
            raise TypeError(f"{type(container).__name__} has no field {key!r}")
    except (TypeError, IndexError, KeyError) as exc:
        raise ContentError(f"cannot assign to {location!r}: {type(exc).__name__}: {exc}") from exc
