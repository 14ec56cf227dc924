"""pytransitions in memory, no durability: the ceiling, not a competitor.

The same Machine as ``orm_transitions`` fires on plain Python objects kept in
a dict; history is appended to a list.  Nothing survives the process, so this
shows what the state-machine logic alone costs per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench import workload
from bench.contenders.base import Target, now
from bench.contenders.orm_transitions import MACHINE


@dataclass(slots=True)
class Order:
    state: str
    context: dict[str, Any]
    version: int = 1
    history: list[tuple[Any, ...]] = field(default_factory=list)


class MemoryTransitions:
    name = "memory_transitions"
    backends = frozenset({"sqlite", "postgres"})

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}

    def setup(self, target: Target) -> None:
        self.orders = {}

    def start(self, instance_id: str, context: dict[str, Any]) -> None:
        order = Order(workload.INITIAL, dict(context))
        order.history.append((1, "start", None, workload.INITIAL, {}, context, now()))
        self.orders[instance_id] = order

    def send(self, instance_id: str, event: str, payload: dict[str, Any]) -> None:
        order = self.orders[instance_id]
        source = order.state
        if not MACHINE.events[event].trigger(order, payload=payload):
            raise workload.Rejected(f"guard rejected {event} in {source}")
        order.version += 1
        order.history.append((order.version, event, source, order.state, payload, order.context, now()))

    def states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for order in self.orders.values():
            counts[order.state] = counts.get(order.state, 0) + 1
        return dict(sorted(counts.items()))

    def close(self) -> None:
        self.orders = {}


def make() -> MemoryTransitions:
    return MemoryTransitions()
