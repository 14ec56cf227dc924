"""Expense approval: a person approves through a signed link; after 24 hours it escalates.

A waiting state is just a state with events. The approver gets a callback token
(`engine.token(id, "APPROVE", ttl="24h")`) inside a link; the web handler behind the link calls
`engine.send_token(token, payload)`. The same state has an `after` timer, so if nobody answers
within 24 hours the expense moves to `escalated`, which asks the manager (an `Effect`). Leaving
`awaiting_approval` makes the approver's token stale: a late click changes nothing.

    awaiting_approval --APPROVE--> approved
          |   \\--REJECT--> rejected
          24h
          v
      escalated (asks the manager) --APPROVE/REJECT--> approved / rejected
          |
          72h --> expired

Tokens need a signing key: `Engine(secret=...)` or `$STATEMACHINES_SECRET`.
Run the scenario: `python -m statemachines.examples.expense_approval`.

Over HTTP (`statemachines serve`), the link is a callback URL: `request_approval` mails (here:
prints) `engine.callback_url(id, "APPROVE")`; the approver opens it, sees a form built from
`Decision`, and submits; or a service POSTs `{"by": "pat"}` to it. See docs/service.md.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from statemachines import Effect, Engine, ManualClock, Registry, TokenInvalid, machine, state, transition

ESCALATE_AFTER = "24h"
MANAGER_DEADLINE = "72h"


class Expense(BaseModel):
    employee: str
    amount: float = Field(gt=0)
    approver: str
    manager: str
    decided_by: str | None = None
    comment: str | None = None
    manager_asked: bool = False


class Decision(BaseModel):
    """Payload of APPROVE and REJECT (validated before any action runs)."""

    by: str
    comment: str | None = None


class Inbox:
    """Stands in for e-mail: who was asked to decide which expense (deduplicated by key)."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}

    def send(self, key: str, to: str, text: str) -> dict[str, Any]:
        return dict(self.messages.setdefault(key, {"to": to, "text": text, "key": key}))


inbox = Inbox()


def ask_manager(ctx: Expense, call: Any) -> dict[str, Any]:
    """Effect of `escalated`: tell the manager (a real one would mail a link with a token)."""
    text = f"{ctx.employee}'s expense of {ctx.amount:.2f} waited {ESCALATE_AFTER}; please decide"
    return inbox.send(call.key, ctx.manager, text)


def note_manager_asked(ctx: Expense, event: Any) -> None:
    ctx.manager_asked = True


def record_decision(ctx: Expense, event: Any) -> None:
    ctx.decided_by = event.payload.by
    ctx.comment = event.payload.comment


def is_approver(ctx: Expense, event: Any) -> bool:
    return event.payload.by == ctx.approver


def is_manager(ctx: Expense, event: Any) -> bool:
    return event.payload.by == ctx.manager


registry = Registry()
for _item in (Expense, Decision, ask_manager, note_manager_asked, record_decision, is_approver, is_manager):
    registry.add(_item)

expense_approval = machine(
    "expense-approval",
    context=Expense,
    events={"APPROVE": Decision, "REJECT": Decision},
    initial="awaiting_approval",
    description="Human approval through a callback token, escalated to a manager after 24 hours.",
    states={
        "awaiting_approval": state(
            on={
                "APPROVE": transition("approved", guard=is_approver, action=record_decision),
                "REJECT": transition("rejected", guard=is_approver, action=record_decision),
            },
            after={ESCALATE_AFTER: "escalated"},
        ),
        "escalated": state(
            effect=Effect(ask_manager),
            on={
                "APPROVE": transition("approved", guard=is_manager, action=record_decision),
                "REJECT": transition("rejected", guard=is_manager, action=record_decision),
                "done.ask_manager": transition(None, action=note_manager_asked),
            },
            after={MANAGER_DEADLINE: "expired"},
        ),
        "approved": state(final=True),
        "rejected": state(final=True),
        "expired": state(final=True),
    },
)


def request_approval(
    engine: Engine, instance_id: str, *, base_url: str | None = None, ttl: str = "7d"
) -> str:
    """Mail the approver a link that approves the expense once (printed here, not mailed):
    a callback URL under `$STATEMACHINES_BASE_URL` (or `base_url`), served by the web service."""
    expense = engine.get(instance_id).context
    url = engine.callback_url(instance_id, "APPROVE", ttl, base_url=base_url)
    subject = f"approve {expense.employee}'s expense of {expense.amount:.2f}"
    print(f"To: {expense.approver}\nSubject: {subject}\n\n{url}")
    return url


def run(engine: Engine, clock: ManualClock, *, prefix: str = "exp-") -> dict[str, Any]:
    """Two expenses, each with a link mailed to its approver.

    - `quick`: the approver clicks the link after 2 hours: approved by the approver.
    - `slow`: nobody clicks for 24 hours: escalated, the manager is asked (an effect) and
      approves through a token of their own; the approver's late click is refused as stale.
    """
    engine.register(expense_approval)
    quick, slow = f"{prefix}quick", f"{prefix}slow"
    for iid, employee, amount in ((quick, "dana", 42.0), (slow, "eli", 1250.0)):
        engine.start(
            expense_approval.name,
            {"employee": employee, "amount": amount, "approver": "pat", "manager": "morgan"},
            instance_id=iid,
        )
    links = {iid: engine.token(iid, "APPROVE", ttl="7d") for iid in (quick, slow)}

    clock.advance("2h")
    engine.send_token(links[quick], {"by": "pat", "comment": "fine"})

    clock.advance("22h")  # 24 hours after submission
    engine.run_due()  # the escalation timer fires, then the manager is asked in the same call
    try:
        engine.send_token(links[slow], {"by": "pat"})
        late_click = "accepted"
    except TokenInvalid as exc:
        late_click = exc.reason
    manager_link = engine.token(slow, "APPROVE", ttl="72h")
    clock.advance("3h")
    engine.send_token(manager_link, {"by": "morgan", "comment": "approved on escalation"})

    out: dict[str, Any] = {"late_click": late_click}
    for iid in (quick, slow):
        snap = engine.get(iid)
        out[iid] = {
            "state": snap.state,
            "decided_by": snap.context.decided_by,
            "manager_asked": snap.context.manager_asked,
            "events": [r.event for r in engine.history(iid)],
        }
    return out


if __name__ == "__main__":  # pragma: no cover - manual demo
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        demo_clock = ManualClock()
        demo = Engine(f"{tmp}/demo.db", clock=demo_clock, secret="example-secret-not-for-production")
        print(json.dumps(run(demo, demo_clock), indent=2))
