"""Lifecycle of a long-running instance: cancel, status().waiting_on, failed and retry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from statemachines import (
    Effect,
    InstanceClosed,
    InstanceNotFound,
    InvalidArgument,
    Retry,
    machine,
    state,
    transition,
)

CALLS: list[int] = []


def send_invoice(ctx: dict, call) -> dict:
    CALLS.append(call.attempt)
    if ctx.get("fail"):
        raise TimeoutError("billing API timed out")
    return {"invoice": call.key}


def invoicing():
    return machine(
        "invoicing",
        initial="open",
        states={
            "open": state(
                on={"PAY": "paid", "DISPUTE": "disputed"},
                after={"30d": "overdue", "7d": transition(None, action=remind)},
                effect=Effect(send_invoice, retry=Retry(max_attempts=2, initial="1h", max="1d", jitter=0)),
            ),
            "overdue": state(on={"PAY": "paid"}),
            "disputed": state(on={"RESOLVE": "open"}),
            "paid": state(final=True),
        },
    )


def remind(ctx: dict, event) -> None:
    ctx["reminded"] = True


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


# cancel ----------------------------------------------------------------------------------------


def test_cancel_sets_status_cancelled_and_keeps_the_state(engine):
    engine.register(invoicing())
    engine.start("invoicing", instance_id="i1")
    snap = engine.cancel("i1", reason="customer left")
    assert (snap.state, snap.status) == ("open", "cancelled")
    assert engine.get("i1").status == "cancelled"


def test_cancel_drops_the_timers(engine, clock):
    engine.register(invoicing())
    engine.start("invoicing", instance_id="i1")
    engine.cancel("i1")
    assert engine.status("i1").timers == []
    clock.advance("60d")
    assert engine.run_due() == 0
    assert [r.event for r in engine.history("i1")] == ["start", "cancel"]


def test_cancel_drops_the_pending_effects(engine, clock):
    engine.register(invoicing())
    engine.start("invoicing", instance_id="i1")
    engine.cancel("i1")
    assert engine.status("i1").effects == []
    clock.advance("1d")
    assert engine.run_due() == 0
    assert CALLS == []


def test_cancel_is_audited_with_reason_and_actor(engine, clock):
    engine.register(invoicing())
    engine.start("invoicing", {"n": 1}, instance_id="i1")
    clock.advance("1h")
    engine.cancel("i1", reason="customer left", actor="support:kim")
    last = engine.history("i1")[-1]
    assert (last.seq, last.event, last.source, last.target, last.outcome) == (
        2,
        "cancel",
        "open",
        "open",
        "cancelled",
    )
    assert (last.reason, last.actor, last.payload, last.context) == (
        "customer left", "support:kim", {"reason": "customer left"}, {"n": 1},
    )  # fmt: skip
    assert last.at == clock.now()


def test_cancelled_instance_takes_no_more_events(engine):
    engine.register(invoicing())
    engine.start("invoicing", instance_id="i1")
    engine.cancel("i1")
    with pytest.raises(InstanceClosed):
        engine.send("i1", "PAY")
    with pytest.raises(InstanceClosed):
        engine.cancel("i1")


def test_cancel_of_an_unknown_instance_raises_not_found(engine):
    with pytest.raises(InstanceNotFound):
        engine.cancel("nope")


# status ----------------------------------------------------------------------------------------


def test_status_waiting_on_lists_events_timers_and_effects(engine, clock):
    engine.register(invoicing())
    t0 = clock.now()
    engine.start("invoicing", instance_id="i1")
    st = engine.status("i1")
    assert (st.state, st.status, st.id) == ("open", "active", "i1")
    waiting = st.waiting_on
    assert waiting["events"] == ["DISPUTE", "PAY"]
    assert [(t.event, t.state, t.fire_at) for t in waiting["timers"]] == [
        ("after.7d", "open", t0 + timedelta(days=7)),
        ("after.30d", "open", t0 + timedelta(days=30)),
    ]
    [eff] = waiting["effects"]
    assert (eff.name, eff.state, eff.status, eff.attempt, eff.next_at, eff.last_error) == (
        "send_invoice", "open", "pending", 0, t0, None,
    )  # fmt: skip


def test_status_shows_a_failed_attempt_and_the_next_try(engine, clock):
    engine.register(invoicing())
    engine.start("invoicing", {"fail": True}, instance_id="i1")
    engine.run_due()
    [eff] = engine.status("i1").effects
    assert (eff.status, eff.attempt, eff.next_at, eff.last_error) == (
        "pending", 1, clock.now() + timedelta(hours=1), "TimeoutError: billing API timed out",
    )  # fmt: skip


def test_status_follows_the_instance_into_its_next_state(engine):
    engine.register(invoicing())
    engine.start("invoicing", instance_id="i1")
    engine.send("i1", "DISPUTE")
    st = engine.status("i1")
    assert (st.state, st.events, st.timers, st.effects) == ("disputed", ["RESOLVE"], [], [])


def test_status_events_leave_out_the_effect_results_only_the_engine_sends(engine):
    def ship(ctx: dict, call) -> str:
        return "shipped"

    engine.register(
        machine(
            "shipping",
            initial="packing",
            states={
                "packing": state(
                    effect=Effect(ship), on={"done.ship": "sent", "error.ship": "stuck", "ABORT": "stuck"}
                ),
                "sent": state(final=True),
                "stuck": state(final=True),
            },
        )
    )
    engine.start("shipping", instance_id="s1")
    st = engine.status("s1")
    assert st.events == ["ABORT"]
    assert [e.name for e in st.effects] == ["ship"]


def test_status_of_a_closed_instance_waits_on_nothing(engine):
    engine.register(invoicing())
    engine.start("invoicing", instance_id="i1")
    engine.run_due()
    engine.send("i1", "PAY")
    assert engine.status("i1").waiting_on == {"events": [], "timers": [], "effects": []}


def test_status_of_an_unknown_instance_raises_not_found(engine):
    with pytest.raises(InstanceNotFound):
        engine.status("nope")


# failed and retry -------------------------------------------------------------------------------

BROKEN = {"on": True}


def escalate(ctx: dict, event) -> None:
    if BROKEN["on"]:
        raise RuntimeError("pager service down")
    ctx["escalated"] = True


def escalation():
    return machine(
        "escalation",
        initial="waiting",
        states={
            "waiting": state(on={"ACK": "acked"}, after={"1h": transition("escalated", action=escalate)}),
            "escalated": state(final=True),
            "acked": state(final=True),
        },
    )


@pytest.fixture
def broken() -> Iterator[dict]:
    BROKEN["on"] = True
    yield BROKEN
    BROKEN["on"] = True


def test_failing_action_in_a_timer_transition_fails_the_instance(engine, clock, broken):
    engine.register(escalation())
    engine.start("escalation", instance_id="e1")
    clock.advance("1h")
    engine.run_due()
    snap = engine.get("e1")
    assert (snap.state, snap.status, snap.version, snap.context) == ("waiting", "failed", 1, {})
    last = engine.history("e1")[-1]
    assert (last.event, last.outcome, last.source, last.target) == (
        "after.1h",
        "failed",
        "waiting",
        "waiting",
    )
    assert "pager service down" in last.reason
    with pytest.raises(InstanceClosed):
        engine.send("e1", "ACK")


def test_retry_brings_a_failed_timer_transition_back_and_it_fires_again(engine, clock, broken):
    engine.register(escalation())
    engine.start("escalation", instance_id="e1")
    clock.advance("1h")
    engine.run_due()
    broken["on"] = False
    snap = engine.retry("e1", actor="ops")
    assert (snap.state, snap.status) == ("waiting", "active")
    assert engine.run_due() == 1
    snap = engine.get("e1")
    assert (snap.state, snap.status, snap.context) == ("escalated", "completed", {"escalated": True})
    assert [(r.event, r.outcome) for r in engine.history("e1")] == [
        ("start", "applied"),
        ("after.1h", "failed"),
        ("retry", "retried"),
        ("after.1h", "applied"),
    ]


def test_retried_instance_may_take_events_instead_of_the_timer(engine, clock, broken):
    engine.register(escalation())
    engine.start("escalation", instance_id="e1")
    clock.advance("1h")
    engine.run_due()
    engine.retry("e1")
    assert engine.send("e1", "ACK").state == "acked"
    assert engine.run_due() == 0


def test_retry_redrives_an_exhausted_effect(engine, clock):
    engine.register(invoicing())
    engine.start("invoicing", {"fail": True}, instance_id="i1")
    engine.run_due()
    clock.advance("1h")
    engine.run_due()
    assert engine.get("i1").status == "failed"
    snap = engine.retry("i1", actor="ops")
    assert snap.status == "active"
    [eff] = engine.status("i1").effects
    assert (eff.status, eff.attempt, eff.next_at, eff.last_error) == ("pending", 2, clock.now(), None)
    last = engine.history("i1")[-1]
    assert (last.event, last.outcome, last.actor) == ("retry", "retried", "ops")
    engine.run_due()
    assert CALLS == [1, 2, 3]


def test_redriven_effect_gets_a_fresh_set_of_attempts(engine, clock):
    engine.register(invoicing())
    engine.start("invoicing", {"fail": True}, instance_id="i1")
    engine.run_due()
    clock.advance("1h")
    engine.run_due()
    engine.retry("i1")
    engine.run_due()
    assert engine.get("i1").status == "active"  # one failure of two allowed in the new round
    clock.advance("1h")
    engine.run_due()
    assert engine.get("i1").status == "failed"
    assert CALLS == [1, 2, 3, 4]


def test_retry_of_an_instance_that_has_not_failed_is_refused(engine):
    engine.register(invoicing())
    engine.start("invoicing", instance_id="i1")
    with pytest.raises(InvalidArgument, match="not failed"):
        engine.retry("i1")
    assert len(engine.history("i1")) == 1


def test_retry_of_an_unknown_instance_raises_not_found(engine):
    with pytest.raises(InstanceNotFound):
        engine.retry("nope")


def test_cancel_gives_up_on_a_failed_instance(engine, clock, broken):
    engine.register(escalation())
    engine.start("escalation", instance_id="e1")
    clock.advance("1h")
    engine.run_due()
    assert engine.get("e1").status == "failed"
    snap = engine.cancel("e1", reason="pager retired")
    assert (snap.state, snap.status) == ("waiting", "cancelled")
    assert engine.history("e1")[-1].outcome == "cancelled"
    assert engine.status("e1").waiting_on == {"events": [], "timers": [], "effects": []}
    with pytest.raises(InvalidArgument):
        engine.retry("e1")
