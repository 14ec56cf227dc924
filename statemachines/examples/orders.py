"""The order lifecycle of docs/design.md: payment guard, warehouse, backorder, shipping, delivery.

Use it from Python (`from statemachines.examples.orders import orders`), from the command line
(`statemachines --app statemachines.examples.orders start order-lifecycle --context '{...}'`), or
load `orders.yaml` next to this file with `registry` below resolving its names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from statemachines import Effect, Registry, Retry, machine, state, transition

YAML_PATH = Path(__file__).with_name("orders.yaml")


class Order(BaseModel):
    """The context every order instance carries, persisted as JSON with each transition."""

    order_id: str
    total: float = Field(ge=0)
    paid: float = 0
    carrier: str | None = None
    tracking: str | None = None
    log: list[str] = Field(default_factory=list)


class Payment(BaseModel):
    """Payload schema of PAYMENT_RECEIVED: validated before any guard runs."""

    amount: float = Field(gt=0)


class Shipment(BaseModel):
    """Payload schema of SHIPPED."""

    carrier: str
    tracking: str


def paid_enough(ctx: Order, event: Any) -> bool:
    """Guard: the payment covers the order total."""
    return event.payload.amount >= ctx.total


def record_payment(ctx: Order, event: Any) -> None:
    ctx.paid = event.payload.amount
    ctx.log.append(f"paid {ctx.paid:.2f}")


def notify_warehouse(ctx: Order, event: Any) -> None:
    """Entry action of `processing`: in a real system an Effect would call the warehouse."""
    ctx.log.append(f"warehouse asked to pick order {ctx.order_id}")


def note_backorder(ctx: Order, event: Any) -> None:
    ctx.log.append("out of stock: waiting for restock")


def record_shipment(ctx: Order, event: Any) -> None:
    ctx.carrier = event.payload.carrier
    ctx.tracking = event.payload.tracking
    ctx.log.append(f"shipped with {ctx.carrier} ({ctx.tracking})")


def record_mail_sent(ctx: Order, event: Any) -> None:
    ctx.log.append("tracking mail sent")


def close_order(ctx: Order, event: Any) -> None:
    ctx.log.append(f"order closed by {event.name}")


def send_tracking_mail(ctx: Order, call: Any) -> dict[str, Any]:
    """Effect: runs after commit (a worker), at least once; `call.key` deduplicates the mail."""
    return {"mailed": ctx.tracking}


registry = Registry()
for _item in (
    Order,
    Payment,
    Shipment,
    paid_enough,
    record_payment,
    notify_warehouse,
    note_backorder,
    record_shipment,
    record_mail_sent,
    close_order,
    send_tracking_mail,
):
    registry.add(_item)

orders = machine(
    "order-lifecycle",
    context=Order,
    events={"PAYMENT_RECEIVED": Payment, "SHIPPED": Shipment},
    initial="pending",
    description="An order from payment to delivery, with a backorder detour.",
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
            on={"SHIPPED": transition("shipped", action=record_shipment), "OUT_OF_STOCK": "backorder"},
        ),
        "backorder": state(on_enter=note_backorder, on={"RESTOCKED": "processing", "CANCEL": "cancelled"}),
        "shipped": state(
            effect=Effect(
                send_tracking_mail, retry=Retry(max_attempts=5, initial="1s", backoff=2.0, max="5m")
            ),
            on={
                "done.send_tracking_mail": transition(None, action=record_mail_sent),
                "DELIVERED": "completed",
            },
        ),
        "completed": state(final=True, on_enter=close_order),
        "cancelled": state(final=True, on_enter=close_order),
    },
)
