"""The document-approval machine of the version tests, in the versions a team would deploy.

v1: draft -SUBMIT-> review (a reviewer is notified; expires after 3 days) -APPROVE-> approved.
v2: the same with `review` renamed `in_review`; v3: v2 whose context requires an `owner`.
`ENTERED` records entry actions (a migration must run none); `NOTIFIED` the effect's calls.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from statemachines import Effect, machine, state, transition

ENTERED: list[str] = []
NOTIFIED: list[str] = []


class Doc(BaseModel):
    title: str
    notes: int = 0


class OwnedDoc(BaseModel):
    title: str
    notes: int = 0
    owner: str


def entered_review(ctx: Any, event: Any) -> None:
    ENTERED.append(event.instance_id)


def add_note(ctx: Any, event: Any) -> None:
    ctx.notes += 1


def notify_reviewer(ctx: Any, call: Any) -> dict[str, str]:
    NOTIFIED.append(call.key)
    return {"notified": call.state}


def _review() -> Any:
    return state(
        on={"APPROVE": "approved", "REJECT": "draft", "NOTE": transition(None, action=add_note)},
        after={"3d": "expired"},
        on_enter=entered_review,
        effect=Effect(notify_reviewer, name="notify"),
    )


def doc_v1() -> Any:
    return machine(
        "doc",
        context=Doc,
        initial="draft",
        version="1",
        states={
            "draft": state(on={"SUBMIT": "review", "NOTE": transition(None, action=add_note)}),
            "review": _review(),
            "approved": state(final=True),
            "expired": state(final=True),
        },
    )


def doc_v1_1() -> Any:
    """v1 with a description on `expired`: `draft` and `review` unchanged (compatible)."""
    return machine(
        "doc",
        context=Doc,
        initial="draft",
        version="1.1",
        states={
            "draft": state(on={"SUBMIT": "review", "NOTE": transition(None, action=add_note)}),
            "review": _review(),
            "approved": state(final=True),
            "expired": state(final=True, description="nobody reviewed it in time"),
        },
    )


def doc_v2(context: type[BaseModel] = Doc, version: str = "2") -> Any:
    return machine(
        "doc",
        context=context,
        initial="draft",
        version=version,
        states={
            "draft": state(on={"SUBMIT": "in_review", "NOTE": transition(None, action=add_note)}),
            "in_review": _review(),
            "approved": state(final=True),
            "expired": state(final=True),
        },
    )


def doc_v3() -> Any:
    return doc_v2(OwnedDoc, "3")


def add_owner(ctx: dict[str, Any]) -> dict[str, Any]:
    """The context function of the v2 -> v3 migration."""
    return {**ctx, "owner": "unassigned"}
