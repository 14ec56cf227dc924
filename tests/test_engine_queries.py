"""Reading back: `get`, `history`, `instances`, and the definitions stored in the database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from pydantic import BaseModel

from statemachines import (
    ConfigurationError,
    Engine,
    EventNotAllowed,
    InstanceNotFound,
    InvalidArgument,
    ManualClock,
    Record,
    UnknownMachine,
    machine,
    state,
    transition,
)
from statemachines.spec import MachineSpec

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Ticket(BaseModel):
    title: str
    comments: list[str] = []


def add_comment(ctx: Ticket, event) -> None:
    ctx.comments.append(event.payload["text"])


TICKET = machine(
    "ticket",
    context=Ticket,
    initial="open",
    states={
        "open": state(
            on={"START": "in_progress", "CLOSE": "closed", "COMMENT": transition(None, action=add_comment)}
        ),
        "in_progress": state(on={"CLOSE": "closed", "STOP": "open"}),
        "closed": state(final=True),
    },
)

LIGHT = machine(
    "light",
    initial="off",
    states={"off": state(on={"FLIP": "on"}), "on": state(on={"FLIP": "off"})},
)

LIGHT_V2 = machine(
    "light",
    initial="off",
    states={
        "off": state(on={"FLIP": "on"}),
        "on": state(on={"FLIP": "off", "BURN": "broken"}),
        "broken": state(final=True),
    },
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    eng = Engine(db_url, clock=clock)
    eng.register(TICKET)
    eng.register(LIGHT)
    yield eng
    eng.close()


def raw_query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return conn.execute(sql, params).fetchall()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute(sql.replace("?", "%s"), params).fetchall()


def populate(engine: Engine, clock: ManualClock) -> None:
    """t1 open, t2 in_progress, t3 closed (completed), t4 cancelled; l1 off, l2 on."""
    for iid in ("t1", "t2", "t3", "t4"):
        engine.start("ticket", {"title": iid}, instance_id=iid)
        clock.advance("1s")
    engine.send("t2", "START")
    engine.send("t3", "CLOSE")
    engine.cancel("t4")
    engine.start("light", instance_id="l1")
    clock.advance("1s")
    engine.start("light", instance_id="l2")
    engine.send("l2", "FLIP")


def ids(snaps: list[Any]) -> list[str]:
    return [s.id for s in snaps]


# get ---------------------------------------------------------------------------------------------


def test_get_returns_the_current_snapshot(engine: Engine, clock: ManualClock) -> None:
    engine.start("ticket", {"title": "printer"}, instance_id="t1")
    clock.advance("1h")
    engine.send("t1", "START")
    snap = engine.get("t1")
    assert (snap.id, snap.machine, snap.state, snap.status, snap.version) == (
        "t1",
        "ticket",
        "in_progress",
        "active",
        2,
    )
    assert snap.context == Ticket(title="printer")
    assert (snap.created_at, snap.updated_at) == (T0, T0 + timedelta(hours=1))


def test_get_of_an_unknown_instance_raises_instance_not_found(engine: Engine) -> None:
    with pytest.raises(InstanceNotFound, match="'nope'"):
        engine.get("nope")


def test_get_on_an_engine_that_has_not_registered_the_machine_gives_a_dict_context(
    engine: Engine, db_url: str
) -> None:
    engine.start("ticket", {"title": "printer"}, instance_id="t1")
    other = Engine(db_url)
    try:
        assert other.get("t1").context == {"title": "printer", "comments": []}
    finally:
        other.close()


def test_snapshot_as_dict_is_json_serialisable(engine: Engine) -> None:
    snap = engine.start("ticket", {"title": "printer"}, instance_id="t1")
    data = json.loads(json.dumps(snap.as_dict()))
    assert data["context"] == {"title": "printer", "comments": []}
    assert data["created_at"] == T0.isoformat()


# history -----------------------------------------------------------------------------------------


def test_history_lists_every_record_in_seq_order(engine: Engine, clock: ManualClock) -> None:
    engine.start("ticket", {"title": "printer"}, instance_id="t1", actor="ann")
    clock.advance("1m")
    engine.send("t1", "COMMENT", {"text": "jammed"}, actor="bob")
    clock.advance("1m")
    with pytest.raises(EventNotAllowed):
        engine.send("t1", "STOP")
    clock.advance("1m")
    engine.send("t1", "START")
    history = engine.history("t1")
    assert all(isinstance(r, Record) for r in history)
    assert [(r.seq, r.event, r.source, r.target, r.outcome) for r in history] == [
        (1, "start", None, "open", "applied"),
        (2, "COMMENT", "open", "open", "applied"),
        (3, "STOP", "open", "open", "rejected"),
        (4, "START", "open", "in_progress", "applied"),
    ]
    assert [r.at for r in history] == [T0 + timedelta(minutes=m) for m in range(4)]
    assert [r.actor for r in history] == ["ann", "bob", None, None]


def test_history_records_carry_the_payload_and_the_context_after(engine: Engine) -> None:
    engine.start("ticket", {"title": "printer"}, instance_id="t1")
    engine.send("t1", "COMMENT", {"text": "jammed"})
    first, second = engine.history("t1")
    assert first.payload == {}
    assert first.context == {"title": "printer", "comments": []}
    assert second.payload == {"text": "jammed"}
    assert second.context == {"title": "printer", "comments": ["jammed"]}


def test_history_of_an_unknown_instance_raises_instance_not_found(engine: Engine) -> None:
    with pytest.raises(InstanceNotFound):
        engine.history("nope")


def test_history_records_are_json_serialisable(engine: Engine) -> None:
    engine.start("ticket", {"title": "printer"}, instance_id="t1")
    [record] = engine.history("t1")
    assert json.loads(json.dumps(record.as_dict()))["event"] == "start"


def test_history_is_per_instance(engine: Engine) -> None:
    engine.start("ticket", {"title": "a"}, instance_id="t1")
    engine.start("ticket", {"title": "b"}, instance_id="t2")
    engine.send("t2", "START")
    assert len(engine.history("t1")) == 1
    assert len(engine.history("t2")) == 2


# instances ---------------------------------------------------------------------------------------


def test_instances_lists_everything_oldest_first(engine: Engine, clock: ManualClock) -> None:
    populate(engine, clock)
    assert ids(engine.instances()) == ["t1", "t2", "t3", "t4", "l1", "l2"]


def test_instances_filters_by_machine(engine: Engine, clock: ManualClock) -> None:
    populate(engine, clock)
    assert ids(engine.instances(machine="light")) == ["l1", "l2"]


def test_instances_filters_by_state(engine: Engine, clock: ManualClock) -> None:
    populate(engine, clock)
    assert ids(engine.instances(state="in_progress")) == ["t2"]
    assert ids(engine.instances(state="open")) == ["t1", "t4"]  # cancel keeps the state
    assert ids(engine.instances(state="on")) == ["l2"]


def test_instances_filters_by_status(engine: Engine, clock: ManualClock) -> None:
    populate(engine, clock)
    assert ids(engine.instances(status="completed")) == ["t3"]
    assert ids(engine.instances(status="cancelled")) == ["t4"]
    assert ids(engine.instances(status="active")) == ["t1", "t2", "l1", "l2"]


def test_instances_combines_filters(engine: Engine, clock: ManualClock) -> None:
    populate(engine, clock)
    assert ids(engine.instances(machine="ticket", state="open", status="active")) == ["t1"]
    assert ids(engine.instances(machine="light", state="open")) == []
    assert ids(engine.instances(machine="ticket", status="active")) == ["t1", "t2"]


def test_instances_pages_with_limit_and_offset(engine: Engine, clock: ManualClock) -> None:
    populate(engine, clock)
    assert ids(engine.instances(limit=2)) == ["t1", "t2"]
    assert ids(engine.instances(limit=2, offset=2)) == ["t3", "t4"]
    assert ids(engine.instances(limit=10, offset=5)) == ["l2"]


def test_instances_with_a_negative_limit_is_an_invalid_argument(engine: Engine) -> None:
    with pytest.raises(InvalidArgument):
        engine.instances(limit=-1)


def test_instances_returns_snapshots_with_typed_contexts(engine: Engine, clock: ManualClock) -> None:
    populate(engine, clock)
    [t2] = engine.instances(state="in_progress")
    assert t2 == engine.get("t2")
    assert isinstance(t2.context, Ticket)
    [l2] = engine.instances(machine="light", state="on")
    assert l2.context == {}


# definitions in the database -----------------------------------------------------------------------


def test_register_stores_name_version_and_spec_json(engine: Engine, db_url: str) -> None:
    rows = raw_query(db_url, "SELECT name, version, spec FROM sm_definitions WHERE name = ?", ("ticket",))
    assert [(name, version) for name, version, _ in rows] == [("ticket", TICKET.version)]
    assert MachineSpec.model_validate_json(rows[0][2]) == TICKET.spec


def test_registering_the_same_definition_again_stores_it_once(engine: Engine, db_url: str) -> None:
    engine.register(TICKET)
    assert raw_query(db_url, "SELECT count(*) FROM sm_definitions WHERE name = ?", ("ticket",)) == [(1,)]


def test_registering_a_changed_definition_stores_a_second_version(engine: Engine, db_url: str) -> None:
    engine.register(LIGHT_V2)
    rows = raw_query(db_url, "SELECT version FROM sm_definitions WHERE name = ? ORDER BY version", ("light",))
    assert sorted(v for (v,) in rows) == sorted([LIGHT.version, LIGHT_V2.version])


def test_stored_spec_returns_the_registered_spec(engine: Engine) -> None:
    assert engine.stored_spec("ticket") == TICKET.spec


def test_stored_spec_returns_the_most_recently_registered_version(engine: Engine, clock: ManualClock) -> None:
    clock.advance("1s")
    engine.register(LIGHT_V2)
    assert engine.stored_spec("light") == LIGHT_V2.spec


def test_stored_spec_returns_the_later_of_two_versions_registered_at_the_same_instant(engine: Engine) -> None:
    engine.register(LIGHT_V2)  # the clock has not moved since LIGHT was registered
    assert engine.stored_spec("light") == LIGHT_V2.spec


def test_stored_spec_returns_an_older_version_by_hash(engine: Engine) -> None:
    engine.register(LIGHT_V2)
    assert engine.stored_spec("light", LIGHT.version) == LIGHT.spec


def test_stored_spec_needs_no_registration_in_this_engine(engine: Engine, db_url: str) -> None:
    other = Engine(db_url)
    try:
        assert other.stored_spec("ticket") == TICKET.spec
    finally:
        other.close()


def test_stored_spec_of_an_unknown_machine_raises_unknown_machine(engine: Engine) -> None:
    with pytest.raises(UnknownMachine):
        engine.stored_spec("nope")


def test_definition_returns_the_registered_definition(engine: Engine) -> None:
    assert engine.definition("ticket") is TICKET


def test_registering_something_that_is_not_a_definition_is_a_configuration_error(engine: Engine) -> None:
    with pytest.raises(ConfigurationError):
        engine.register(TICKET.spec)  # type: ignore[arg-type]


def test_a_new_version_applies_to_an_instance_once_it_is_migrated(engine: Engine) -> None:
    engine.start("light", instance_id="l1")
    engine.send("l1", "FLIP")
    engine.register(LIGHT_V2)
    with pytest.raises(EventNotAllowed):  # pinned to the version it started on (docs/versions.md)
        engine.send("l1", "BURN")
    engine.migrate(["l1"])
    assert engine.send("l1", "BURN").status == "completed"


# time zones ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_times_read_back_are_the_same_instants_whatever_the_session_time_zone(
    db_url: str, clock: ManualClock
) -> None:
    url = db_url + quote(" -ctimezone=Asia/Tokyo")
    eng = Engine(url, clock=clock)
    try:
        eng.register(LIGHT)
        eng.start("light", instance_id="l1")
        clock.advance("1h")
        sent = eng.send("l1", "FLIP", idempotency_key="k1")
        assert eng.get("l1") == sent
        assert eng.send("l1", "FLIP", idempotency_key="k1") == sent
        assert eng.get("l1").created_at == T0
        assert [r.at for r in eng.history("l1")] == [T0, T0 + timedelta(hours=1)]
    finally:
        eng.close()
