"""Shared helpers for the diagrams tests (no tests here): the order machine and a `dot -Tjson` reader.

Structure is checked on Graphviz's own layout output, not on DOT text: `Layout` gives every node
and edge with its attributes and the text Graphviz actually draws in its label.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import graphviz
import pytest

from diagrams import render
from statemachines import Effect, Engine, GuardRejected, Retry, StateMachineError, machine, state, transition
from statemachines.definition import Definition

AWKWARD_NAMES = [
    "new order",
    'say "hi"',
    "back\\slash",
    "trailing\\",
    "a.b.c",
    "<b>bold</b>",
    "{x|y}",
    "Zustellung \u2713 \u65e5\u672c",
    "it's & co",
    "%%{init}%%",
    "semi;colon",
    "x:::y",
    "end note",
    "-->",
    "[*]",
]


def paid_enough(ctx: Any, event: Any) -> bool:
    return event.payload["amount"] >= ctx["total"]


def record_payment(ctx: Any, event: Any) -> None:
    ctx["paid"] = event.payload["amount"]


def notify_warehouse(ctx: Any, event: Any) -> None:
    pass


def release_stock(ctx: Any, event: Any) -> None:
    pass


def send_tracking_mail(ctx: Any, call: Any) -> dict[str, str]:
    return {}


def order_definition() -> Definition:
    return machine(
        "order-lifecycle",
        initial="pending",
        states={
            "pending": state(
                on={
                    "PAYMENT_RECEIVED": transition("processing", guard=paid_enough, action=record_payment),
                    "CANCEL": "cancelled",
                },
                after={"7d": "cancelled"},
            ),
            "processing": state(
                on_enter=notify_warehouse,
                on_exit=release_stock,
                on={"SHIPPED": "shipped", "OUT_OF_STOCK": "backorder"},
            ),
            "shipped": state(
                effect=Effect(send_tracking_mail, retry=Retry(max_attempts=5)),
                on={
                    "DELIVERED": "completed",
                    "done.send_tracking_mail": transition(None, action=record_payment),
                    "error.send_tracking_mail": "cancelled",
                },
            ),
            "backorder": state(on={"RESTOCKED": "processing"}),
            "completed": state(final=True),
            "cancelled": state(final=True),
        },
    )


def run_order(engine: Engine, iid: str = "A1") -> None:
    """pending -> (rejected payment) -> processing -> backorder -> processing -> backorder ->
    processing -> shipped -> (rejected CANCEL) -> completed: the loop is taken twice."""
    engine.register(order_definition())
    engine.start("order-lifecycle", {"total": 40}, instance_id=iid)
    with pytest.raises(GuardRejected):
        engine.send(iid, "PAYMENT_RECEIVED", {"amount": 10})
    engine.send(iid, "PAYMENT_RECEIVED", {"amount": 40})
    for event in ["OUT_OF_STOCK", "RESTOCKED", "OUT_OF_STOCK", "RESTOCKED", "SHIPPED"]:
        engine.send(iid, event)
    with pytest.raises(StateMachineError):
        engine.send(iid, "CANCEL")
    engine.send(iid, "DELIVERED")


def awkward_spec_dict() -> dict[str, Any]:
    """A ring of awkwardly named states; every event and callable name is awkward too."""
    states: dict[str, Any] = {}
    for i, name in enumerate(AWKWARD_NAMES):
        nxt = AWKWARD_NAMES[(i + 1) % len(AWKWARD_NAMES)]
        states[name] = {
            "on": {f'EV "{i}" \\ <{i}>;': [{"target": nxt, "guard": "g<1>", "actions": ["a&b"]}]},
            "on_enter": ['ent"er'],
        }
    return {"name": 'weird "machine" \\ <x>', "initial": AWKWARD_NAMES[0], "states": states}


@dataclass
class Item:
    attrs: dict[str, Any]
    text: str  # what Graphviz draws in the label, lines joined by " | "

    def __getitem__(self, key: str) -> Any:
        return self.attrs.get(key)

    def styles(self) -> set[str]:
        return set(filter(None, (self.attrs.get("style") or "").split(",")))


@dataclass
class Layout:
    graph: dict[str, Any]
    nodes: dict[str, Item]  # by node id (s0, s1, ...)
    edges: list[tuple[str, str, Item]]  # (tail id, head id, edge)

    @property
    def title(self) -> str:
        """The graph's label as drawn: the machine name, and the run summary for a run."""
        return " ".join(op["text"].strip() for op in self.graph.get("_ldraw_", []) if op.get("op") == "T")

    def state(self, name: str) -> Item:
        """The node whose label's first line is `name`."""
        found = [n for n in self.nodes.values() if n.text.split(" | ")[0] == name]
        assert len(found) == 1, f"{name!r}: {[n.text for n in self.nodes.values()]}"
        return found[0]

    def node_id(self, name: str) -> str:
        return self.state(name).attrs["name"]

    def edges_between(self, source: str, target: str) -> list[Item]:
        s, t = self.node_id(source), self.node_id(target)
        return [e for tail, head, e in self.edges if tail == s and head == t]

    def edge(self, source: str, target: str, starts: str) -> Item:
        found = [e for e in self.edges_between(source, target) if e.text.startswith(starts)]
        assert len(found) == 1, [e.text for e in self.edges_between(source, target)]
        return found[0]


def _text(obj: dict[str, Any]) -> str:
    return " | ".join(op["text"] for op in obj.get("_ldraw_", []) if op.get("op") == "T")


def layout(graph: graphviz.Digraph) -> Layout:
    data = json.loads(render(graph, "json"))
    objects = data.get("objects", [])
    by_gvid = {o["_gvid"]: o["name"] for o in objects}
    nodes = {o["name"]: Item(o, _text(o)) for o in objects}
    edges = [(by_gvid[e["tail"]], by_gvid[e["head"]], Item(e, _text(e))) for e in data.get("edges", [])]
    return Layout(data, nodes, edges)


def mermaid_decode(text: str) -> str:
    """What Mermaid displays for a label: `#<code>;` entity codes turned back into characters."""
    return re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), text)
