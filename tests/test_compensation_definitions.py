"""Compensation in definitions (checks, versions, YAML, lint) and in the schema (an older database
gains the columns and its effects still compensate)."""

from __future__ import annotations

import pytest
from saga_machines import END, Ledger, two_bookings

from statemachines import DefinitionError, Effect, machine, state
from statemachines.examples import trip_booking
from statemachines.testing import run_until_idle


def test_a_compensating_state_must_handle_done_compensation():
    with pytest.raises(DefinitionError, match=r"handles no 'done\.compensation'"):
        machine("bad", initial="a", states={"a": state(compensate=True, on={"X": "b"}), "b": END})


def test_done_compensation_is_an_event_only_a_compensating_state_hears():
    with pytest.raises(DefinitionError, match="never fires"):
        machine("bad", initial="a", states={"a": state(on={"done.compensation": "b"}), "b": END})


def test_the_compensate_callable_is_part_of_the_definition_and_its_version():
    def book(ctx, call):
        return None

    def undo(ctx, call):
        return None

    plain = machine("v", initial="a", states={"a": state(effect=Effect(book), on={"X": "b"}), "b": state()})
    undoable_a = state(effect=Effect(book, compensate=undo), on={"X": "b"})
    undoable = machine("v", initial="a", states={"a": undoable_a, "b": state()})
    assert plain.version != undoable.version
    assert undoable.spec.states["a"].effects[0].compensate == "undo"
    assert "compensate" not in plain.to_json()  # unchanged dumps (and versions) without it


def test_an_older_database_gains_the_compensation_columns_and_its_effects_still_compensate(db_url, clock):
    from persistence import migrations
    from statemachines import Engine

    ledger = Ledger()
    engine = Engine(db_url, clock=clock)
    engine.register(two_bookings(ledger))
    engine.start("two", instance_id="old")
    engine.run_due()  # book_a, book_b succeed
    previous = 4  # the schema before step 5 (compensation); later steps must apply again cleanly
    with engine.db.transaction() as cur:  # the schema as the step before this feature left it
        cur.execute("DROP INDEX ix_sm_token_uses_instance_id")
        for column in ("compensates", "done_seq"):
            cur.execute(f"ALTER TABLE sm_effects DROP COLUMN {column}")
        cur.execute(f"UPDATE sm_schema SET version = {previous}")
    engine.close()
    upgraded = Engine(db_url, clock=clock)
    try:
        upgraded.register(two_bookings(ledger))
        with upgraded.db.read() as cur:
            cur.execute("SELECT version FROM sm_schema")
            assert cur.fetchone()[0] == len(migrations.MIGRATIONS)
        upgraded.send("old", "UNDO")
        run_until_idle(upgraded)
        # rows from before the order of success was kept: newest first by id
        assert ledger.names()[-2:] == ["undo_b", "undo_a"]
        assert upgraded.get("old").state == "undone"
    finally:
        upgraded.close()


def test_lint_knows_a_compensating_state_receives_done_compensation(capsys):
    from statemachines.cli import main

    assert main(["lint", "--app", "statemachines.examples.trip_booking:trip"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_a_saga_round_trips_through_yaml_with_its_compensations(tmp_path):
    from statemachines import dump_definition, loads_definition

    dump_definition(trip_booking.trip, tmp_path / "trip.yaml")
    text = (tmp_path / "trip.yaml").read_text()
    assert "compensate: cancel_flight" in text and "compensate: true" in text
    loaded = loads_definition(text, trip_booking.registry)
    assert loaded.version == trip_booking.trip.version
