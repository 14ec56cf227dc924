"""Booking a trip as a saga: flight, hotel and car, undone in reverse order when a step fails.

Each booking is an `Effect` with a `compensate` callable that cancels it. The car rental is
down; once its retries are exhausted, `error.book_car` takes the trip to `cancelling`, a state
declared `compensate=True`: entering it queues the compensations of every booking that
succeeded, newest first (the hotel, then the flight), each run by a worker through the outbox
with its own idempotency key and the retries of the booking it undoes. When both are done the
state receives `done.compensation` and the trip ends `rolled_back`. Every booking, failure and
cancellation is a record in the trip's history.

Run the scenario: `python -m statemachines.examples.trip_booking`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from statemachines import Effect, Engine, ManualClock, Registry, Retry, machine, state, transition
from statemachines.examples.driving import drive, print_demo

RETRY = Retry(max_attempts=3, initial="1s", backoff=2.0, max="10s", jitter=0.0)


class Trip(BaseModel):
    traveller: str
    car_available: bool = True
    flight: str | None = None
    hotel: str | None = None
    car: str | None = None
    error: str | None = None
    compensated: list[str] = []


class Agency:
    """A sandbox of three booking APIs: one booking per idempotency key, cancellations by key.

    `log` is every call that changed something, in order, so a test can check the order in which
    bookings were made and undone."""

    def __init__(self) -> None:
        self.bookings: dict[str, str] = {}  # idempotency key -> booking reference
        self.cancelled: dict[str, str] = {}  # idempotency key of the cancellation -> reference
        self.log: list[str] = []

    def reset(self) -> None:
        self.bookings.clear()
        self.cancelled.clear()
        self.log.clear()

    def book(self, kind: str, key: str) -> str:
        if key not in self.bookings:
            self.bookings[key] = f"{kind}-{len(self.bookings) + 1}"
            self.log.append(f"book {self.bookings[key]}")
        return self.bookings[key]

    def cancel(self, reference: str, key: str) -> str:
        if key not in self.cancelled:
            self.cancelled[key] = reference
            self.log.append(f"cancel {reference}")
        return reference


agency = Agency()


class CarsUnavailable(Exception):
    pass


def book_flight(ctx: Trip, call: Any) -> dict[str, str]:
    return {"flight": agency.book("FL", call.key)}


def book_hotel(ctx: Trip, call: Any) -> dict[str, str]:
    return {"hotel": agency.book("HT", call.key)}


def book_car(ctx: Trip, call: Any) -> dict[str, str]:
    if not ctx.car_available:
        raise CarsUnavailable("no cars left at the destination")
    return {"car": agency.book("CR", call.key)}


def cancel_flight(ctx: Trip, call: Any) -> str:
    """The compensation of `book_flight`: it reads the reference the booking stored."""
    return agency.cancel(ctx.flight or "?", call.key)


def cancel_hotel(ctx: Trip, call: Any) -> str:
    return agency.cancel(ctx.hotel or "?", call.key)


def keep(ctx: Trip, event: Any) -> None:
    """Store the reference a booking returned (`done.book_*`)."""
    for field, value in event.payload.items():
        setattr(ctx, field, value)


def record_error(ctx: Trip, event: Any) -> None:
    ctx.error = f"{event.payload['error']} after {event.payload['attempts']} attempts"


def record_compensated(ctx: Trip, event: Any) -> None:
    ctx.compensated = list(event.payload["compensated"])


registry = Registry()
for _item in (Trip, book_flight, book_hotel, book_car, cancel_flight, cancel_hotel, keep, record_error,
              record_compensated):  # fmt: skip
    registry.add(_item)

trip = machine(
    "trip",
    context=Trip,
    initial="flight",
    description="Book a flight, a hotel and a car; undo what was booked when a step fails.",
    states={
        "flight": state(
            effect=Effect(book_flight, compensate=cancel_flight, retry=RETRY),
            on={
                "done.book_flight": transition("hotel", action=keep),
                "error.book_flight": transition("failed", action=record_error),
            },
        ),
        "hotel": state(
            effect=Effect(book_hotel, compensate=cancel_hotel, retry=RETRY),
            on={
                "done.book_hotel": transition("car", action=keep),
                "error.book_hotel": transition("cancelling", action=record_error),
            },
        ),
        "car": state(
            effect=Effect(book_car, retry=RETRY),
            on={
                "done.book_car": transition("booked", action=keep),
                "error.book_car": transition("cancelling", action=record_error),
            },
        ),
        "cancelling": state(
            compensate=True,
            on={"done.compensation": transition("rolled_back", action=record_compensated)},
        ),
        "booked": state(final=True),
        "rolled_back": state(final=True),
        "failed": state(final=True),
    },
)


def run(engine: Engine, clock: ManualClock, *, prefix: str = "trip-") -> dict[str, Any]:
    """Two trips: `ok` books all three; `no-car` fails at the car and is rolled back.

    Returns, per trip, its final state, context and history events, plus the agency's log."""
    engine.register(trip)
    agency.reset()
    cases = {f"{prefix}ok": True, f"{prefix}no-car": False}
    for iid, cars in cases.items():
        engine.start(trip.name, {"traveller": iid, "car_available": cars}, instance_id=iid)
    drive(engine, clock, list(cases))
    out: dict[str, Any] = {"log": list(agency.log)}
    for iid in cases:
        snap = engine.get(iid)
        out[iid] = {
            "state": snap.state,
            "status": snap.status,
            "context": snap.context.model_dump(),
            "events": [(r.event, r.outcome) for r in engine.history(iid)],
        }
    return out


if __name__ == "__main__":  # pragma: no cover - manual demo
    print_demo(run)
