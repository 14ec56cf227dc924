"""The shared benchmark workload: one order lifecycle, one deterministic script.

Every contender runs exactly the same operations in the same order, so a
difference in events/s is a difference in the machinery, not in the work.
Keeping the definition, the guard and the action here (and not in each
contender) is what makes that true.

Lifecycle (6 states, the order machine of docs/design.md)::

    pending --PAYMENT_RECEIVED [paid_enough] / record_payment--> processing
    pending --CANCEL--> cancelled (final)
    processing --OUT_OF_STOCK--> backorder --RESTOCKED--> processing
    processing --SHIPPED--> shipped --DELIVERED--> completed (final)

The script keeps ``instances`` orders alive at once (200 by default) and sends
events to them round-robin.  When an order reaches a final state its slot
starts a fresh order (a new id), so a run can go on for any number of
operations.  A start is an operation too: it is a durable transaction (insert
the instance, write history seq 1) in every contender, as in the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

MACHINE = "order-lifecycle"
INITIAL = "pending"
STATES = ("pending", "processing", "backorder", "shipped", "completed", "cancelled")
FINAL = frozenset({"completed", "cancelled"})

PAY = "PAYMENT_RECEIVED"
OUT_OF_STOCK = "OUT_OF_STOCK"
RESTOCKED = "RESTOCKED"
SHIPPED = "SHIPPED"
DELIVERED = "DELIVERED"
CANCEL = "CANCEL"

#: (source, event) -> target.  Only PAY has a guard and an action.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("pending", PAY): "processing",
    ("pending", CANCEL): "cancelled",
    ("processing", OUT_OF_STOCK): "backorder",
    ("processing", SHIPPED): "shipped",
    ("backorder", RESTOCKED): "processing",
    ("shipped", DELIVERED): "completed",
}

#: The lifecycles the script cycles through (starts are implicit).
PATTERNS: tuple[tuple[str, ...], ...] = (
    (PAY, OUT_OF_STOCK, RESTOCKED, SHIPPED, DELIVERED),
    (PAY, SHIPPED, DELIVERED),
    (PAY, OUT_OF_STOCK, RESTOCKED, OUT_OF_STOCK, RESTOCKED, SHIPPED, DELIVERED),
    (CANCEL,),
)


def paid_enough(context: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Guard of PAY: the payment covers the order total."""
    return payload["amount"] >= context["total"]


def record_payment(context: dict[str, Any], payload: dict[str, Any]) -> None:
    """Action of PAY: record the amount paid in the context."""
    context["paid"] = payload["amount"]


class Rejected(Exception):
    """An event that is not allowed in the state or whose guard is false."""


def apply(state: str, context: dict[str, Any], event: str, payload: dict[str, Any]) -> str:
    """Plain-Python semantics used by the raw and DBOS contenders.

    Mutates ``context`` (callers pass a copy) and returns the target state.
    It is the cheapest honest version of what a state-machine library does,
    so the raw contenders measure the database, not a library.
    """
    target = TRANSITIONS.get((state, event))
    if target is None:
        raise Rejected(f"{event} not allowed in {state}")
    if event == PAY:
        if not paid_enough(context, payload):
            raise Rejected(f"guard paid_enough is false in {state}")
        record_payment(context, payload)
    return target


def status_of(state: str) -> str:
    """Instance status for a state: final states complete the instance."""
    return "completed" if state in FINAL else "active"


@dataclass(frozen=True, slots=True)
class Op:
    """One operation: a start (``event is None``) or an event to send."""

    instance_id: str
    event: str | None
    payload: dict[str, Any]


def _slot_ops(slot: int, prefix: str = "") -> Iterator[Op]:
    """Endless operations for one slot: start, a lifecycle, start again..."""
    generation = 0
    while True:
        order_id = f"{prefix}order-{slot:03d}-{generation}"
        total = float(10 + (slot * 7 + generation * 13) % 90)
        yield Op(order_id, None, {"order_id": order_id, "total": total, "paid": 0.0})
        for event in PATTERNS[(slot + generation) % len(PATTERNS)]:
            payload: dict[str, Any] = {"amount": total} if event == PAY else {}
            yield Op(order_id, event, payload)
        generation += 1


def stream(instances: int = 200, prefix: str = "") -> Iterator[Op]:
    """The endless script, lazily (ids prefixed with ``prefix``): for long or parallel runs."""
    slots = [_slot_ops(i, prefix) for i in range(instances)]
    while True:
        for slot in slots:
            yield next(slot)


def script(n_ops: int, instances: int = 200) -> list[Op]:
    """The first ``n_ops`` operations, round-robin over ``instances`` slots."""
    return list(islice(stream(instances), n_ops))


def expected_states(ops: list[Op]) -> dict[str, int]:
    """Instances per state after ``ops``: what every contender must end with."""
    states: dict[str, str] = {}
    contexts: dict[str, dict[str, Any]] = {}
    for op in ops:
        if op.event is None:
            states[op.instance_id] = INITIAL
            contexts[op.instance_id] = dict(op.payload)
        else:
            sid = op.instance_id
            states[sid] = apply(states[sid], contexts[sid], op.event, op.payload)
    counts: dict[str, int] = {}
    for value in states.values():
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))
