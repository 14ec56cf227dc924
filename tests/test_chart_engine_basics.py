"""Statecharts in the engine: start, send, the configuration stored and read back, one history
record per event, rejected events audited, `instances(state=)` at any depth. Both databases."""

from __future__ import annotations

import pytest

from statemachines import Engine, EventNotAllowed
from tests.chart_machines import kyc, phases, three_regions


@pytest.fixture
def kyc_engine(engine: Engine) -> Engine:
    engine.register(kyc())
    return engine


def test_start_enters_the_initial_configuration(kyc_engine: Engine) -> None:
    snap = kyc_engine.start("kyc", instance_id="k1")
    assert (snap.state, snap.configuration, snap.status) == ("collecting", ("collecting",), "active")


def test_start_of_a_nested_initial_enters_its_atomic_descendant(engine: Engine) -> None:
    engine.register(phases())
    snap = engine.start("phases", instance_id="p1")
    assert (snap.state, snap.configuration) == ("work.a", ("work.a",))
    assert snap.is_in("work") and snap.is_in("work.a") and not snap.is_in("work.b")


def test_entering_a_parallel_state_activates_every_region(kyc_engine: Engine) -> None:
    kyc_engine.start("kyc", instance_id="k1")
    snap = kyc_engine.send("k1", "SUBMITTED")
    assert snap.state == "checks"
    assert snap.configuration == ("checks.identity.verifying", "checks.sanctions.screening")
    assert snap.is_in("checks.sanctions") and not snap.is_in("collecting")


def test_the_configuration_is_stored_and_read_back(kyc_engine: Engine, db_url: str) -> None:
    kyc_engine.start("kyc", instance_id="k1")
    kyc_engine.send("k1", "SUBMITTED")
    reopened = Engine(db_url)  # another process: nothing registered
    try:
        snap = reopened.get("k1")
    finally:
        reopened.close()
    assert snap.state == "checks"
    assert snap.configuration == ("checks.identity.verifying", "checks.sanctions.screening")
    assert snap.is_in("checks.identity")


def test_a_flat_snapshot_has_its_state_as_configuration(engine: Engine) -> None:
    from statemachines import machine, state

    engine.register(machine("flat", initial="a", states={"a": state(on={"GO": "b"}), "b": state()}))
    snap = engine.start("flat", instance_id="f1")
    assert snap.configuration == ("a",) and snap.is_in("a") and not snap.is_in("b")
    assert engine.history("f1")[0].configuration == ("a",)


def test_one_event_moving_three_regions_is_one_history_record(engine: Engine) -> None:
    engine.register(three_regions())
    engine.start("three", instance_id="t1")
    snap = engine.send("t1", "GO")
    assert snap.configuration == ("main.r1.busy.one", "main.r2.busy.one", "main.r3.busy.one")
    records = engine.history("t1")
    assert [r.event for r in records] == ["start", "GO"]
    go = records[-1]
    assert (go.source, go.target, go.outcome) == ("main", "main", "applied")
    assert go.configuration == snap.configuration


def test_history_records_keep_the_configuration_after_each_event(kyc_engine: Engine) -> None:
    kyc_engine.start("kyc", instance_id="k1")
    kyc_engine.send("k1", "SUBMITTED")
    kyc_engine.send("k1", "WITHDRAW")
    records = kyc_engine.history("k1")
    assert [(r.event, r.target, r.configuration) for r in records] == [
        ("start", "collecting", ("collecting",)),
        ("SUBMITTED", "checks", ("checks.identity.verifying", "checks.sanctions.screening")),
        ("WITHDRAW", "withdrawn", ("withdrawn",)),
    ]
    assert kyc_engine.get("k1").status == "completed"


def test_a_rejected_event_is_recorded_and_leaves_the_instance_unchanged(kyc_engine: Engine) -> None:
    kyc_engine.start("kyc", instance_id="k1")
    before = kyc_engine.send("k1", "SUBMITTED")
    with pytest.raises(EventNotAllowed) as err:
        kyc_engine.send("k1", "APPROVE")
    assert err.value.allowed == [
        "WITHDRAW",
        "done.screen",
        "done.state.checks",
        "done.verify_id",
        "error.verify_id",
    ]
    after = kyc_engine.get("k1")
    assert (after.configuration, after.version, after.context) == (
        before.configuration,
        before.version,
        before.context,
    )
    last = kyc_engine.history("k1")[-1]
    assert (last.event, last.outcome, last.target) == ("APPROVE", "rejected", "checks")
    assert last.configuration == before.configuration


def test_instances_finds_a_state_active_at_any_depth(kyc_engine: Engine) -> None:
    kyc_engine.start("kyc", instance_id="k1")
    kyc_engine.start("kyc", instance_id="k2")
    kyc_engine.send("k2", "SUBMITTED")
    for state in ("checks", "checks.identity", "checks.sanctions.screening"):
        assert [s.id for s in kyc_engine.instances(state=state)] == ["k2"], state
        assert [s.id for s in kyc_engine.instances(machine="kyc", state=state)] == ["k2"], state
    assert [s.id for s in kyc_engine.instances(state="collecting")] == ["k1"]
    assert kyc_engine.instances(machine="other", state="checks") == []


def test_instances_by_state_follows_the_configuration_as_it_moves(kyc_engine: Engine) -> None:
    kyc_engine.start("kyc", instance_id="k1")
    kyc_engine.send("k1", "SUBMITTED")
    kyc_engine.send("k1", "WITHDRAW")
    assert kyc_engine.instances(state="checks") == []
    assert [s.id for s in kyc_engine.instances(state="withdrawn")] == ["k1"]


def test_instances_by_state_mixes_flat_and_chart_instances_in_creation_order(kyc_engine: Engine) -> None:
    from statemachines import machine, state

    kyc_engine.register(
        machine("flat", initial="checks", states={"checks": state(on={"GO": "x"}), "x": state()})
    )
    kyc_engine.start("flat", instance_id="f1")
    kyc_engine.start("kyc", instance_id="k1")
    kyc_engine.send("k1", "SUBMITTED")
    kyc_engine.clock.advance("1s")
    kyc_engine.start("flat", instance_id="f2")
    assert [s.id for s in kyc_engine.instances(state="checks")] == ["f1", "k1", "f2"]
    assert [s.id for s in kyc_engine.instances(state="checks", limit=1, offset=1)] == ["k1"]
    assert [s.id for s in kyc_engine.instances(machine="flat", state="checks")] == ["f1", "f2"]
