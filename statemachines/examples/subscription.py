"""A subscription: a 30-day trial, a reminder before it ends, then 7 days to renew or expire.

Durable time only: nothing sleeps. Each wait is an `after` timer armed when its state is entered
and dropped when the state is left; a worker (`statemachines worker`, or `engine.run_due()`)
fires the ones that are due. The reminder is an `Effect`: written in the transaction that enters
`trial_ending`, sent after commit, at least once, retried with backoff, and its idempotency key
(`call.key`) lets the mailer drop duplicates.

    trial --27d--> trial_ending --3d--> awaiting_renewal --7d--> expired
      |                 |                      |
      +--- SUBSCRIBE ---+------- RENEW --------+--> subscribed --CANCEL--> ended

Run the scenario: `python -m statemachines.examples.subscription`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from statemachines import Effect, Engine, ManualClock, Registry, Retry, machine, state, transition
from statemachines.examples.driving import print_demo

TRIAL = "30d"
REMINDER_BEFORE_END = "3d"
RENEWAL_WINDOW = "7d"


class Subscription(BaseModel):
    customer: str
    email: str
    plan: str = "pro"
    reminders: list[str] = Field(default_factory=list)  # idempotency keys of reminders sent
    log: list[str] = Field(default_factory=list)


class Mailer:
    """Stands in for a mail provider that deduplicates on the idempotency key."""

    def __init__(self) -> None:
        self.sent: dict[str, dict[str, str]] = {}

    def send(self, key: str, to: str, subject: str) -> dict[str, str]:
        message = self.sent.setdefault(key, {"to": to, "subject": subject, "key": key})
        return dict(message)


mailer = Mailer()


def send_trial_reminder(ctx: Subscription, call: Any) -> dict[str, str]:
    """Effect: runs after commit, at least once; a retry reuses `call.key`, so no double mail."""
    return mailer.send(call.key, ctx.email, f"Your {ctx.plan} trial ends in {REMINDER_BEFORE_END}")


def record_reminder(ctx: Subscription, event: Any) -> None:
    ctx.reminders.append(event.payload["key"])
    ctx.log.append(f"reminder sent to {event.payload['to']}")


def note(ctx: Subscription, event: Any) -> None:
    ctx.log.append(f"{event.name} at {event.at:%Y-%m-%d}" if event.at else event.name)


registry = Registry()
for _item in (Subscription, send_trial_reminder, record_reminder, note):
    registry.add(_item)

subscription = machine(
    "subscription",
    context=Subscription,
    initial="trial",
    description="30-day trial with a reminder, then a 7-day renewal window that expires.",
    states={
        "trial": state(
            on={"SUBSCRIBE": transition("subscribed", action=note)},
            after={"27d": transition("trial_ending", action=note)},
        ),
        "trial_ending": state(
            effect=Effect(
                send_trial_reminder,
                retry=Retry(max_attempts=5, initial="1m", backoff=2.0, max="1h"),
            ),
            on={
                "SUBSCRIBE": transition("subscribed", action=note),
                "done.send_trial_reminder": transition(None, action=record_reminder),
            },
            after={REMINDER_BEFORE_END: transition("awaiting_renewal", action=note)},
        ),
        "awaiting_renewal": state(
            on={"RENEW": transition("subscribed", action=note)},
            after={RENEWAL_WINDOW: transition("expired", action=note)},
        ),
        "subscribed": state(on={"CANCEL": transition("ended", action=note)}),
        "expired": state(final=True),
        "ended": state(final=True),
    },
)


def run(engine: Engine, clock: ManualClock, *, prefix: str = "sub-") -> dict[str, Any]:
    """Three customers over 40 simulated days; returns what happened to each.

    - `alice` subscribes on day 10, during the trial: no reminder, no renewal window.
    - `bob` gets the reminder on day 27 and renews on day 33, inside the renewal window.
    - `carol` gets the reminder and never renews: expired on day 37.
    """
    engine.register(subscription)
    ids = {name: f"{prefix}{name}" for name in ("alice", "bob", "carol")}
    for name, iid in ids.items():
        engine.start(subscription.name, {"customer": name, "email": f"{name}@example.com"}, instance_id=iid)
    start = clock.now()
    timeline: list[tuple[int, str, str]] = []  # (day, customer, state entered)
    last: dict[str, str] = {}

    def observe() -> None:
        today = (clock.now() - start).days
        for name, iid in ids.items():
            current = engine.get(iid).state
            if last.get(name) != current:
                timeline.append((today, name, current))
                last[name] = current

    def until_day(n: int) -> None:
        while clock.now() < start + timedelta(days=n):
            clock.advance("1d")
            engine.run_due()  # what `statemachines worker` does in production
            observe()

    observe()
    until_day(10)
    engine.send(ids["alice"], "SUBSCRIBE", actor="alice")
    observe()
    until_day(33)
    engine.send(ids["bob"], "RENEW", actor="bob")
    observe()
    until_day(40)
    result: dict[str, Any] = {"timeline": timeline}
    for name, iid in ids.items():
        snap = engine.get(iid)
        result[name] = {
            "state": snap.state,
            "status": snap.status,
            "reminders": len(snap.context.reminders),
            "events": [r.event for r in engine.history(iid)],
        }
    return result


if __name__ == "__main__":  # pragma: no cover - manual demo
    print_demo(run)
