"""Compensation (sagas): succeeded effects undone newest first through the outbox, each once with
its own key and retries; `done.compensation` after the last; exhaustion fails the instance and
`retry` redrives it. On SQLite and PostgreSQL."""

from __future__ import annotations

import json

from saga_machines import NO_RETRY, Ledger, saga

from statemachines import Effect, Retry, machine, state, transition
from statemachines.examples import trip_booking
from statemachines.testing import run_until_idle


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


def test_nothing_to_compensate_sends_done_compensation_at_once_with_an_empty_list(engine, clock):
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
    assert engine.history("e1")[-1].payload == {"compensated": []}


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


def test_the_trip_booking_example_cancels_the_hotel_then_the_flight(engine, clock):
    out = trip_booking.run(engine, clock)
    assert out["trip-ok"]["state"] == "booked"
    failed = out["trip-no-car"]
    assert (failed["state"], failed["status"]) == ("rolled_back", "completed")
    assert failed["context"]["compensated"] == ["book_hotel", "book_flight"]
    hotel, flight = failed["context"]["hotel"], failed["context"]["flight"]
    assert out["log"][-2:] == [f"cancel {hotel}", f"cancel {flight}"]
    assert ("done.compensate.book_hotel", "recorded") in failed["events"]


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


def test_a_statechart_with_nothing_to_compensate_gets_done_compensation(engine):
    def down(ctx, call):
        raise RuntimeError("down")

    engine.register(
        machine(
            "chart-empty",
            initial="work",
            states={
                "work": state(
                    initial="x",
                    states={
                        "x": state(effect=Effect(down, retry=NO_RETRY), on={"error.down": transition("undo")})
                    },
                ),
                "undo": state(compensate=True, on={"done.compensation": "undone"}),
                "undone": state(final=True),
            },
        )
    )
    engine.start("chart-empty", instance_id="e1")
    run_until_idle(engine)
    assert engine.get("e1").state == "undone"


def test_compensations_follow_the_order_of_success_not_of_arming(engine, clock):
    from statemachines import parallel

    ledger = Ledger()
    ledger.fail["book_a"] = 1  # armed first, succeeds second (on its retry)
    f = ledger.fn
    retry = Retry(max_attempts=3, initial="1s", jitter=0)
    engine.register(
        machine(
            "regions-saga",
            initial="both",
            states={
                "both": parallel(
                    {
                        "left": state(initial="a", states={
                            "a": state(effect=Effect(f("book_a"), compensate=f("undo_a"), retry=retry),
                                       on={"done.book_a": "a_done"}),
                            "a_done": state(final=True),
                        }),
                        "right": state(initial="b", states={
                            "b": state(effect=Effect(f("book_b"), compensate=f("undo_b")),
                                       on={"done.book_b": "b_done"}),
                            "b_done": state(final=True),
                        }),
                    },
                    on={"done.state.both": "undo"},
                ),
                "undo": state(compensate=True, on={"done.compensation": "undone"}),
                "undone": state(final=True),
            },
        )
    )  # fmt: skip
    engine.start("regions-saga", instance_id="r1")
    run_until_idle(engine)
    assert ledger.names() == ["book_a", "book_b", "book_a", "undo_a", "undo_b"]
    assert engine.history("r1")[-1].payload == {"compensated": ["book_a", "book_b"]}
