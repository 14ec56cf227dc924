"""The statechart examples (`statemachines.examples.kyc`, `.enrich`) run end to end on the Engine,
on SQLite and PostgreSQL, with a ManualClock and `run_due`, and do what their docstrings say."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import yaml

from statemachines import Engine, ManualClock, load_definition, loads_definition
from statemachines.examples import enrich, kyc

CHECK_LEAVES = ("checks.identity.verifying", "checks.sanctions.screening", "checks.credit.scoring")
CHECK_EFFECTS = {"verify_identity", "screen_sanctions", "score_credit"}


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    eng = Engine(db_url, clock=clock)
    eng.register(kyc.kyc)
    eng.register(enrich.enrich_customer)
    kyc.providers.reset()
    enrich.directory.reset()
    yield eng
    eng.close()


def submit(engine: Engine, iid: str, **fail_first: int | None) -> None:
    engine.start("kyc", {"name": iid, "fail_first": fail_first}, instance_id=iid)
    engine.send(iid, "SUBMIT")


def events(engine: Engine, iid: str) -> list[str]:
    return [r.event for r in engine.history(iid)]


# KYC ----------------------------------------------------------------------------------------------
def test_kyc_submit_enters_all_three_checks_with_one_effect_each_and_the_deadline(engine):
    submit(engine, "k1")
    snap = engine.get("k1")
    assert snap.configuration == CHECK_LEAVES
    assert snap.state == "checks" and snap.is_in("checks.credit")
    status = engine.status("k1")
    assert {(e.name, e.state) for e in status.effects} == {
        ("verify_identity", "checks.identity.verifying"),
        ("screen_sanctions", "checks.sanctions.screening"),
        ("score_credit", "checks.credit.scoring"),
    }
    assert [(t.event, t.state) for t in status.timers] == [("after.3d", "checks")]
    assert {i.id for i in engine.instances(state="checks.sanctions.screening")} == {"k1"}


def test_kyc_happy_path_joins_once_and_cancels_the_deadline(engine, clock):
    submit(engine, "k1")
    engine.run_due()
    snap = engine.get("k1")
    assert snap.configuration == ("review.documents",)
    assert sorted(snap.context.results) == ["credit", "identity", "sanctions"]
    hist = engine.history("k1")
    assert sorted(r.event for r in hist if r.event.startswith("done.")) == sorted(
        f"done.{name}" for name in CHECK_EFFECTS
    )
    assert [r.configuration for r in hist][-1] == ("review.documents",)
    assert [r.event for r in hist].count("done.state.checks") == 0  # internal: part of the last record
    assert engine.status("k1").timers == []  # the 3d timer of `checks` went with it
    clock.advance("4d")
    engine.run_due()
    assert engine.get("k1").configuration == ("review.documents",)


def test_kyc_check_failing_once_succeeds_on_retry_a_minute_later(engine, clock):
    submit(engine, "k1", identity=1)
    engine.run_due()
    snap = engine.get("k1")
    assert snap.configuration == (
        "checks.identity.verifying",
        "checks.sanctions.clear",
        "checks.credit.scored",
    )
    (pending,) = [e for e in engine.status("k1").effects if e.status == "pending"]
    assert pending.name == "verify_identity" and "503" in pending.last_error
    clock.advance("1m")
    engine.run_due()  # jitter may push the retry a few seconds later
    clock.advance("10s")
    engine.run_due()
    snap = engine.get("k1")
    assert snap.configuration == ("review.documents",)
    assert snap.context.results["identity"]["attempt"] == 2
    assert [
        (a.name, a.attempt, a.ok) for a in engine.effect_attempts("k1") if a.name == "verify_identity"
    ] == [
        ("verify_identity", 1, False),
        ("verify_identity", 2, True),
    ]


def test_kyc_deadline_escalates_while_a_sanctions_hit_waits_for_an_officer(engine, clock):
    engine.start("kyc", {"name": "k1", "on_a_list": True}, instance_id="k1")
    engine.send("k1", "SUBMIT")
    engine.run_due()
    snap = engine.get("k1")
    assert snap.configuration == (
        "checks.identity.passed",
        "checks.sanctions.flagged",
        "checks.credit.scored",
    )
    clock.advance("71h")
    engine.run_due()
    assert engine.get("k1").is_in("checks.sanctions.flagged")  # not a minute early
    clock.advance("1h")
    engine.run_due()
    snap = engine.get("k1")
    assert snap.configuration == ("escalated",)
    assert snap.context.escalated_pending == ["sanctions"]
    assert sorted(snap.context.finished) == ["credit", "identity"]
    hist = engine.history("k1")
    assert hist[-1].event == "after.3d" and hist[-1].actor == "timer"
    assert engine.status("k1").timers == []
    assert engine.send("k1", "RESOLVE").configuration == ("review.documents",)


def test_kyc_sanctions_hit_cleared_by_an_officer_joins_the_checks(engine):
    engine.start("kyc", {"name": "k1", "on_a_list": True}, instance_id="k1")
    engine.send("k1", "SUBMIT")
    engine.run_due()
    snap = engine.send("k1", "OFFICER_CLEARED")
    assert snap.configuration == ("review.documents",)
    assert snap.context.results["sanctions"]["hits"] == 1


def test_kyc_provider_down_for_good_ends_its_check_in_error_and_the_review_still_starts(engine, clock):
    submit(engine, "k1", credit=None)
    kyc.drive(engine, clock, ["k1"])
    snap = engine.get("k1")
    assert snap.configuration == ("review.documents",)
    assert snap.context.errors["credit"].startswith("ProviderUnavailable: credit provider: 503")
    assert snap.context.errors["credit"].endswith(f"after {kyc.RETRY.max_attempts} attempts")
    attempts = [a for a in engine.effect_attempts("k1") if a.name == "score_credit"]
    assert len(attempts) == kyc.RETRY.max_attempts and not any(a.ok for a in attempts)
    assert clock.now() - attempts[0].started_at < timedelta(hours=2)  # well inside the deadline
    assert engine.history("k1")[-1].event == "error.score_credit"


def test_kyc_leaving_the_checks_cancels_the_retries_of_a_check_still_failing(engine, clock):
    submit(engine, "k1", identity=None)
    engine.run_due()  # identity fails its first attempt; its retry is due in a minute
    (pending,) = [e for e in engine.status("k1").effects if e.status == "pending"]
    assert pending.name == "verify_identity"
    snap = engine.send("k1", "WITHDRAW")  # leaving `checks` from the outside
    assert snap.state == "withdrawn"
    clock.advance("1d")
    engine.run_due()
    assert len([a for a in engine.effect_attempts("k1") if a.name == "verify_identity"]) == 1


def test_kyc_pause_and_resume_return_to_the_review_step_it_was_in(engine):
    submit(engine, "k1")
    engine.run_due()
    engine.send("k1", "APPROVE")
    assert engine.send("k1", "PAUSE").configuration == ("paused",)
    resumed = engine.send("k1", "RESUME")
    assert resumed.configuration == ("review.risk",)
    assert engine.history("k1")[-1].configuration == ("review.risk",)
    final = engine.send("k1", "APPROVE")
    assert (final.state, final.status, final.context.decisions) == (
        "approved",
        "completed",
        ["documents", "risk"],
    )


def test_kyc_resume_of_a_review_paused_at_its_first_step_returns_there(engine):
    submit(engine, "k1")
    engine.run_due()
    engine.send("k1", "PAUSE")
    assert engine.send("k1", "RESUME").configuration == ("review.documents",)


def test_kyc_withdrawal_during_checks_cancels_every_check(engine):
    submit(engine, "k1")
    snap = engine.send("k1", "WITHDRAW")
    assert (snap.state, snap.status) == ("withdrawn", "completed")
    engine.run_due()
    assert kyc.providers.calls == {}
    assert not [e for e in engine.status("k1").effects if e.status in ("pending", "running")]


def test_kyc_scenario_of_the_module(engine, clock):
    out = kyc.run(engine, clock)
    assert (out["ada_paused_in"], out["ada_resumed_in"]) == ("paused", "review.risk")
    ada = out["kyc-ada"]
    assert (ada["state"], ada["status"], ada["decisions"]) == ("approved", "completed", ["documents", "risk"])
    assert ada["results"] == ["credit", "identity", "sanctions"]
    bob = out["kyc-bob"]
    assert (bob["state"], bob["escalated_pending"]) == ("review.documents", ["sanctions"])
    assert bob["results"] == ["credit", "identity", "sanctions"]  # the hit is in, never cleared
    assert bob["events"][-2:] == ["after.3d", "RESOLVE"]
    assert out["kyc-cy"]["state"] == "withdrawn"
    ada_keys = [k for k in kyc.providers.answers if '"kyc-ada"' in k]
    assert len(ada_keys) == 3  # one key per check: the retry of identity reused its key
    assert sum(kyc.providers.calls[k] for k in ada_keys) == 4


# Enrich -------------------------------------------------------------------------------------------
def test_enrich_merges_all_three_lookups_then_the_summary(engine):
    engine.start("enrich_customer", {"customer_id": "c-1"}, instance_id="e1")
    assert engine.get("e1").configuration == (
        "enriching.profile.fetching",
        "enriching.orders.fetching",
        "enriching.risk.fetching",
    )
    engine.run_due()
    snap = engine.get("e1")
    assert (snap.state, snap.status) == ("enriched", "completed")
    ctx = snap.context
    assert sorted(ctx.arrival) == ["orders", "profile", "risk"]
    assert ctx.summary == {
        "name": "Ada Lovelace", "tier": "gold", "orders": 12, "lifetime_value": 1840.5, "risk": 0.12,
        "complete": True,
    }  # fmt: skip
    assert sorted(events(engine, "e1")) == sorted(
        ["start", "done.fetch_profile", "done.fetch_orders", "done.fetch_risk"]
    )


def test_enrich_merge_runs_once_after_the_last_lookup_whatever_the_order(engine, clock):
    enrich.directory.down.update({"profile", "orders"})  # risk answers first, the others retry
    engine.start("enrich_customer", {"customer_id": "c-1"}, instance_id="e1")
    engine.run_due()
    enrich.directory.down.discard("profile")
    clock.advance("10s")  # the first retry (5s + jitter): profile answers, orders fails again
    engine.run_due()
    snap = engine.get("e1")
    assert snap.configuration == (
        "enriching.profile.fetched",
        "enriching.orders.fetching",
        "enriching.risk.fetched",
    )
    assert snap.context.summary is None
    enrich.directory.down.clear()
    clock.advance("20s")
    engine.run_due()
    snap = engine.get("e1")
    assert (snap.state, snap.context.arrival) == ("enriched", ["risk", "profile", "orders"])
    assert snap.context.summary["complete"] and snap.context.summary["orders"] == 12
    assert engine.history("e1")[-1].event == "done.fetch_orders"  # the merge ran in its transaction
    assert len(engine.history("e1")) == 4


def test_enrich_with_a_lookup_down_still_merges_marked_incomplete(engine, clock):
    out = enrich.run(engine, clock)
    full, partial = out["enrich-full"], out["enrich-partial"]
    assert full["summary"]["complete"] and full["missing"] == []
    assert partial["state"] == "enriched" and partial["missing"] == ["risk"]
    assert partial["summary"]["risk"] is None and not partial["summary"]["complete"]
    assert partial["summary"]["orders"] == 12
    assert enrich.directory.calls[("risk", "c-1")] == 1 + enrich.RETRY.max_attempts


# Definitions --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("module", "definition"), [(kyc, "kyc"), (enrich, "enrich_customer")])
def test_statechart_examples_round_trip_through_yaml_with_their_registry(module, definition):
    original = getattr(module, definition)
    loaded = loads_definition(yaml.safe_dump(original.to_dict(), sort_keys=False), module.registry)
    assert loaded.version == original.version


def test_kyc_yaml_is_the_same_machine_as_the_python_definition():
    assert load_definition(kyc.YAML_PATH, kyc.registry).version == kyc.kyc.version
