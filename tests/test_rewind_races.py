"""A rewind racing a timer firing, and a rewind racing a send, on one instance: exactly one of the
two takes effect, the loser is refused (or finds its timer gone), and the history stays gap-free.

Each side runs on its own engine (its own connections) in its own thread, released together by a
barrier, many times over; which side wins is the scheduler's business and is not asserted, only
that the outcome is one of the two consistent ones. On SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest

from statemachines import Engine, EventRejected, InstanceClosed, ManualClock, machine, state

ROUNDS = 12


def race_machine() -> Any:
    return machine(
        "race",
        initial="drafting",
        states={
            "drafting": state(on={"SUBMIT": "reviewing"}),
            "reviewing": state(after={"1h": "escalated"}, on={"APPROVE": "published"}),
            "escalated": state(final=True),
            "published": state(final=True),
        },
    )


def both(first: Callable[[], Any], second: Callable[[], Any]) -> list[Any]:
    """Run two calls at once on two threads; each result is its return value or its exception."""
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def run(i: int, fn: Callable[[], Any]) -> None:
        barrier.wait(timeout=30)
        try:
            results[i] = fn()
        except Exception as exc:  # the loser's refusal is part of the outcome
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def assert_gap_free(engine: Engine, iid: str) -> list[Any]:
    history = engine.history(iid)
    assert [r.seq for r in history] == list(range(1, len(history) + 1))
    for before, after in itertools.pairwise(history):
        assert after.source == before.target, f"record {after.seq} does not follow record {before.seq}"
    return history


@pytest.fixture
def engines(db_url: str) -> Any:
    clock = ManualClock()
    pair = [Engine(db_url, clock=clock) for _ in range(2)]
    for e in pair:
        e.register(race_machine())
    yield pair, clock
    for e in pair:
        e.close()


def test_a_rewind_racing_a_timer_firing_lets_exactly_one_take_effect(engines):
    (a, b), clock = engines
    outcomes = set()
    for i in range(ROUNDS):
        iid = f"t{i}"
        a.start("race", instance_id=iid)
        a.send(iid, "SUBMIT")
        clock.advance("2h")  # the review deadline has passed: the timer is due
        rewound, fired = both(lambda iid=iid: a.rewind(iid, "drafting"), b.run_due)
        snap = a.get(iid)
        history = assert_gap_free(a, iid)
        events = [r.event for r in history]
        if isinstance(rewound, InstanceClosed):  # the timer won
            assert fired == 1 and (snap.state, snap.status) == ("escalated", "completed")
            assert events == ["start", "SUBMIT", "after.1h"]
            outcomes.add("timer")
        else:  # the rewind won: the old entry's timer is gone, nothing fired
            assert snap.state == rewound.state == "drafting" and snap.status == "active"
            assert fired == 0 and a.status(iid).timers == []
            assert events == ["start", "SUBMIT", "rewind"]
            outcomes.add("rewind")
    print(f"\nwinners: {sorted(outcomes)}")  # which side wins is not asserted


def test_a_rewind_racing_a_send_lets_exactly_one_take_effect(engines):
    (a, b), _clock = engines
    for i in range(ROUNDS):
        iid = f"s{i}"
        a.start("race", instance_id=iid)
        a.send(iid, "SUBMIT")
        rewound, sent = both(
            lambda iid=iid: a.rewind(iid, "drafting"), lambda iid=iid: b.send(iid, "APPROVE")
        )
        snap = a.get(iid)
        history = assert_gap_free(a, iid)
        if isinstance(rewound, InstanceClosed):  # the send won
            assert sent.state == snap.state == "published"
            assert [r.event for r in history] == ["start", "SUBMIT", "APPROVE"]
        else:  # the rewind won: APPROVE found the instance in drafting and was refused (recorded)
            assert isinstance(sent, EventRejected)
            assert snap.state == "drafting"
            tail = [(r.event, r.outcome) for r in history[2:]]
            assert tail == [("rewind", "rewound"), ("APPROVE", "rejected")]


def test_two_rewinds_with_one_idempotency_key_apply_once(engines):
    (a, b), _clock = engines
    a.start("race", instance_id="k")
    a.send("k", "SUBMIT")
    first, second = both(
        lambda: a.rewind("k", "drafting", idempotency_key="once"),
        lambda: b.rewind("k", "drafting", idempotency_key="once"),
    )
    assert first == second
    assert [r.event for r in assert_gap_free(a, "k")] == ["start", "SUBMIT", "rewind"]


def test_a_rewind_reopening_an_instance_racing_prune_lets_exactly_one_take_effect(engines):
    from statemachines import InstanceNotFound

    (a, b), clock = engines
    outcomes = set()
    for i in range(ROUNDS):
        iid = f"p{i}"
        a.start("race", instance_id=iid)
        a.send(iid, "SUBMIT")
        a.send(iid, "APPROVE")
        clock.advance("2d")
        rewound, report = both(
            lambda iid=iid: a.rewind(iid, "drafting", reopen=True), lambda: b.prune(before="1d")
        )
        assert not isinstance(report, Exception), report
        if isinstance(rewound, InstanceNotFound):  # prune won: nothing of it is left
            assert report.instances == 1 and iid not in [s.id for s in a.instances(limit=1000)]
            outcomes.add("prune")
        else:  # the rewind won: the instance is live again, with its whole history
            assert report.instances == 0 and a.get(iid).status == "active"
            assert [r.event for r in assert_gap_free(a, iid)] == ["start", "SUBMIT", "APPROVE", "rewind"]
            outcomes.add("rewind")
    print(f"\nwinners: {sorted(outcomes)}")  # which side wins is not asserted
