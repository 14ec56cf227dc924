"""SCXML executable content elements (chapter 4) to and from the spec's data form
(`statemachines.content_spec`): `<raise>`, `<log>`, `<assign>`, `<if>`/`<elseif>`/`<else>`,
`<foreach>`, `<send>` (with `<param>` and `<content>`) and `<cancel>`.

Reading checks every expression's syntax where it is written: an ECMAScript-only construct
(`===`, `typeof`, `function`...) is refused with its element and line, as are `<script>` and any
other element; other text that is not an expression (or a location) is kept, because SCXML makes
it an error of evaluation (`error.execution`, 5.9), and noted in `ILLEGAL` for `load` to warn about.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from statemachines.chart.content import DELAY
from statemachines.content_spec import EXCLUSIVE, RAISES_LATER, expression_problem, location_problem
from statemachines.scxml.xmlparse import Element

#: Attributes of `<send>` copied as they are, in the order they are written back.
SEND_ATTRS = ("event", "eventexpr", "target", "targetexpr", "type", "typeexpr", "id", "idlocation",
              "delay", "delayexpr")  # fmt: skip
HTTP_PROCESSOR = "http://www.w3.org/TR/scxml/#BasicHTTPEventProcessor"
#: Attribute pairs of `<send>` of which at most one may be given (the definition's own rule,
#: checked here too so the refusal names the element and its line).
EXCLUSIVE_ATTRS = tuple((a, b) for a, b in EXCLUSIVE if a in SEND_ATTRS and b in SEND_ATTRS)


class Unsupported(Exception):
    """An element or attribute outside the supported subset; `element` says where."""

    def __init__(self, element: Element, message: str) -> None:
        super().__init__(message)
        self.element = element


#: The illegal expressions met while reading one document: (element, message), in document order.
ILLEGAL: ContextVar[list[tuple[Element, str]] | None] = ContextVar("scxml_illegal", default=None)


def expression(el: Element, attr: str) -> str:
    """The text of an expression attribute. ECMAScript-only constructs are refused; other text
    that does not parse is kept and noted (it raises `error.execution` when evaluated: 5.9)."""
    text = el.attrs[attr]
    _note(el, attr, text, expression_problem, "an expression of the supported language")
    return text


def event_name(el: Element, name: str) -> str:
    """An event name: one token (SCXML's NMTOKEN), not a list of descriptors."""
    if not name or name.split() != [name]:
        raise Unsupported(el, f"event {name!r} is not an event name (one token, no spaces)")
    return name


def location(el: Element, attr: str, text: str | None = None) -> str:
    """A location attribute (or one name of a namelist), kept and noted like `expression`."""
    text = el.attrs[attr] if text is None else text
    _note(el, attr, text, location_problem, "a location (a name, then .field or [index])")
    return text


def _note(el: Element, attr: str, text: str, check: Callable[[str, str], str | None], what: str) -> None:
    try:
        problem = check(text, attr)
    except ValueError as exc:
        raise Unsupported(el, f"{attr}={text!r}: {str(exc).partition(': ')[2]}") from None
    notes = ILLEGAL.get()
    if problem is not None and notes is not None:
        notes.append((el, f"{attr}={text!r} is not {what}: {RAISES_LATER}"))


def _allowed(el: Element, attrs: set[str]) -> None:
    unknown = sorted(set(el.attrs) - attrs)
    if unknown:
        raise Unsupported(el, f"attributes {unknown} are not supported here")


def read_block(elements: list[Element]) -> list[dict[str, Any]]:
    return [read_item(el) for el in elements]


def read_item(el: Element) -> dict[str, Any]:
    reader = _READERS.get(el.tag)
    if reader is None:
        what = "<script> (scripts are not supported: use executable content)" if el.tag == "script" else (
            f"<{el.tag}> is not executable content of the supported subset"
        )
        raise Unsupported(el, what)
    return reader(el)


def _raise(el: Element) -> dict[str, Any]:
    _allowed(el, {"event"})
    if "event" not in el.attrs:
        raise Unsupported(el, "needs an event attribute")
    return {"raise": {"event": event_name(el, el.attrs["event"])}}


def _log(el: Element) -> dict[str, Any]:
    _allowed(el, {"label", "expr"})
    body: dict[str, Any] = {}
    if "label" in el.attrs:
        body["label"] = el.attrs["label"]
    if "expr" in el.attrs:
        body["expr"] = expression(el, "expr")
    return {"log": body}


def _assign(el: Element) -> dict[str, Any]:
    _allowed(el, {"location", "expr"})
    if "location" not in el.attrs:
        raise Unsupported(el, "needs a location attribute")
    body = {"location": location(el, "location")}
    if "expr" in el.attrs and el.text.strip():
        raise Unsupported(el, "an expr and inline content cannot both give the value (SCXML 5.4)")
    if "expr" in el.attrs:
        body["expr"] = expression(el, "expr")
    elif el.text.strip():  # inline content: read as an expression
        el.attrs["expr"] = el.text.strip()
        body["expr"] = expression(el, "expr")
    if el.children:
        raise Unsupported(el.children[0], "child elements of <assign> are not supported")
    return {"assign": body}


def _if(el: Element) -> dict[str, Any]:
    _allowed(el, {"cond"})
    branches: list[dict[str, Any]] = [{"cond": expression(el, "cond"), "do": []}]
    for child in el.children:
        if child.tag == "elseif":
            _allowed(child, {"cond"})
            if "cond" not in branches[-1]:
                raise Unsupported(child, "an <elseif> after the <else> of its <if>")
            branches.append({"cond": expression(child, "cond"), "do": []})
        elif child.tag == "else":
            _allowed(child, set())
            if "cond" not in branches[-1]:
                raise Unsupported(child, "a second <else> in one <if>")
            branches.append({"do": []})
        else:
            branches[-1]["do"].append(read_item(child))
    return {"if": branches}


def _foreach(el: Element) -> dict[str, Any]:
    _allowed(el, {"array", "item", "index"})
    if "array" not in el.attrs or "item" not in el.attrs:
        raise Unsupported(el, "needs array and item attributes")
    body: dict[str, Any] = {"array": expression(el, "array"), "item": location(el, "item")}
    if "index" in el.attrs:
        body["index"] = location(el, "index")
    body["do"] = read_block(el.children)
    return {"foreach": body}


def _send(el: Element) -> dict[str, Any]:
    _allowed(el, {*SEND_ATTRS, "namelist"})
    if el.attrs.get("type") == HTTP_PROCESSOR:
        raise Unsupported(el, "the Basic HTTP event I/O processor is not supported (only SCXML's)")
    body: dict[str, Any] = {}
    for attr in SEND_ATTRS:
        if attr in el.attrs:
            body[attr] = expression(el, attr) if attr.endswith("expr") else el.attrs[attr]
    if "event" in body:
        event_name(el, body["event"])
    if "delay" in body and DELAY.match(body["delay"]) is None:
        raise Unsupported(el, f"delay={body['delay']!r} is not a duration such as '2s' or '150ms'")
    for a, b in EXCLUSIVE_ATTRS:
        if a in el.attrs and b in el.attrs:
            raise Unsupported(el, f"{a} and {b} cannot both be given (SCXML 6.2)")
    if "idlocation" in body:
        location(el, "idlocation")
    if "namelist" in el.attrs:
        body["namelist"] = el.attrs["namelist"].split()
        if not body["namelist"]:
            raise Unsupported(el, "an empty namelist (leave it out)")
        for name in body["namelist"]:
            location(el, "namelist", name)
    params = [read_param(c) for c in el.children if c.tag == "param"]
    if params:
        body["params"] = params
    contents = [c for c in el.children if c.tag == "content"]
    for child in el.children:
        if child.tag not in ("param", "content"):
            raise Unsupported(child, f"<{child.tag}> inside <send>: only <param> and <content>")
    if contents:
        if len(contents) > 1 or params or "namelist" in body:
            raise Unsupported(el, "<content> excludes namelist, <param> and a second <content> (SCXML 6.2)")
        body["content"] = read_content(contents[0])
    if "event" not in body and "eventexpr" not in body:
        raise Unsupported(el, "needs event or eventexpr")
    return {"send": body}


def read_param(el: Element) -> dict[str, str]:
    _allowed(el, {"name", "expr", "location"})
    if "name" not in el.attrs or ("expr" in el.attrs) == ("location" in el.attrs):
        raise Unsupported(el, "needs a name and exactly one of expr and location")
    if "expr" in el.attrs:
        return {"name": el.attrs["name"], "expr": expression(el, "expr")}
    return {"name": el.attrs["name"], "location": location(el, "location")}


def read_content(el: Element) -> dict[str, str]:
    _allowed(el, {"expr"})
    if el.children:
        raise Unsupported(el.children[0], "markup inside <content> is not supported (text or expr only)")
    if "expr" in el.attrs:
        return {"expr": expression(el, "expr")}
    return {"text": el.text.strip()}


def _cancel(el: Element) -> dict[str, Any]:
    _allowed(el, {"sendid", "sendidexpr"})
    if "sendid" in el.attrs and "sendidexpr" in el.attrs:
        raise Unsupported(el, "sendid and sendidexpr cannot both be given (SCXML 6.3)")
    if "sendid" in el.attrs:
        return {"cancel": {"sendid": el.attrs["sendid"]}}
    if "sendidexpr" in el.attrs:
        return {"cancel": {"sendidexpr": expression(el, "sendidexpr")}}
    raise Unsupported(el, "needs sendid or sendidexpr")


_READERS: dict[str, Callable[[Element], dict[str, Any]]] = {
    "raise": _raise, "log": _log, "assign": _assign, "if": _if, "foreach": _foreach,
    "send": _send, "cancel": _cancel,
}  # fmt: skip


# Writing -------------------------------------------------------------------------------------------
def _attrs(pairs: dict[str, Any]) -> str:
    return "".join(f" {k}={quoteattr(str(v))}" for k, v in pairs.items())


def write_block(block: list[dict[str, Any]], indent: str) -> list[str]:
    lines: list[str] = []
    for item in block:
        ((kind, body),) = item.items()
        lines.extend(_WRITERS[kind](body, indent))
    return lines


def _w_simple(tag: str) -> Callable[[dict[str, Any], str], list[str]]:
    return lambda body, indent: [f"{indent}<{tag}{_attrs(body)}/>"]


def _w_if(branches: list[dict[str, Any]], indent: str) -> list[str]:
    lines = [f"{indent}<if{_attrs({'cond': branches[0]['cond']})}>"]
    for i, branch in enumerate(branches):
        if i:
            tag = "elseif" if "cond" in branch else "else"
            attrs = _attrs({"cond": branch["cond"]}) if "cond" in branch else ""
            lines.append(f"{indent}  <{tag}{attrs}/>")
        lines.extend(write_block(branch["do"], indent + "  "))
    return [*lines, f"{indent}</if>"]


def _w_foreach(body: dict[str, Any], indent: str) -> list[str]:
    attrs = _attrs({k: body[k] for k in ("array", "item", "index") if k in body})
    inner = write_block(body.get("do", []), indent + "  ")
    if not inner:
        return [f"{indent}<foreach{attrs}/>"]
    return [f"{indent}<foreach{attrs}>", *inner, f"{indent}</foreach>"]


def _w_send(body: dict[str, Any], indent: str) -> list[str]:
    attrs = {k: body[k] for k in SEND_ATTRS if k in body}
    if "namelist" in body:
        attrs["namelist"] = " ".join(body["namelist"])
    inner = [f"{indent}  <param{_attrs(p)}/>" for p in body.get("params", [])]
    content = body.get("content")
    if content is not None:
        inner.append(
            f"{indent}  <content{_attrs(content)}/>" if "expr" in content
            else f"{indent}  <content>{escape(content['text'])}</content>"
        )  # fmt: skip
    if not inner:
        return [f"{indent}<send{_attrs(attrs)}/>"]
    return [f"{indent}<send{_attrs(attrs)}>", *inner, f"{indent}</send>"]


_WRITERS: dict[str, Callable[[Any, str], list[str]]] = {
    "raise": _w_simple("raise"), "log": _w_simple("log"), "assign": _w_simple("assign"),
    "if": _w_if, "foreach": _w_foreach, "send": _w_send, "cancel": _w_simple("cancel"),
    "block": lambda items, indent: write_block(items, indent),  # only nested: see writer._handlers
}  # fmt: skip
