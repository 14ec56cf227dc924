"""A definition back to SCXML text: the inverse of `statemachines.scxml.reader`.

Only what SCXML can say is written: a definition with Python callables (guards, actions,
`on_enter`/`on_exit`), effects, `after` timers, a context model or payload schemas has no SCXML
form, and `dump` refuses it naming each of them. State ids are the last segment of each path
(SCXML ids are unique in a document; our names need only be unique among siblings, so a
definition with two states of the same name is refused too).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

from statemachines.chart.events import DONE_STATE
from statemachines.scxml.executable import write_block
from statemachines.scxml.xmlparse import SCXML_NS
from statemachines.spec import MachineSpec, StateSpec, TransitionSpec


def problems_of(spec: MachineSpec) -> list[str]:
    """Why `spec` cannot be written as SCXML (empty when it can)."""
    problems: list[str] = []
    if spec.context is not None or spec.events:
        problems.append("a context model or payload schemas (registry names) have no SCXML form")
    seen: dict[str, str] = {}
    data_seen: dict[str, str] = dict.fromkeys(spec.data, "the machine")
    for path, st in spec.walk():
        for ident in st.data:
            if ident in data_seen:
                problems.append(f"data {ident!r} is declared by {data_seen[ident]} and by state {path!r}:"
                                " SCXML data ids are unique in a document")  # fmt: skip
            data_seen.setdefault(ident, f"state {path!r}")
        name = path.rpartition(".")[2]
        if name in seen:
            problems.append(f"states {seen[name]!r} and {path!r} would both get the SCXML id {name!r}")
        seen.setdefault(name, path)
        if st.on_enter or st.on_exit or st.effects or st.after:
            problems.append(
                f"state {path!r}: on_enter/on_exit callables, effects and timers have no SCXML form"
            )
        if any(t.guard is not None or t.actions for t in st.transitions()):
            problems.append(f"state {path!r}: guard and action callables have no SCXML form")
    return problems


def write(spec: MachineSpec) -> str:
    attrs = {"xmlns": SCXML_NS, "version": "1.0", "datamodel": "python", "name": spec.name,
             "initial": " ".join(_id(n) for n in ([spec.initial] if isinstance(spec.initial, str)
                                                  else spec.initial))}  # fmt: skip
    if spec.binding is not None:
        attrs["binding"] = spec.binding
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f"<scxml{_attrs(attrs)}>"]
    lines.extend(_datamodel(spec.data, "  "))
    for name, st in spec.states.items():
        lines.extend(_state(name, st, "  "))
    lines.append("</scxml>")
    return "\n".join(lines) + "\n"


def _attrs(pairs: dict[str, Any]) -> str:
    return "".join(f" {k}={quoteattr(str(v))}" for k, v in pairs.items())


def _id(path: str) -> str:
    return path.rpartition(".")[2]


def _datamodel(data: dict[str, str | None], indent: str) -> list[str]:
    if not data:
        return []
    items = [f"{indent}  <data{_attrs({'id': k} if v is None else {'id': k, 'expr': v})}/>"
             for k, v in data.items()]  # fmt: skip
    return [f"{indent}<datamodel>", *items, f"{indent}</datamodel>"]


def _state(name: str, st: StateSpec, indent: str) -> list[str]:
    if st.history is not None:
        kind = "deep" if st.history.deep else "shallow"
        target = _id(st.history.default or "")
        return [
            f"{indent}<history{_attrs({'id': name, 'type': kind})}>",
            *_default(target, st.history.content, indent + "  "),
            f"{indent}</history>",
        ]
    tag = "final" if st.final else "parallel" if st.type == "parallel" else "state"
    attrs = {"id": name}
    inner: list[str] = []
    if st.initial is not None and tag == "state":
        names = [st.initial] if isinstance(st.initial, str) else st.initial
        initial = " ".join(_id(name) for name in names)
        if st.initial_content:  # only the <initial> element can hold content
            inner += [f"{indent}  <initial>", *_default(initial, st.initial_content, indent + "    "),
                      f"{indent}  </initial>"]  # fmt: skip
        else:
            attrs["initial"] = initial
    inner += _datamodel(st.data, indent + "  ")
    for block, element in ((st.enter_content, "onentry"), (st.exit_content, "onexit")):
        for part in _handlers(block):
            body = write_block(part, indent + "    ")
            inner += [f"{indent}  <{element}>", *body, f"{indent}  </{element}>"]
    if st.donedata is not None:
        inner.extend(_donedata(st.donedata, indent + "  "))
    for key, group in st.on.items():
        event = " ".join(_id_token(token) for token in key.split())
        inner.extend(_transition(t, indent + "  ", event) for t in group)
    inner.extend(_transition(t, indent + "  ", None) for t in st.always)
    for child, cst in st.states.items():
        inner.extend(_state(child, cst, indent + "  "))
    if not inner:
        return [f"{indent}<{tag}{_attrs(attrs)}/>"]
    return [f"{indent}<{tag}{_attrs(attrs)}>", *inner, f"{indent}</{tag}>"]


def _handlers(block: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """One `<onentry>` per top-level `block` item; other items, run together, share one."""
    parts: list[list[dict[str, Any]]] = []
    loose: list[dict[str, Any]] = []
    for item in block:
        if "block" in item:
            if loose:
                parts.append(loose)
                loose = []
            parts.append(item["block"])
        else:
            loose.append(item)
    return [*parts, loose] if loose else parts


def _default(target: str, block: list[dict[str, Any]], indent: str) -> list[str]:
    """The transition of an `<initial>` or a `<history>`, with its content."""
    if not block:
        return [f"{indent}<transition{_attrs({'target': target})}/>"]
    body = write_block(block, indent + "  ")
    return [f"{indent}<transition{_attrs({'target': target})}>", *body, f"{indent}</transition>"]


def _id_token(token: str) -> str:
    """`done.state.<path>` back to `done.state.<id>`."""
    if token.startswith(DONE_STATE):
        return DONE_STATE + _id(token[len(DONE_STATE) :])
    return token


def _transition(t: TransitionSpec, indent: str, event: str | None) -> str:
    attrs: dict[str, Any] = {}
    if event is not None:
        attrs["event"] = event
    if t.cond is not None:
        attrs["cond"] = t.cond
    if t.targets:
        attrs["target"] = " ".join(_id(target) for target in t.targets)
    if t.type == "internal":
        attrs["type"] = "internal"
    if not t.content:
        return f"{indent}<transition{_attrs(attrs)}/>"
    body = "\n".join(write_block(t.content, indent + "  "))
    return f"{indent}<transition{_attrs(attrs)}>\n{body}\n{indent}</transition>"


def _donedata(done: dict[str, Any], indent: str) -> list[str]:
    if "params" in done:
        inner = [f"{indent}  <param{_attrs(p)}/>" for p in done["params"]]
    else:
        content = done["content"]
        inner = [
            f"{indent}  <content{_attrs(content)}/>" if "expr" in content
            else f"{indent}  <content>{escape(content['text'])}</content>"
        ]  # fmt: skip
    return [f"{indent}<donedata>", *inner, f"{indent}</donedata>"]
