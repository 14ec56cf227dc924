"""Compensation (sagas): succeeded effects undone newest first through the outbox, each once with
its own key and retries; `done.compensation` after the last; exhaustion fails the instance and
`retry` redrives it; `cancel(id, compensate=True)`. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from statemachines import DefinitionError, Effect, Retry, machine, state, transition
from statemachines.examples import trip_booking
from statemachines.testing import run_until_idle

NO_RETRY = Retry(max_attempts=1)
END = state(final=True)


class Ledger:
    """Records every call (name, key, attempt); `fail` names calls that raise, `fail_times` how
    many of their attempts do (None: every one)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.fail: dict[str, int | None] = {}

    def fn(self, name: str) -> Any:
        def call(ctx: Any, c: Any) -> Any:
            self.calls.append((name, c.key, c.attempt))
            limit = self.fail.get(name, 0)
            if limit is None or c.attempt <= limit:
                raise RuntimeError(f"{name} is down")
            return {"ref": f"{name}-{c.attempt}"}

        call.__name__ = name
        return call

    def names(self) -> list[str]:
        return [n for n, _k, _a in self.calls]


def saga(ledger: Ledger, *, undo_retry: Retry = NO_RETRY) -> Any:
    """a books A, b books B, c books C (no undo); c's failure goes to `undoing`."""
    f = ledger.fn
    return machine(
        "saga",
        initial="a",
        states={
            "a": state(effect=Effect(f("book_a"), compensate=f("undo_a"), retry=undo_retry),
                       on={"done.book_a": "b"}),
            "b": state(effect=Effect(f("book_b"), compensate=f("undo_b"), retry=undo_retry),
                       on={"done.book_b": "c"}),
            "c": state(effect=Effect(f("book_c"), retry=NO_RETRY),
                       on={"done.book_c": "ok", "error.book_c": "undoing"}),
            "undoing": state(compensate=True, on={"done.compensation": "undone"}),
            "ok": state(final=True),
            "undone": state(final=True),
        },
    )  # fmt: skip


def test_compensations_run_in_reverse_order_of_success_then_done_compensation(engine, clock):
    ledger = Ledger()
    ledger.fail["book_c"] = None
    engine.register(saga(ledger))
    engine.start("saga", instance_id="s1")
    run_until_idle(engine)
    assert ledger.names() == ["book_a", "book_b", "book_c", "undo_b", "undo_a"]
    snap = engine.get("s1")
    assert (snap.state, snap.status) == ("undone", "completed")
    last = engine.history("s1")[-1]
    assert (last.event, last.outcome, last.payload) == (
        "done.compensation", "applied", {"compensated": ["book_b", "book_a"]},
    )  # fmt: skip


def test_each_compensation_success_is_a_recorded_history_record(engine, clock):
    ledger = Ledger()
    ledger.fail["book_c"] = None
    engine.register(saga(ledger))
    engine.start("saga", instance_id="s1")
    run_until_idle(engine)
    recorded = [(r.event, r.source, r.target) for r in engine.history("s1") if r.outcome == "recorded"]
    assert recorded == [
        ("done.compensate.book_b", "undoing", "undoing"),
        ("done.compensate.book_a", "undoing", "undoing"),
    ]
    seqs = [r.seq for r in engine.history("s1")]
    assert seqs == list(range(1, len(seqs) + 1))


def test_each_compensation_has_its_own_key_naming_the_effect_it_undoes(engine, clock):
    ledger = Ledger()
    ledger.fail["book_c"] = None
    engine.register(saga(ledger))
    engine.start("saga", instance_id="s1")
    run_until_idle(engine)
    keys = {n: k for n, k, _ in ledger.calls}
    undo_b = json.loads(keys["undo_b"])
    assert undo_b[:2] == ["compensate", "undoing"]
    assert undo_b[3:] == json.loads(keys["book_b"])  # the undone effect's own key parts
    assert len(set(keys.values())) == len(keys)


def test_a_failing_compensation_is_retried_with_the_same_key(engine, clock):
    ledger = Ledger()
    ledger.fail.update(book_c=None, undo_b=2)
    engine.register(saga(ledger, undo_retry=Retry(max_attempts=3, initial="1s", jitter=0)))
    engine.start("saga", instance_id="s1")
    run_until_idle(engine)
    undo_b = [(k, a) for n, k, a in ledger.calls if n == "undo_b"]
    assert [a for _k, a in undo_b] == [1, 2, 3]
    assert len({k for k, _a in undo_b}) == 1
    assert engine.get("s1").state == "undone"
    assert ledger.names()[-1] == "undo_a"  # the next one waited for undo_b's success


def test_an_exhausted_compensation_fails_the_instance_naming_it(engine, clock):
    ledger = Ledger()
    ledger.fail.update(book_c=None, undo_b=None)
    engine.register(saga(ledger))
    engine.start("saga", instance_id="s1")
    run_until_idle(engine)
    snap = engine.get("s1")
    assert (snap.state, snap.status) == ("undoing", "failed")
    last = engine.history("s1")[-1]
    assert (last.event, last.outcome) == ("error.compensate.book_b", "failed")
    assert "compensation of effect 'book_b' failed 1 times" in last.reason
    assert "undo_a" not in ledger.names()  # queued behind the failed one


def test_retry_redrives_an_exhausted_compensation_and_the_chain_goes_on(engine, clock):
    ledger = Ledger()
    ledger.fail.update(book_c=None, undo_b=None)
    engine.register(saga(ledger))
    engine.start("saga", instance_id="s1")
    run_until_idle(engine)
    ledger.fail["undo_b"] = 0  # the cause is fixed
    engine.retry("s1")
    run_until_idle(engine)
    assert ledger.names()[-2:] == ["undo_b", "undo_a"]
    assert engine.get("s1").state == "undone"


def test_nothing_to_compensate_sends_done_compensation_at_once(engine, clock):
    def book(ctx, call):
        raise RuntimeError("down")

    def undo(ctx, call):
        return None

    engine.register(
        machine(
            "empty-saga",
            initial="a",
            states={
                "a": state(
                    effect=Effect(book, compensate=undo, retry=NO_RETRY), on={"error.book": "undoing"}
                ),
                "undoing": state(compensate=True, on={"done.compensation": "undone"}),
                "undone": state(final=True),
            },
        )
    )
    engine.start("empty-saga", instance_id="e1")
    run_until_idle(engine)
    assert engine.get("e1").state == "undone"
    assert engine.history("e1")[-1].payload == {}


def test_effects_without_a_compensate_callable_are_not_compensated(engine, clock):
    ledger = Ledger()
    ledger.fail["book_c"] = None
    f = ledger.fn
    engine.register(
        machine(
            "partial",
            initial="a",
            states={
                "a": state(effect=Effect(f("book_a")), on={"done.book_a": "c"}),
                "c": state(effect=Effect(f("book_c"), retry=NO_RETRY), on={"error.book_c": "undoing"}),
                "undoing": state(compensate=True, on={"done.compensation": "undone"}),
                "undone": state(final=True),
            },
        )
    )
    engine.start("partial", instance_id="p1")
    run_until_idle(engine)
    assert ledger.names() == ["book_a", "book_c"]
    assert engine.get("p1").state == "undone"


def test_entering_a_compensating_state_again_compensates_only_what_is_left(engine, clock):
    ledger = Ledger()
    f = ledger.fn
    engine.register(
        machine(
            "again",
            initial="a",
            states={
                "a": state(effect=Effect(f("book_a"), compensate=f("undo_a")), on={"done.book_a": "undoing"}),
                "undoing": state(compensate=True, on={"done.compensation": "idle"}),
                "idle": state(on={"BOOK": "b", "UNDO": "undoing"}),
                "b": state(effect=Effect(f("book_b"), compensate=f("undo_b")), on={"done.book_b": "undoing"}),
            },
        )
    )
    engine.start("again", instance_id="g1")
    run_until_idle(engine)
    engine.send("g1", "BOOK")
    run_until_idle(engine)
    engine.send("g1", "UNDO")
    run_until_idle(engine)
    assert ledger.names() == ["book_a", "undo_a", "book_b", "undo_b"]
    assert engine.get("g1").state == "idle"


def test_leaving_the_compensating_state_cancels_the_compensations_not_yet_run(engine, clock):
    ledger = Ledger()
    ledger.fail["undo_b"] = None
    f = ledger.fn
    slow = Retry(max_attempts=5, initial="1h", max="2h", jitter=0)
    engine.register(
        machine(
            "leave",
            initial="a",
            states={
                "a": state(effect=Effect(f("book_a"), compensate=f("undo_a")), on={"done.book_a": "b"}),
                "b": state(
                    effect=Effect(f("book_b"), compensate=f("undo_b"), retry=slow),
                    on={"done.book_b": "undoing"},
                ),
                "undoing": state(compensate=True, on={"done.compensation": "undone", "ABORT": "aborted"}),
                "undone": state(final=True),
                "aborted": state(final=True),
            },
        )
    )
    engine.start("leave", instance_id="l1")
    engine.run_due()  # book_a, book_b, then undo_b fails once (next attempt in an hour)
    engine.send("l1", "ABORT")
    run_until_idle(engine)
    assert ledger.names() == ["book_a", "book_b", "undo_b"]
    statuses = {r.name: r.status for r in engine.effects("l1")}
    assert statuses["compensate.book_b"] == "cancelled"
    assert statuses["compensate.book_a"] == "cancelled"


def test_cancel_with_compensate_closes_the_instance_and_undoes_its_effects(engine, clock):
    ledger = Ledger()
    f = ledger.fn
    engine.register(
        machine(
            "order",
            initial="a",
            states={
                "a": state(effect=Effect(f("book_a"), compensate=f("undo_a")), on={"done.book_a": "b"}),
                "b": state(effect=Effect(f("book_b"), compensate=f("undo_b")), on={"PAY": "done"}),
                "done": state(final=True),
            },
        )
    )
    engine.start("order", instance_id="o1")
    run_until_idle(engine)
    snap = engine.cancel("o1", "customer changed their mind", compensate=True)
    assert snap.status == "cancelled"
    with pytest.raises(Exception, match="cancelled"):
        engine.send("o1", "PAY")
    run_until_idle(engine)
    assert ledger.names() == ["book_a", "book_b", "undo_b", "undo_a"]
    history = engine.history("o1")
    assert [r.event for r in history[-4:]] == [
        "cancel", "done.compensate.book_b", "done.compensate.book_a", "done.compensation",
    ]  # fmt: skip
    assert engine.get("o1").status == "cancelled"


def test_cancel_with_compensate_whose_compensation_fails_fails_then_retry_completes_the_cancel(
    engine, clock
):
    ledger = Ledger()
    ledger.fail["undo_a"] = None
    f = ledger.fn
    engine.register(
        machine(
            "order",
            initial="a",
            states={
                "a": state(effect=Effect(f("book_a"), compensate=f("undo_a"), retry=NO_RETRY),
                           on={"done.book_a": "b"}),
                "b": state(on={"PAY": "done"}),
                "done": state(final=True),
            },
        )
    )
    engine.start("order", instance_id="o1")
    run_until_idle(engine)
    engine.cancel("o1", compensate=True)
    run_until_idle(engine)
    assert engine.get("o1").status == "failed"
    ledger.fail["undo_a"] = 0
    engine.retry("o1")
    run_until_idle(engine)
    snap = engine.get("o1")
    assert (snap.status, snap.state) == ("cancelled", "b")
    assert engine.history("o1")[-1].event == "done.compensation"


def test_the_trip_booking_example_cancels_the_hotel_then_the_flight(engine, clock):
    out = trip_booking.run(engine, clock)
    assert out["trip-ok"]["state"] == "booked"
    failed = out["trip-no-car"]
    assert (failed["state"], failed["status"]) == ("rolled_back", "completed")
    assert failed["context"]["compensated"] == ["book_hotel", "book_flight"]
    hotel, flight = failed["context"]["hotel"], failed["context"]["flight"]
    assert out["log"][-2:] == [f"cancel {hotel}", f"cancel {flight}"]
    assert ("done.compensate.book_hotel", "recorded") in failed["events"]


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


def test_compensation_in_a_statechart_region(engine, clock):
    ledger = Ledger()
    ledger.fail["book_c"] = None
    f = ledger.fn
    engine.register(
        machine(
            "chart-saga",
            initial="work",
            states={
                "work": state(
                    initial="a",
                    states={
                        "a": state(
                            effect=Effect(f("book_a"), compensate=f("undo_a")), on={"done.book_a": "c"}
                        ),
                        "c": state(
                            effect=Effect(f("book_c"), retry=NO_RETRY),
                            on={"error.book_c": transition("undo")},
                        ),
                    },
                ),
                "undo": state(compensate=True, on={"done.compensation": "undone"}),
                "undone": state(final=True),
            },
        )
    )
    engine.start("chart-saga", instance_id="c1")
    run_until_idle(engine)
    assert ledger.names() == ["book_a", "book_c", "undo_a"]
    assert engine.get("c1").state == "undone"


def two_bookings(ledger: Ledger) -> Any:
    f = ledger.fn
    return machine(
        "two",
        initial="a",
        states={
            "a": state(effect=Effect(f("book_a"), compensate=f("undo_a")), on={"done.book_a": "b"}),
            "b": state(effect=Effect(f("book_b"), compensate=f("undo_b")), on={"done.book_b": "held"}),
            "held": state(on={"UNDO": "undoing"}),
            "undoing": state(compensate=True, on={"done.compensation": "undone"}),
            "undone": state(final=True),
        },
    )


def test_an_older_database_gains_the_compensation_columns_and_its_effects_still_compensate(db_url, clock):
    from persistence import migrations
    from statemachines import Engine

    ledger = Ledger()
    engine = Engine(db_url, clock=clock)
    engine.register(two_bookings(ledger))
    engine.start("two", instance_id="old")
    engine.run_due()  # book_a, book_b succeed
    previous = len(migrations.MIGRATIONS) - 1
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
