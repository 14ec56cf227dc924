"""Charging a card through a flaky payment provider: retries with exponential backoff.

The charge is an `Effect` of the `charging` state: stored in the same transaction that enters
the state, run after commit by a worker, at least once. A failed attempt is retried on the
schedule of its `Retry` (here 2s, 6s, then 10s: `initial * backoff**(n-1)` capped at `max`, plus
up to 25% jitter, never earlier). Every attempt passes the same idempotency key (`call.key`), so
the provider charges the card once however often it is called.

- Success sends `done.charge_card` with the function's return value as payload: `paid`.
- Exhaustion (4 failed attempts) sends `error.charge_card` with `{"error", "attempts"}`:
  `payment_failed`, from where `RETRY_PAYMENT` tries again (a new state entry, a new key).

Run the scenario: `python -m statemachines.examples.flaky_payment`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from statemachines import Effect, Engine, ManualClock, Registry, Retry, machine, state, transition
from statemachines.examples.driving import drive, print_demo

RETRY = Retry(max_attempts=4, initial="2s", backoff=3.0, max="10s", jitter=0.25)


class Payment(BaseModel):
    order_id: str
    amount: float = Field(gt=0)
    provider_failures: int | None = 0  # attempts the provider fails first; None: every one
    charge_id: str | None = None
    error: str | None = None


class ProviderUnavailable(Exception):
    pass


class FlakyProvider:
    """A payment API that fails the first N attempts for a key, then succeeds, once per key.

    It counts by `call.attempt` (stored in the database), so it behaves the same whether the
    attempts run in one process or in several workers, one after another."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.charges: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        self.calls.clear()
        self.charges.clear()

    def charge(self, key: str, amount: float, attempt: int, fail_first: int | None) -> dict[str, Any]:
        self.calls[key] = self.calls.get(key, 0) + 1
        if fail_first is None or attempt <= fail_first:
            raise ProviderUnavailable(f"503 Service Unavailable (attempt {attempt} for {key})")
        if key not in self.charges:  # the provider's own idempotency: one charge per key
            self.charges[key] = {"charge_id": f"ch_{len(self.charges) + 1}", "amount": amount}
        return dict(self.charges[key])


provider = FlakyProvider()


def charge_card(ctx: Payment, call: Any) -> dict[str, Any]:
    """Effect: its return value becomes the payload of `done.charge_card`."""
    charge = provider.charge(call.key, ctx.amount, call.attempt, ctx.provider_failures)
    return {**charge, "attempt": call.attempt}


def record_charge(ctx: Payment, event: Any) -> None:
    ctx.charge_id = event.payload["charge_id"]
    ctx.error = None


def record_error(ctx: Payment, event: Any) -> None:
    ctx.error = f"{event.payload['error']} after {event.payload['attempts']} attempts"


registry = Registry()
for _item in (Payment, charge_card, record_charge, record_error):
    registry.add(_item)

payment = machine(
    "payment",
    context=Payment,
    initial="charging",
    description="Charge a card through a flaky provider, with retries, backoff and an error path.",
    states={
        "charging": state(
            effect=Effect(charge_card, retry=RETRY),
            on={
                "done.charge_card": transition("paid", action=record_charge),
                "error.charge_card": transition("payment_failed", action=record_error),
            },
        ),
        "paid": state(final=True),
        "payment_failed": state(on={"RETRY_PAYMENT": "charging", "GIVE_UP": "abandoned"}),
        "abandoned": state(final=True),
    },
)



def run(engine: Engine, clock: ManualClock, *, prefix: str = "pay-") -> dict[str, Any]:
    """Two payments: the provider fails `flaky` twice then succeeds; it never succeeds for `down`.

    Returns, per payment, its final state and context and each attempt with its time in seconds
    after the start."""
    engine.register(payment)
    provider.reset()  # a fresh sandbox: effect keys repeat when the scenario runs on a new database
    start = clock.now()
    cases = {f"{prefix}flaky": 2, f"{prefix}down": None}
    for iid, failures in cases.items():
        engine.start(
            payment.name, {"order_id": iid, "amount": 25.0, "provider_failures": failures}, instance_id=iid
        )
    drive(engine, clock, list(cases), max_steps=100)
    out: dict[str, Any] = {}
    for iid in cases:
        snap = engine.get(iid)
        out[iid] = {
            "state": snap.state,
            "status": snap.status,
            "charge_id": snap.context.charge_id,
            "error": snap.context.error,
            "attempts": [
                {"attempt": a.attempt, "ok": a.ok, "at": (a.started_at - start).total_seconds()}
                for a in engine.effect_attempts(iid)
            ],
        }
    return out


if __name__ == "__main__":  # pragma: no cover - manual demo
    print_demo(run)
