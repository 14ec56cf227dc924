"""Enrich a customer record: three lookups in parallel, each merged as it arrives, then one
merge step when all three are in.

    enriching (parallel) ----------------done.state.enriching / merge----------------> enriched
    | profile: fetching --done.fetch_profile / merge_profile--> fetched  (error: missing)
    | orders:  fetching --done.fetch_orders / merge_orders-->   fetched  (error: missing)
    | risk:    fetching --done.fetch_risk / merge_risk-->       fetched  (error: missing)

The fan-out/fan-in of a workflow engine, as a statechart: each lookup is an `Effect` of its
region's `fetching` state, so the three run concurrently (one outbox row each, any worker); the
`done.<effect>` transition of each region merges that lookup's result into the context (each in
its own transaction, in whatever order the lookups finish); when every region is final the
engine raises `done.state.enriching` in the same transaction as the last merge, whose action
computes the summary. A lookup that gives up (`error.<effect>`) ends its region in `missing`:
the join still happens and the summary says what is missing.

Run the scenario: `python -m statemachines.examples.enrich`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from statemachines import Effect, Engine, ManualClock, Registry, Retry, machine, parallel, state, transition
from statemachines.examples.driving import drive, print_demo

RETRY = Retry(max_attempts=3, initial="5s", backoff=2.0, max="1m")
LOOKUPS = ("profile", "orders", "risk")


class Customer(BaseModel):
    customer_id: str
    profile: dict[str, Any] | None = None
    orders: dict[str, Any] | None = None
    risk: dict[str, Any] | None = None
    missing: list[str] = Field(default_factory=list)
    arrival: list[str] = Field(default_factory=list)  # lookups in the order their results merged
    summary: dict[str, Any] | None = None


class Directory:
    """The outside services, simulated: fixed answers per customer; `down` lookups always fail;
    `calls` counts calls per lookup and customer."""

    PROFILES = {"c-1": {"name": "Ada Lovelace", "email": "ada@example.com", "tier": "gold"}}
    ORDERS = {"c-1": {"count": 12, "lifetime_value": 1840.5}}
    RISK = {"c-1": {"score": 0.12}}

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.calls: dict[tuple[str, str], int] = {}

    def reset(self) -> None:
        self.down.clear()
        self.calls.clear()

    def lookup(self, what: str, table: dict[str, dict[str, Any]], customer_id: str) -> dict[str, Any]:
        self.calls[(what, customer_id)] = self.calls.get((what, customer_id), 0) + 1
        if what in self.down:
            raise ConnectionError(f"{what} service unreachable")
        return dict(table.get(customer_id, {}))


directory = Directory()


def fetch_profile(ctx: Customer, call: Any) -> dict[str, Any]:
    return directory.lookup("profile", Directory.PROFILES, ctx.customer_id)


def fetch_orders(ctx: Customer, call: Any) -> dict[str, Any]:
    return directory.lookup("orders", Directory.ORDERS, ctx.customer_id)


def fetch_risk(ctx: Customer, call: Any) -> dict[str, Any]:
    return directory.lookup("risk", Directory.RISK, ctx.customer_id)


def merge_profile(ctx: Customer, event: Any) -> None:
    ctx.profile = dict(event.payload)
    ctx.arrival.append("profile")


def merge_orders(ctx: Customer, event: Any) -> None:
    ctx.orders = dict(event.payload)
    ctx.arrival.append("orders")


def merge_risk(ctx: Customer, event: Any) -> None:
    ctx.risk = dict(event.payload)
    ctx.arrival.append("risk")


def note_missing(ctx: Customer, event: Any) -> None:
    """`error.fetch_<lookup>`: the event name says which lookup gave up."""
    ctx.missing.append(event.name.removeprefix("error.fetch_"))


def merge(ctx: Customer, event: Any) -> None:
    """The fan-in: runs once, when all three regions are final."""
    profile, orders, risk = ctx.profile or {}, ctx.orders or {}, ctx.risk or {}
    ctx.summary = {
        "name": profile.get("name"),
        "tier": profile.get("tier"),
        "orders": orders.get("count"),
        "lifetime_value": orders.get("lifetime_value"),
        "risk": risk.get("score"),
        "complete": not ctx.missing,
    }


registry = Registry()
for _item in (
    Customer, fetch_profile, fetch_orders, fetch_risk,
    merge_profile, merge_orders, merge_risk, note_missing, merge,
):  # fmt: skip
    registry.add(_item)


def _lookup(fetch: Any, merge_result: Any) -> Any:
    name = fetch.__name__
    return state(
        initial="fetching",
        states={
            "fetching": state(
                effect=Effect(fetch, retry=RETRY),
                on={
                    f"done.{name}": transition("fetched", action=merge_result),
                    f"error.{name}": transition("missing", action=note_missing),
                },
            ),
            "fetched": state(final=True),
            "missing": state(final=True),
        },
    )


enrich_customer = machine(
    "enrich_customer",
    context=Customer,
    initial="enriching",
    description="Three lookups in parallel, each merged into the context, then one merge step.",
    states={
        "enriching": parallel(
            {
                "profile": _lookup(fetch_profile, merge_profile),
                "orders": _lookup(fetch_orders, merge_orders),
                "risk": _lookup(fetch_risk, merge_risk),
            },
            on={"done.state.enriching": transition("enriched", action=merge)},
        ),
        "enriched": state(final=True),
    },
)



def run(engine: Engine, clock: ManualClock, *, prefix: str = "enrich-") -> dict[str, Any]:
    """Two customers enriched: `full` with every service up; `partial` started while the risk
    service is down (it gives up after its retries; the merge still runs, marked incomplete)."""
    engine.register(enrich_customer)
    directory.reset()
    full, partial = f"{prefix}full", f"{prefix}partial"
    engine.start(enrich_customer.name, {"customer_id": "c-1"}, instance_id=full)
    drive(engine, clock, [full], max_steps=100)
    directory.down.add("risk")
    engine.start(enrich_customer.name, {"customer_id": "c-1"}, instance_id=partial)
    drive(engine, clock, [partial], max_steps=100)
    directory.down.clear()
    out: dict[str, Any] = {}
    for iid in (full, partial):
        snap = engine.get(iid)
        out[iid] = {
            "state": snap.state,
            "status": snap.status,
            "summary": snap.context.summary,
            "missing": snap.context.missing,
            "arrival": snap.context.arrival,
            "events": [r.event for r in engine.history(iid)],
        }
    return out


def main() -> None:  # pragma: no cover - manual demo
    print_demo(run)


if __name__ == "__main__":  # pragma: no cover - manual demo
    main()
