"""Machines, engines and clients for the web service's tests (both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from statemachines import Effect, Engine, ManualClock, Retry, machine, state, transition

SECRET = "web-tests-secret-0123456789"
BASE_URL = "http://testserver"


class Order(BaseModel):
    order_id: str
    total: float = Field(gt=0)
    paid: float = 0


class Payment(BaseModel):
    amount: float = Field(gt=0)


def paid_enough(ctx: Order, event: Any) -> bool:
    return event.payload.amount >= ctx.total


def record_payment(ctx: Order, event: Any) -> None:
    ctx.paid = event.payload.amount


orders = machine(
    "orders",
    context=Order,
    events={"PAY": Payment},
    initial="pending",
    states={
        "pending": state(
            on={"PAY": transition("paid", guard=paid_enough, action=record_payment), "CANCEL": "cancelled"},
            after={"7d": "cancelled"},
        ),
        "paid": state(on={"SHIP": "shipped"}),
        "shipped": state(final=True),
        "cancelled": state(final=True),
    },
)


def always_fails(ctx: Any, call: Any) -> None:
    raise RuntimeError("the provider is down")


flaky = machine(
    "flaky",
    initial="charging",
    states={
        "charging": state(effect=Effect(always_fails, retry=Retry(max_attempts=1)), on={"DONE": "done"}),
        "done": state(final=True),
    },
)


@dataclass
class Web:
    """An engine, its app, a client, and keys of each scope."""

    engine: Engine
    clock: ManualClock
    client: Any
    keys: dict[str, str]

    def auth(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    def get(self, path: str, scope: str = "read", **kw: Any) -> Any:
        return self.client.get(path, headers={**self.auth(scope), **kw.pop("headers", {})}, **kw)

    def post(self, path: str, json: Any = None, scope: str = "write", **kw: Any) -> Any:
        return self.client.post(path, json=json, headers={**self.auth(scope), **kw.pop("headers", {})}, **kw)

    def start_order(self, iid: str, total: float = 40) -> Any:
        body = {"machine": "orders", "id": iid, "context": {"order_id": iid, "total": total}}
        response = self.post("/api/instances", body)
        assert response.status_code == 201, response.text
        return response.json()


def make_web(url: str) -> Iterator[Web]:
    import warnings

    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

    from statemachines.web import create_app

    clock = ManualClock()
    engine = Engine(url, clock=clock, secret=SECRET)
    engine.register(orders)
    engine.register(flaky)
    app = create_app(engine, base_url=BASE_URL)
    keys = {
        scope: app.state.web.keys.create(f"{scope}-key", [scope])[1] for scope in ("read", "write", "admin")
    }
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Web(engine, clock, client, keys)
    engine.close()
