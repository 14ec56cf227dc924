"""Rewind: restore the state and context after an earlier record in one transaction, audited as
`rewound`, timers and effects re-armed as fresh entries without entry actions, then the feedback
event. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from statemachines import (
    Effect,
    Engine,
    EventNotAllowed,
    IdempotencyKeyReused,
    InstanceClosed,
    InstanceNotFound,
    InvalidArgument,
    PayloadInvalid,
    Retry,
    TokenInvalid,
    machine,
    state,
    transition,
)
from statemachines.errors import RewindLimit

SECRET = "rewind-tests-secret-0123456789"


def note(ctx: dict, event: Any) -> None:
    ctx.setdefault("notes", []).append(event.payload.get("notes"))


def write(ctx: dict, event: Any) -> None:
    ctx["drafts"] = ctx.get("drafts", 0) + 1


def entered_review(ctx: dict, event: Any) -> None:
    ctx["reviews"] = ctx.get("reviews", 0) + 1


def mail(ctx: dict, call: Any) -> dict:
    return {"key": call.key}


def review_machine(max_rewinds: int | None = None) -> Any:
    return machine(
        "review",
        initial="drafting",
        states={
            "drafting": state(
                on={"SUBMIT": transition("reviewing", action=write), "REVISE": transition(None, action=note)},
                max_rewinds=max_rewinds,
            ),
            "reviewing": state(
                on_enter=entered_review,
                after={"3d": "escalated"},
                effect=Effect(mail),
                on={"APPROVE": "published", "REJECT": "rejected"},
            ),
            "escalated": state(on={"APPROVE": "published"}),
            "published": state(final=True),
            "rejected": state(final=True),
        },
    )


@pytest.fixture
def engine(db_url, clock):
    eng = Engine(db_url, clock=clock, secret=SECRET)
    eng.register(review_machine())
    yield eng
    eng.close()


def submitted(engine: Engine, iid: str = "r1") -> None:
    engine.start("review", {}, instance_id=iid)
    engine.send(iid, "SUBMIT")


def test_rewind_to_a_state_restores_its_latest_entry_and_context(engine):
    submitted(engine)
    engine.send("r1", "APPROVE")
    snap = engine.rewind("r1", "reviewing", reopen=True)
    assert (snap.state, snap.status, snap.context) == ("reviewing", "active", {"drafts": 1, "reviews": 1})


def test_rewind_to_a_seq_restores_the_state_after_that_record(engine):
    submitted(engine)
    snap = engine.rewind("r1", 1)
    assert (snap.state, snap.context) == ("drafting", {})


def test_rewind_appends_one_rewound_record_and_keeps_the_history(engine):
    submitted(engine)
    engine.rewind("r1", "drafting", actor="ana", reason="needs sources")
    history = engine.history("r1")
    assert [r.seq for r in history] == [1, 2, 3]
    last = history[-1]
    assert (last.event, last.source, last.target, last.outcome, last.actor, last.reason) == (
        "rewind", "reviewing", "drafting", "rewound", "ana", "needs sources",
    )  # fmt: skip
    assert last.payload["to"] == 1
    assert last.context == {}


def test_rewind_counts_as_a_new_version(engine):
    submitted(engine)
    assert engine.rewind("r1", "drafting").version == 3


def test_rewind_then_applies_the_feedback_event_with_its_payload(engine):
    submitted(engine)
    snap = engine.rewind("r1", "drafting", event="REVISE", payload={"notes": "cite the study"})
    assert snap.context == {"notes": ["cite the study"]}
    assert [r.event for r in engine.history("r1")][-2:] == ["rewind", "REVISE"]


def test_rewind_runs_no_entry_actions(engine):
    submitted(engine)
    engine.send("r1", "APPROVE")
    snap = engine.rewind("r1", "reviewing", reopen=True)
    assert snap.context["reviews"] == 1  # on_enter ran once, at the real entry


def test_rewind_rearms_the_restored_states_timers_from_now(engine, clock):
    submitted(engine)
    clock.advance("2d")
    engine.send("r1", "APPROVE")
    engine.rewind("r1", "reviewing", reopen=True)
    [timer] = engine.status("r1").timers
    assert timer.fire_at == clock.now() + timedelta(days=3)
    clock.advance("2d")
    engine.run_due()
    assert engine.get("r1").state == "reviewing"  # the old entry's deadline is gone
    clock.advance("1d")
    engine.run_due()
    assert engine.get("r1").state == "escalated"


def test_rewind_cancels_the_timers_and_effects_of_the_state_left(engine):
    submitted(engine)
    engine.rewind("r1", "drafting")
    status = engine.status("r1")
    assert (status.timers, status.effects) == ([], [])
    assert [r.status for r in engine.effects("r1")] == ["cancelled"]


def test_rewind_arms_the_restored_states_effects_with_a_fresh_key(engine):
    submitted(engine)
    engine.run_due()
    engine.send("r1", "APPROVE")
    engine.rewind("r1", "reviewing", reopen=True)
    engine.run_due()
    keys = [r.key for r in engine.effects("r1")]
    assert len(keys) == 2 and keys[0] != keys[1]
    rewound = next(r for r in engine.history("r1") if r.outcome == "rewound")
    assert keys[1] == f'["r1",{rewound.seq},"mail"]'  # bound to the rewind record's seq


def test_tokens_issued_before_a_rewind_are_stale(engine):
    submitted(engine)
    token = engine.token("r1", "APPROVE")
    engine.rewind("r1", "reviewing")
    with pytest.raises(TokenInvalid, match="stale"):
        engine.send_token(token)
    assert engine.send_token(engine.token("r1", "APPROVE")).state == "published"


def test_a_completed_instance_is_rewound_only_with_reopen(engine):
    submitted(engine)
    engine.send("r1", "REJECT")
    with pytest.raises(InstanceClosed, match="reopen=True"):
        engine.rewind("r1", "reviewing")
    assert len(engine.history("r1")) == 3
    assert engine.rewind("r1", "reviewing", reopen=True).status == "active"


def test_a_cancelled_instance_is_rewound_only_with_reopen(engine):
    submitted(engine)
    engine.cancel("r1")
    with pytest.raises(InstanceClosed):
        engine.rewind("r1", "drafting")
    assert engine.rewind("r1", "drafting", reopen=True).status == "active"


def test_a_failed_instance_can_always_be_rewound(engine):
    def broken(ctx, call):
        raise RuntimeError("down")

    engine.register(
        machine(
            "fragile",
            initial="a",
            states={
                "a": state(on={"GO": "b"}),
                "b": state(effect=Effect(broken, retry=Retry(max_attempts=1))),
            },
        )
    )
    engine.start("fragile", instance_id="f1")
    engine.send("f1", "GO")
    engine.run_due()
    assert engine.get("f1").status == "failed"
    snap = engine.rewind("f1", "a")
    assert (snap.state, snap.status) == ("a", "active")


def test_max_rewinds_caps_the_rewinds_to_a_state(db_url, clock):
    engine = Engine(db_url, clock=clock)
    engine.register(review_machine(max_rewinds=2))
    submitted(engine)
    for _ in range(2):
        engine.rewind("r1", "drafting")
        engine.send("r1", "SUBMIT")
    with pytest.raises(RewindLimit, match="2 time"):
        engine.rewind("r1", "drafting")
    assert engine.get("r1").state == "reviewing"  # nothing written
    assert engine.rewind("r1", "reviewing").state == "reviewing"  # other states are not capped
    engine.close()


def test_an_idempotency_key_replays_the_first_rewinds_result(engine):
    submitted(engine)
    first = engine.rewind("r1", "drafting", event="REVISE", payload={"notes": "x"}, idempotency_key="k1")
    again = engine.rewind("r1", "drafting", event="REVISE", payload={"notes": "x"}, idempotency_key="k1")
    assert again == first
    assert len(engine.history("r1")) == 4


def test_an_idempotency_key_reused_for_another_rewind_is_refused(engine):
    submitted(engine)
    engine.rewind("r1", "drafting", idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused):
        engine.rewind("r1", 2, idempotency_key="k1")


def test_a_rejected_feedback_event_rolls_the_whole_rewind_back(engine):
    submitted(engine)
    with pytest.raises(EventNotAllowed):
        engine.rewind("r1", "drafting", event="APPROVE")
    assert engine.get("r1").state == "reviewing"
    assert len(engine.history("r1")) == 2


def test_an_invalid_feedback_payload_rolls_the_rewind_back(engine):
    submitted(engine)
    with pytest.raises(PayloadInvalid):
        engine.rewind("r1", "drafting", event="REVISE", payload={"bad": float("nan")})
    assert engine.get("r1").version == 2


@pytest.mark.parametrize(
    ("to", "message"),
    [
        (99, "no history record 99"),
        (0, "no history record 0"),
        ("publishd", "did you mean 'published'"),
        ("escalated", "never entered state 'escalated'"),
        (2.5, "history seq"),
    ],
)
def test_a_bad_target_is_refused_naming_it(engine, to, message):
    submitted(engine)
    with pytest.raises(InvalidArgument, match=message):
        engine.rewind("r1", to)


def test_rewinding_to_a_record_that_ended_in_a_final_state_is_refused(engine):
    submitted(engine)
    engine.send("r1", "APPROVE")
    with pytest.raises(InvalidArgument, match="final state 'published'"):
        engine.rewind("r1", 3, reopen=True)


def test_rewinding_an_unknown_instance_raises_not_found(engine):
    with pytest.raises(InstanceNotFound):
        engine.rewind("nope", 1)


def test_the_feedback_event_cannot_be_an_engine_event(engine):
    submitted(engine)
    with pytest.raises(InvalidArgument):
        engine.rewind("r1", "drafting", event="done.mail")


def test_rewind_to_the_latest_entry_of_a_state_entered_twice(engine):
    submitted(engine)
    engine.rewind("r1", "drafting", event="REVISE", payload={"notes": "a"})
    engine.send("r1", "SUBMIT")  # the second entry of `reviewing`, with the notes
    snap = engine.rewind("r1", "reviewing")
    assert snap.context == {"notes": ["a"], "drafts": 1, "reviews": 1}


def test_a_payload_without_a_feedback_event_is_refused(engine):
    submitted(engine)
    with pytest.raises(InvalidArgument, match="give the event too"):
        engine.rewind("r1", "drafting", payload={"notes": "x"})


def test_a_payload_that_is_not_json_is_refused_before_anything_is_written(engine):
    submitted(engine)
    with pytest.raises(PayloadInvalid):
        engine.rewind("r1", "drafting", event="REVISE", payload={"notes": object()})
    assert engine.get("r1").version == 2


def test_an_external_self_transition_is_the_states_latest_entry(engine):
    def count(ctx: dict, event: Any) -> None:
        ctx["n"] = ctx.get("n", 0) + 1

    engine.register(
        machine(
            "loop",
            initial="a",
            states={
                "a": state(on={"AGAIN": transition("a", action=count), "STAY": transition(None, action=count),
                               "GO": "b"}),
                "b": state(on={"BACK": "a"}),
            },
        )
    )  # fmt: skip
    engine.start("loop", instance_id="l1")
    engine.send("l1", "AGAIN")  # re-enters `a` (seq 2)
    engine.send("l1", "STAY")  # stays in `a`: not an entry (seq 3)
    engine.send("l1", "GO")
    engine.rewind("l1", "a")
    assert engine.history("l1")[-1].payload["to"] == 2


def test_a_feedback_event_whose_action_fails_rolls_the_rewind_back(engine):
    def broken(ctx: dict, event: Any) -> None:
        raise RuntimeError("the notes service is down")

    engine.register(
        machine(
            "fragile-review",
            initial="drafting",
            states={
                "drafting": state(on={"SUBMIT": "reviewing", "REVISE": transition(None, action=broken)}),
                "reviewing": state(on={"APPROVE": "drafting"}),
            },
        )
    )
    engine.start("fragile-review", instance_id="f1")
    engine.send("f1", "SUBMIT")
    with pytest.raises(Exception, match="the notes service is down"):
        engine.rewind("f1", "drafting", event="REVISE")
    snap = engine.get("f1")
    assert (snap.state, snap.status, snap.version, len(engine.history("f1"))) == ("reviewing", "active", 2, 2)
