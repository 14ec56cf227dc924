"""What the console tests share: a service with keys of each scope on a given engine, a machine
whose names are attacks, and logging in through the real login form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from statemachines import Effect, Engine, Retry, machine, state
from statemachines.examples.expense_approval import expense_approval
from statemachines.examples.orders import orders
from statemachines.web import create_app
from statemachines.web.keys import KeyStore

SESSION_SECRET = b"console-tests-session-secret-0123456789"
TOKEN_SECRET = "console-tests-token-secret-0123456789"
XSS = "<script>alert(1)</script>"
XSS_ID = '"><img src=x onerror=alert(2)>'
XSS_EVENT = "<b onmouseover=alert(3)>GO</b>"

#: A machine whose state, event and (in the tests) instance id and context are markup.
hostile = machine(
    "hostile<i>name</i>",
    initial=XSS,
    states={
        XSS: state(on={XSS_EVENT: "<img src=y onerror=alert(4)>"}),
        "<img src=y onerror=alert(4)>": state(final=True),
    },
)


@dataclass
class Service:
    """A console app on `engine` with one key per scope (their secrets)."""

    engine: Engine
    app: Any
    admin: str
    writer: str
    reader: str


def service(engine: Engine) -> Service:
    """Registers the example machines (not `hostile`: its tests do) and makes the keys."""
    for definition in (orders, expense_approval, mailer):
        engine.register(definition)
    app = create_app(engine, session_secret=SESSION_SECRET, base_url="http://testserver")
    keys = KeyStore(engine)
    secrets = [keys.create(f"{scope}-key", [scope])[1] for scope in ("admin", "write", "read")]
    return Service(engine, app, *secrets)


def start_orders(engine: Engine, count: int, prefix: str = "order-") -> list[str]:
    ids = [f"{prefix}{i:02d}" for i in range(count)]
    for iid in ids:
        engine.start("order-lifecycle", {"order_id": iid, "total": 40}, instance_id=iid)
    return ids


def form_token(html: str) -> str:
    """The CSRF token of the first form of a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def login(client: Any, secret: str) -> Any:
    """Log in through the form (GET it for its token and cookie, POST the key); the response."""
    page = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"key": secret, "csrf": form_token(page.text), "next": "/console/machines"},
        follow_redirects=False,
    )


class MailDown(RuntimeError):
    """What the mailer's effect raises every time."""


def send_mail(ctx: Any, call: Any) -> None:
    raise MailDown("smtp: connection refused")


#: An effect that always fails (one attempt), so its instance ends up `failed`; and a timer.
mailer = machine(
    "mailer",
    initial="waiting",
    states={
        "waiting": state(on={"GO": "sending"}, after={"1h": "sending"}),
        "sending": state(
            effect=Effect(send_mail, retry=Retry(max_attempts=1)), on={"done.send_mail": "sent"}
        ),
        "sent": state(final=True),
    },
)
