"""Rewinding statecharts: the whole configuration (every region of a parallel state) is restored
as it was after the chosen record, and every restored state is a fresh entry with its timers and
effects armed again. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from chart_machines import kyc

from statemachines.testing import run_until_idle


def checked(engine, iid: str = "k1") -> None:
    engine.register(kyc())
    engine.start("kyc", instance_id=iid)
    engine.send(iid, "SUBMITTED")
    run_until_idle(engine, until=engine.clock.now() + timedelta(hours=1))


def test_rewind_to_a_state_inside_a_parallel_region_restores_every_region(engine):
    checked(engine)
    assert engine.get("k1").state == "review.first"
    snap = engine.rewind("k1", "checks.identity.verifying")
    assert snap.configuration == ("checks.identity.verifying", "checks.sanctions.screening")
    assert snap.state == "checks"
    last = engine.history("k1")[-1]
    assert (last.outcome, last.configuration) == ("rewound", snap.configuration)


def test_a_rewound_parallel_state_arms_its_regions_effects_and_its_timer_again(engine):
    checked(engine)
    engine.rewind("k1", "checks.identity.verifying")
    status = engine.status("k1")
    assert sorted(e.name for e in status.effects) == ["screen", "verify_id"]
    assert [t.event for t in status.timers] == ["after.3d"]
    run_until_idle(engine, until=engine.clock.now() + timedelta(hours=1))
    assert engine.get("k1").state == "review.first"


def test_rewind_to_a_seq_between_two_regions_finishing_keeps_the_finished_one(engine):
    checked(engine)
    history = engine.history("k1")
    # the record after the first region finished, while the other one still ran
    half = next(r for r in history if len(r.configuration) == 2 and r.event.startswith("done.") and r.seq > 2)
    snap = engine.rewind("k1", half.seq)
    assert snap.configuration == half.configuration
    unfinished = "screen" if "checks.identity.ok" in half.configuration else "verify_id"
    assert [e.name for e in engine.status("k1").effects] == [unfinished]


def test_instances_by_state_follow_a_chart_rewind(engine):
    checked(engine)
    engine.rewind("k1", "checks.sanctions.screening")
    found = engine.instances(state="checks.sanctions.screening")
    assert [s.id for s in found] == ["k1"]
    assert engine.instances(state="review") == []


def test_a_chart_rewind_with_feedback_moves_on_from_the_restored_configuration(engine):
    checked(engine)
    snap = engine.rewind("k1", "checks.identity.verifying", event="WITHDRAW")
    assert (snap.state, snap.status) == ("withdrawn", "completed")
    assert engine.status("k1").effects == []


def test_a_chart_rewind_runs_no_entry_action_of_the_restored_states(engine):
    from statemachines import machine, state

    def entered(ctx: dict, event) -> None:
        ctx["entries"] = ctx.get("entries", 0) + 1

    engine.register(
        machine(
            "nested",
            initial="outer",
            states={
                "outer": state(initial="inner", on_enter=entered,
                               states={"inner": state(on_enter=entered, on={"NEXT": "other"}),
                                       "other": state()},
                               on={"OUT": "done"}),
                "done": state(on={"AGAIN": "outer"}),
            },
        )
    )  # fmt: skip
    engine.start("nested", instance_id="n1")
    engine.send("n1", "NEXT")
    snap = engine.rewind("n1", "outer.inner")
    assert (snap.configuration, snap.context) == (("outer.inner",), {"entries": 2})


def test_callback_tokens_issued_before_a_chart_rewind_are_stale(db_url, clock):
    import pytest

    from statemachines import Engine, TokenInvalid

    engine = Engine(db_url, clock=clock, secret="chart-rewind-secret-0123456789")
    checked(engine)
    token = engine.token("k1", "PAUSE")
    engine.rewind("k1", "review.first")
    with pytest.raises(TokenInvalid, match="stale"):
        engine.send_token(token)
    assert engine.send_token(engine.token("k1", "PAUSE")).state == "paused"
    engine.close()
