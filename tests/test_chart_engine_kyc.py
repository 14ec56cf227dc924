"""The KYC statechart of docs/statecharts.md end to end on a ManualClock: parallel checks run as
effects and join, the 3-day timer over the check phase, and the review paused and resumed
through its history state. Both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from statemachines import Engine
from statemachines.effects import run_due_effects
from tests.chart_machines import CALLS, kyc


@pytest.fixture
def kyc_engine(engine: Engine) -> Engine:
    CALLS.clear()
    engine.register(kyc())
    engine.start("kyc", instance_id="k1")
    return engine


def test_kyc_checks_join_then_the_review_is_approved_after_a_pause(kyc_engine: Engine) -> None:
    e = kyc_engine
    e.send("k1", "SUBMITTED")
    e.run_due()
    assert e.get("k1").configuration == ("review.first",)
    assert e.status("k1").timers == []  # the check phase's 3-day timer left with it
    e.send("k1", "APPROVE")
    e.send("k1", "PAUSE")
    assert e.get("k1").configuration == ("paused",)
    assert e.send("k1", "RESUME").configuration == ("review.second",)
    snap = e.send("k1", "APPROVE")
    assert (snap.configuration, snap.status) == (("approved",), "completed")
    assert sorted(CALLS) == ["screen", "verify_id"] and all(len(v) == 1 for v in CALLS.values())


def test_kyc_checks_not_done_in_three_days_escalate_and_their_effects_are_cancelled(
    kyc_engine: Engine,
) -> None:
    e = kyc_engine
    e.send("k1", "SUBMITTED")
    e.clock.advance("3d")
    e.run_due()  # the timer fires first: the effects of the checks are cancelled with them
    assert e.get("k1").configuration == ("escalated",)
    assert CALLS == {} and e.status("k1").effects == []
    assert e.send("k1", "RESOLVE").configuration == ("review.first",)


def test_kyc_check_phase_timer_survives_one_check_finishing(kyc_engine: Engine) -> None:
    e = kyc_engine
    submitted = e.send("k1", "SUBMITTED").updated_at
    e.clock.advance("1h")
    assert run_due_effects(e.runtime, limit=1) == 1  # identity only
    assert e.get("k1").configuration == ("checks.identity.ok", "checks.sanctions.screening")
    assert [(t.event, t.state, t.fire_at) for t in e.status("k1").timers] == [
        ("after.3d", "checks", submitted + timedelta(days=3))
    ]


def test_kyc_review_resumes_at_its_default_when_nothing_is_remembered(kyc_engine: Engine) -> None:
    e = kyc_engine
    e.send("k1", "SUBMITTED")
    e.clock.advance("3d")
    e.run_due()
    e.send("k1", "RESOLVE")
    e.send("k1", "PAUSE")
    assert e.send("k1", "RESUME").configuration == ("review.first",)
