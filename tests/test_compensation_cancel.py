"""`cancel(id, compensate=True)`: cancelled at once, then the succeeded effects compensated on the
cancelled instance; an exhausted compensation fails it and `retry` completes the cancel."""

from __future__ import annotations

import pytest
from saga_machines import NO_RETRY, Ledger

from statemachines import Effect, machine, state
from statemachines.testing import run_until_idle


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


def test_cancel_with_compensate_whose_compensation_fails_fails_then_retry_completes_the_cancel(engine, clock):
    ledger = Ledger()
    ledger.fail["undo_a"] = None
    f = ledger.fn
    engine.register(
        machine(
            "order",
            initial="a",
            states={
                "a": state(
                    effect=Effect(f("book_a"), compensate=f("undo_a"), retry=NO_RETRY),
                    on={"done.book_a": "b"},
                ),
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


def test_cancel_with_compensate_of_a_statechart_in_parallel_regions(engine, clock):
    from statemachines import parallel

    ledger = Ledger()
    f = ledger.fn
    engine.register(
        machine(
            "regions",
            initial="both",
            states={
                "both": parallel(
                    {
                        "left": state(
                            initial="a",
                            states={"a": state(effect=Effect(f("book_a"), compensate=f("undo_a")))},
                        ),
                        "right": state(
                            initial="b",
                            states={"b": state(effect=Effect(f("book_b"), compensate=f("undo_b")))},
                        ),
                    }
                )
            },
        )
    )
    engine.start("regions", instance_id="p1")
    run_until_idle(engine)
    assert engine.cancel("p1", compensate=True).status == "cancelled"
    run_until_idle(engine)
    booked = [n for n in ledger.names() if n.startswith("book")]
    assert ledger.names()[2:] == [f"undo_{n[-1]}" for n in reversed(booked)]
    assert [(r.event, r.outcome) for r in engine.history("p1")][-1] == ("done.compensation", "recorded")
    assert engine.get("p1").status == "cancelled"


def test_cancel_with_compensate_while_compensating_goes_on_with_the_same_chain(engine, clock):
    from statemachines import Retry

    ledger = Ledger()
    ledger.fail["undo_b"] = 1  # fails once: its next attempt is an hour away
    f = ledger.fn
    slow = Retry(max_attempts=5, initial="1h", max="2h", jitter=0)
    engine.register(
        machine(
            "undo-cancel",
            initial="a",
            states={
                "a": state(effect=Effect(f("book_a"), compensate=f("undo_a")), on={"done.book_a": "b"}),
                "b": state(effect=Effect(f("book_b"), compensate=f("undo_b"), retry=slow),
                           on={"done.book_b": "undoing"}),
                "undoing": state(compensate=True, on={"done.compensation": "undone"}),
                "undone": state(final=True),
            },
        )
    )  # fmt: skip
    engine.start("undo-cancel", instance_id="u1")
    engine.run_due()  # book_a, book_b, undo_b's first attempt fails; undo_a waits
    assert engine.cancel("u1", compensate=True).status == "cancelled"
    run_until_idle(engine)
    undo_b_keys = {k for n, k, _a in ledger.calls if n == "undo_b"}
    assert ledger.names() == ["book_a", "book_b", "undo_b", "undo_b", "undo_a"]
    assert len(undo_b_keys) == 1  # the same compensation, not a second one
    assert engine.history("u1")[-1].event == "done.compensation"
    assert engine.get("u1").status == "cancelled"


def test_cancel_with_compensate_while_a_nested_state_compensates_keeps_its_keys(engine, clock):
    from statemachines import Retry

    ledger = Ledger()
    ledger.fail["undo_b"] = 1
    f = ledger.fn
    slow = Retry(max_attempts=5, initial="1h", max="2h", jitter=0)
    engine.register(
        machine(
            "nested-undo",
            initial="work",
            states={
                "work": state(initial="a", states={
                    "a": state(effect=Effect(f("book_a"), compensate=f("undo_a")), on={"done.book_a": "b"}),
                    "b": state(effect=Effect(f("book_b"), compensate=f("undo_b"), retry=slow),
                               on={"done.book_b": "undo"}),
                    "undo": state(compensate=True, on={"done.compensation": "undone"}),
                }),
                "undone": state(final=True),
            },
        )
    )  # fmt: skip
    engine.start("nested-undo", instance_id="n1")
    engine.run_due()  # book_a, book_b, undo_b fails once; undo_a waits
    engine.cancel("n1", compensate=True)
    run_until_idle(engine)
    assert ledger.names() == ["book_a", "book_b", "undo_b", "undo_b", "undo_a"]
    assert len({k for n, k, _a in ledger.calls if n == "undo_b"}) == 1
    assert engine.get("n1").status == "cancelled"
