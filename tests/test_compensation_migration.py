"""Compensation across a migration to another definition version: the compensations of a
compensating state kept by the migration go on, and a state mapped into a compensating one
compensates like any entry. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from saga_machines import Ledger

from statemachines import Effect, Retry, machine, state
from statemachines.testing import run_until_idle

SLOW = Retry(max_attempts=5, initial="1h", max="2h", jitter=0)


def saga(ledger: Ledger, description: str) -> Any:
    f = ledger.fn
    return machine(
        "mig-saga",
        initial="a",
        description=description,  # another version of the same machine
        states={
            "a": state(effect=Effect(f("book_a"), compensate=f("undo_a")), on={"done.book_a": "b"}),
            "b": state(effect=Effect(f("book_b"), compensate=f("undo_b"), retry=SLOW),
                       on={"done.book_b": "undoing"}),
            "undoing": state(compensate=True, on={"done.compensation": "undone"}),
            "undone": state(final=True),
        },
    )  # fmt: skip


def test_a_migration_keeps_the_compensations_of_a_compensating_state_it_keeps(engine):
    ledger = Ledger()
    ledger.fail["undo_b"] = None
    engine.register(saga(ledger, "v1"))
    engine.start("mig-saga", instance_id="m1")
    engine.run_due()  # book_a, book_b, then undo_b fails once; undo_a waits behind it
    engine.register(saga(ledger, "v2"))
    report = engine.migrate(["m1"])
    assert report.migrated[0].effects_cancelled == ()
    ledger.fail["undo_b"] = 0
    run_until_idle(engine)
    assert ledger.names()[-2:] == ["undo_b", "undo_a"]
    assert engine.get("m1").state == "undone"


def test_a_state_mapped_into_a_compensating_state_compensates(engine):
    ledger = Ledger()
    f = ledger.fn
    booked = Effect(f("book_a"), compensate=f("undo_a"))
    engine.register(
        machine(
            "mapped",
            initial="a",
            states={
                "a": state(effect=booked, on={"done.book_a": "held"}),
                "held": state(on={"CLOSE": "end"}),
                "end": state(final=True),
            },
        )
    )
    engine.start("mapped", instance_id="p1")
    run_until_idle(engine)
    engine.register(
        machine(
            "mapped",
            initial="a",
            states={
                "a": state(effect=booked, on={"done.book_a": "undoing"}),
                "undoing": state(compensate=True, on={"done.compensation": "end"}),
                "end": state(final=True),
            },
        )
    )
    engine.migrate(["p1"], state_map={"held": "undoing"})
    run_until_idle(engine)
    assert ledger.names() == ["book_a", "undo_a"]
    assert engine.get("p1").state == "end"
