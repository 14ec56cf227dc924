"""python-statemachine (v3) + SQLModel: the same recipe with the other library.

python-statemachine binds a machine object to one domain model, so the usual
recipe builds ``OrderMachine(model=row)`` per event; it restores the current
state from ``row.state`` and writes the new state back there.
"""

from __future__ import annotations

from typing import Any

from statemachine import State, StateMachine

from bench import workload
from bench.contenders._orm import Instance, OrmRecipe, paid_context


class OrderMachine(StateMachine):
    """The order lifecycle of ``bench.workload``, in python-statemachine's syntax."""

    pending = State(initial=True)
    processing = State()
    backorder = State()
    shipped = State()
    completed = State(final=True)
    cancelled = State(final=True)

    PAYMENT_RECEIVED = pending.to(processing, cond="paid_enough", on="record_payment")
    CANCEL = pending.to(cancelled)
    OUT_OF_STOCK = processing.to(backorder)
    RESTOCKED = backorder.to(processing)
    SHIPPED = processing.to(shipped)
    DELIVERED = shipped.to(completed)

    def paid_enough(self, payload: dict[str, Any]) -> bool:
        return workload.paid_enough(self.model.context, payload)

    def record_payment(self, payload: dict[str, Any]) -> None:
        self.model.context = paid_context(self.model.context, payload)


def fire(row: Instance, event: str, payload: dict[str, Any]) -> None:
    """Bind a machine to the row and send: it raises when the event is refused."""
    OrderMachine(model=row).send(event, payload=payload)


class OrmPythonStatemachine(OrmRecipe):
    name = "orm_python_statemachine"

    def __init__(self) -> None:
        super().__init__(fire)


def make() -> OrmPythonStatemachine:
    return OrmPythonStatemachine()
