"""Statecharts, durably: timers and effects belong to the state that declares them at any depth,
effects of parallel regions are separate rows, results wait while the instance is failed, tokens
bind to the handling state's entry, and cancel / retry / idempotency / step limits behave as for
flat machines. Both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from statemachines import (
    Effect,
    Engine,
    GuardRejected,
    InvalidArgument,
    Retry,
    StepLimitExceeded,
    TokenInvalid,
    machine,
    parallel,
    state,
)
from tests.chart_machines import CALLS, kyc, loop, phases

SECRET = "s" * 32


@pytest.fixture(autouse=True)
def _calls() -> None:
    CALLS.clear()
    FLAKY.clear()


def timers(engine: Engine, iid: str) -> list[tuple[str, str, Any]]:
    return [(t.event, t.state, t.fire_at) for t in engine.status(iid).timers]


# Timers at depth -------------------------------------------------------------------------------


def test_a_parent_timer_survives_moves_between_its_children(engine: Engine) -> None:
    engine.register(phases())
    start = engine.start("phases", instance_id="p1").created_at
    engine.send("p1", "NEXT")
    engine.send("p1", "BACK")
    assert ("after.1h", "work", start + timedelta(hours=1)) in timers(engine, "p1")
    engine.clock.advance("1h")
    engine.run_due()
    assert engine.get("p1").configuration == ("late",)


def test_a_child_timer_is_cancelled_when_its_state_is_exited(engine: Engine) -> None:
    engine.register(phases())
    engine.start("phases", instance_id="p1")
    assert [t[:2] for t in timers(engine, "p1")] == [("after.1h", "work"), ("after.1d", "work.a")]
    engine.send("p1", "NEXT")
    assert [t[:2] for t in timers(engine, "p1")] == [("after.1h", "work")]


def test_leaving_the_declaring_state_cancels_its_timer(engine: Engine) -> None:
    engine.register(phases())
    engine.start("phases", instance_id="p1")
    engine.send("p1", "STOP")
    assert timers(engine, "p1") == []
    engine.clock.advance("2d")
    assert engine.run_due() == 0
    assert engine.get("p1").configuration == ("stopped",)


def test_entering_a_state_again_arms_its_timer_from_the_new_entry(engine: Engine) -> None:
    engine.register(phases())
    engine.start("phases", instance_id="p1")
    engine.clock.advance("1h")
    engine.run_due()  # work -> late
    engine.clock.advance("10m")
    again = engine.send("p1", "AGAIN").updated_at
    assert ("after.1h", "work", again + timedelta(hours=1)) in timers(engine, "p1")


def test_a_self_transition_of_the_parent_replaces_its_timer_and_its_childrens(engine: Engine) -> None:
    engine.register(phases())
    engine.start("phases", instance_id="p1")
    engine.clock.advance("30m")
    again = engine.send("p1", "RESTART").updated_at  # work exited and entered again: new entries
    assert timers(engine, "p1") == [
        ("after.1h", "work", again + timedelta(hours=1)),
        ("after.1d", "work.a", again + timedelta(days=1)),
    ]
    engine.clock.advance("30m")
    assert engine.run_due() == 0  # the first entry's timer is gone, not merely stale
    engine.clock.advance("30m")
    engine.run_due()
    assert engine.get("p1").configuration == ("late",)


def test_a_child_timer_fires_inside_its_parent(engine: Engine) -> None:
    engine.register(phases(timer="2d", child_timer="1h"))
    engine.start("phases", instance_id="p1")
    engine.clock.advance("1h")
    engine.run_due()
    assert engine.get("p1").configuration == ("work.b",)
    assert [t[:2] for t in timers(engine, "p1")] == [("after.2d", "work")]


# Effects at depth and in parallel regions --------------------------------------------------------


def test_each_region_effect_is_its_own_row_keyed_by_its_state(engine: Engine) -> None:
    engine.register(kyc())
    engine.start("kyc", instance_id="k1")
    engine.send("k1", "SUBMITTED")
    effects = engine.status("k1").effects
    assert [(e.name, e.state, e.status) for e in effects] == [
        ("verify_id", "checks.identity.verifying", "pending"),
        ("screen", "checks.sanctions.screening", "pending"),
    ]
    engine.run_due()
    assert CALLS == {
        "verify_id": ['["k1",2,"checks.identity.verifying","verify_id"]'],
        "screen": ['["k1",2,"checks.sanctions.screening","screen"]'],
    }


def test_the_join_fires_once_after_both_regions_are_done(engine: Engine) -> None:
    engine.register(kyc())
    engine.start("kyc", instance_id="k1")
    engine.send("k1", "SUBMITTED")
    engine.run_due()
    records = engine.history("k1")
    assert [(r.event, r.target) for r in records] == [
        ("start", "collecting"),
        ("SUBMITTED", "checks"),
        ("done.verify_id", "checks"),
        ("done.screen", "review.first"),
    ]
    assert records[2].configuration == ("checks.identity.ok", "checks.sanctions.screening")
    assert engine.get("k1").configuration == ("review.first",)


FLAKY: dict[str, int] = {}
IN_FLIGHT: list[Engine] = []  # set by a test: `slow` lets another worker run meanwhile


def fails(ctx: Any, call: Any) -> None:
    FLAKY[call.name] = FLAKY.get(call.name, 0) + 1
    if FLAKY.get("ok") is None:
        raise RuntimeError("down")


def slow(ctx: Any, call: Any) -> dict[str, int]:
    for engine in IN_FLIGHT:  # while this runs, another worker exhausts `fails`
        engine.run_due()
    IN_FLIGHT.clear()
    return {"n": 1}


def two_jobs() -> Any:
    """Region a's effect succeeds; region b's fails without an error handler."""

    def region(fn: Any) -> Any:
        return state(
            initial="run",
            states={
                "run": state(
                    effect=Effect(fn, retry=Retry(max_attempts=1)), on={f"done.{fn.__name__}": "ok"}
                ),
                "ok": state(final=True),
            },
        )

    return machine(
        "jobs",
        initial="p",
        states={
            "p": parallel({"a": region(slow), "b": region(fails)}, on={"done.state.p": "end"}),
            "end": state(final=True),
        },
    )


def test_an_exhausted_effect_without_a_handler_in_the_configuration_fails_the_instance(
    engine: Engine,
) -> None:
    engine.register(two_jobs())
    engine.start("jobs", instance_id="j1")
    engine.run_due()
    snap = engine.get("j1")
    assert (snap.status, snap.configuration) == ("failed", ("p.a.ok", "p.b.run"))
    last = engine.history("j1")[-1]
    assert (last.event, last.outcome, last.configuration) == ("error.fails", "failed", snap.configuration)


def test_a_result_arriving_while_failed_is_kept_and_delivered_on_retry(engine: Engine) -> None:
    engine.register(two_jobs())
    engine.start("jobs", instance_id="j1")
    IN_FLIGHT.append(engine)
    engine.run_due(batch=1)  # this worker takes `slow`; meanwhile `fails` fails the instance
    assert engine.get("j1").configuration == ("p.a.run", "p.b.run")
    assert [(e.name, e.status) for e in engine.status("j1").effects] == [
        ("slow", "held"),
        ("fails", "failed"),
    ]
    FLAKY["ok"] = 1
    engine.retry("j1")
    engine.run_due()
    snap = engine.get("j1")
    assert (snap.status, snap.configuration) == ("completed", ("end",))
    assert FLAKY["fails"] == 2  # `slow` was delivered, not run again; `fails` ran a second round
    assert sorted(r.event for r in engine.history("j1")[-2:]) == ["done.fails", "done.slow"]


# Tokens ----------------------------------------------------------------------------------------


def test_a_token_binds_to_the_entry_of_the_state_that_handles_its_event(db_url: str, clock: Any) -> None:
    engine = Engine(db_url, clock=clock, secret=SECRET)
    try:
        engine.register(phases())
        engine.start("phases", instance_id="p1")
        stop = engine.token("p1", "STOP")  # handled by `work`
        nxt = engine.token("p1", "NEXT")  # handled by `work.a`
        engine.send("p1", "NEXT")  # work.a left: its token is stale; work's entry holds
        with pytest.raises(TokenInvalid, match="stale"):
            engine.send_token(nxt)
        assert engine.send_token(stop).configuration == ("stopped",)
    finally:
        engine.close()


def test_a_token_is_stale_after_its_handling_state_was_entered_again(db_url: str, clock: Any) -> None:
    engine = Engine(db_url, clock=clock, secret=SECRET)
    try:
        engine.register(phases())
        engine.start("phases", instance_id="p1")
        token = engine.token("p1", "NEXT")
        engine.send("p1", "NEXT")
        engine.send("p1", "BACK")  # work.a again, a new entry
        with pytest.raises(TokenInvalid, match="stale"):
            engine.send_token(token)
    finally:
        engine.close()


# Status, cancel, retry, idempotency ------------------------------------------------------------


def test_status_waits_on_the_events_timers_and_effects_of_the_whole_configuration(engine: Engine) -> None:
    engine.register(kyc())
    engine.start("kyc", instance_id="k1")
    engine.send("k1", "SUBMITTED")
    waiting = engine.status("k1").waiting_on
    assert waiting["events"] == ["WITHDRAW"]
    assert [(t.event, t.state) for t in waiting["timers"]] == [("after.3d", "checks")]
    assert [e.state for e in waiting["effects"]] == [
        "checks.identity.verifying",
        "checks.sanctions.screening",
    ]


def test_status_of_a_chart_not_registered_here_reads_the_stored_definition(
    engine: Engine, db_url: str
) -> None:
    engine.register(phases())
    engine.start("phases", instance_id="p1")
    other = Engine(db_url)
    try:
        assert other.status("p1").events == ["NEXT", "RESTART", "STOP"]
    finally:
        other.close()


def test_cancel_drops_every_timer_and_effect_and_keeps_the_configuration(engine: Engine) -> None:
    engine.register(kyc())
    engine.start("kyc", instance_id="k1")
    engine.send("k1", "SUBMITTED")
    snap = engine.cancel("k1", reason="duplicate")
    assert (snap.status, snap.configuration) == (
        "cancelled",
        ("checks.identity.verifying", "checks.sanctions.screening"),
    )
    status = engine.status("k1")
    assert (status.timers, [e.status for e in status.effects]) == ([], [])
    last = engine.history("k1")[-1]
    assert (last.event, last.configuration) == ("cancel", snap.configuration)
    engine.clock.advance("4d")
    assert engine.run_due() == 0


def test_an_idempotent_resend_replays_the_recorded_snapshot_with_its_configuration(engine: Engine) -> None:
    engine.register(kyc())
    engine.start("kyc", instance_id="k1")
    first = engine.send("k1", "SUBMITTED", idempotency_key="req-1")
    again = engine.send("k1", "SUBMITTED", idempotency_key="req-1")
    assert again == first and again.configuration == first.configuration
    assert len(engine.history("k1")) == 2


def test_an_idempotent_resend_of_a_rejected_event_raises_the_same_error(engine: Engine) -> None:
    engine.register(phases())
    engine.start("phases", instance_id="p1")
    with pytest.raises(Exception) as first:
        engine.send("p1", "AGAIN", idempotency_key="k")
    with pytest.raises(type(first.value)):
        engine.send("p1", "AGAIN", idempotency_key="k")
    assert [r.outcome for r in engine.history("p1")] == ["applied", "rejected"]


# Step limit ------------------------------------------------------------------------------------


def test_an_eventless_loop_raises_from_send_and_changes_nothing(engine: Engine) -> None:
    engine.register(loop())
    before = engine.start("loop", instance_id="l1")
    with pytest.raises(StepLimitExceeded):
        engine.send("l1", "SPIN")
    after = engine.get("l1")
    assert (after.configuration, after.version) == (before.configuration, before.version)
    assert len(engine.history("l1")) == 1


def test_an_eventless_loop_entered_by_a_timer_fails_the_instance(engine: Engine) -> None:
    engine.register(loop())
    engine.start("loop", instance_id="l1")
    engine.clock.advance("1m")
    engine.run_due()
    snap = engine.get("l1")
    assert (snap.status, snap.configuration) == ("failed", ("idle",))
    last = engine.history("l1")[-1]
    assert last.outcome == "failed" and "StepLimitExceeded" in (last.reason or "")


# History memory --------------------------------------------------------------------------------


def test_history_memory_survives_an_engine_restart(db_url: str, clock: Any) -> None:
    first = Engine(db_url, clock=clock)
    first.register(kyc())
    first.start("kyc", instance_id="k1")
    first.send("k1", "SUBMITTED")
    first.run_due()
    first.send("k1", "APPROVE")  # review.second
    first.send("k1", "PAUSE")
    first.close()
    second = Engine(db_url, clock=clock)
    try:
        second.register(kyc())
        assert second.send("k1", "RESUME").configuration == ("review.second",)
    finally:
        second.close()


def test_a_guard_refusing_a_chart_event_is_audited(engine: Engine) -> None:
    from statemachines import transition

    def never(ctx: Any, event: Any) -> bool:
        return False

    engine.register(machine("g", initial="a", states={
        "a": state(initial="b", states={"b": state(on={"GO": transition("c", guard=never)}), "c": state()}),
    }))  # fmt: skip
    engine.start("g", instance_id="g1")
    with pytest.raises(GuardRejected):
        engine.send("g1", "GO")
    assert engine.history("g1")[-1].outcome == "rejected"


def test_a_reserved_event_cannot_be_sent_to_a_chart(engine: Engine) -> None:
    engine.register(kyc())
    engine.start("kyc", instance_id="k1")
    engine.send("k1", "SUBMITTED")
    with pytest.raises(InvalidArgument):
        engine.send("k1", "done.state.checks")


def test_an_action_calling_the_engine_inside_a_chart_step_is_refused(engine: Engine) -> None:
    from statemachines import ActionFailed, ReentrantCall, transition

    def meddle(ctx: Any, event: Any) -> None:
        engine.send("other", "GO")

    engine.register(machine("r", initial="a", states={
        "a": state(initial="b", states={"b": state(on={"GO": transition("c", action=meddle)}), "c": state()}),
    }))  # fmt: skip
    engine.start("r", instance_id="r1")
    with pytest.raises(ActionFailed) as err:
        engine.send("r1", "GO")
    assert isinstance(err.value.__cause__, ReentrantCall)
    assert engine.get("r1").configuration == ("a.b",)


def test_a_chart_action_leaving_nan_in_the_context_is_refused_and_nothing_is_written(engine: Engine) -> None:
    from statemachines import ContextInvalid, transition

    def poison(ctx: Any, event: Any) -> None:
        ctx["x"] = float("nan")

    engine.register(machine("nan", initial="a", states={
        "a": state(initial="b", states={"b": state(on={"GO": transition("c", action=poison)}), "c": state()}),
    }))  # fmt: skip
    engine.start("nan", instance_id="n1")
    with pytest.raises(ContextInvalid, match="NaN"):
        engine.send("n1", "GO")
    assert (engine.get("n1").configuration, engine.get("n1").context) == (("a.b",), {})
