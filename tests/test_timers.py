"""Durable timers (`after=`): armed on entry, dropped on exit, fired once when due, never early."""

from __future__ import annotations

import threading
from datetime import timedelta

from blocking import wait_until_blocked_or_done

from statemachines import Engine, GuardRejected, machine, state, transition
from statemachines.timers import fire_due_timers

US = timedelta(microseconds=1)


def timer_records(engine: Engine, iid: str) -> list[str]:
    return [r.event for r in engine.history(iid) if r.event.startswith("after.")]


def reminder_machine():
    return machine(
        "reminder",
        initial="waiting",
        states={
            "waiting": state(on={"ANSWER": "answered"}, after={"1h": "expired"}),
            "answered": state(final=True),
            "expired": state(final=True),
        },
    )


def test_timer_does_not_fire_one_microsecond_before_it_is_due(engine, clock):
    engine.register(reminder_machine())
    engine.start("reminder", instance_id="r1")
    clock.advance(timedelta(hours=1) - US)
    assert engine.run_due() == 0
    assert engine.get("r1").state == "waiting"
    assert timer_records(engine, "r1") == []


def test_timer_fires_when_due_and_records_the_transition_as_the_timer(engine, clock):
    engine.register(reminder_machine())
    engine.start("reminder", instance_id="r1")
    due = clock.advance("1h")
    assert engine.run_due() == 1
    snap = engine.get("r1")
    assert (snap.state, snap.status, snap.version) == ("expired", "completed", 2)
    last = engine.history("r1")[-1]
    assert (last.event, last.source, last.target, last.actor, last.outcome, last.at) == (
        "after.1h", "waiting", "expired", "timer", "applied", due,
    )  # fmt: skip


def test_timer_fires_exactly_once(engine, clock):
    engine.register(reminder_machine())
    engine.start("reminder", instance_id="r1")
    clock.advance("1h")
    assert engine.run_due() == 1
    assert engine.run_due() == 0
    clock.advance("30d")
    assert engine.run_due() == 0
    assert timer_records(engine, "r1") == ["after.1h"]
    assert engine.status("r1").timers == []


def test_timer_of_a_state_left_before_it_is_due_never_fires(engine, clock):
    engine.register(reminder_machine())
    engine.start("reminder", instance_id="r1")
    clock.advance("59m")
    engine.send("r1", "ANSWER")
    assert engine.status("r1").timers == []
    clock.advance("1d")
    assert engine.run_due() == 0
    assert engine.get("r1").state == "answered"
    assert timer_records(engine, "r1") == []


def test_timer_key_may_be_a_timedelta_and_fires_as_its_canonical_text(engine, clock):
    engine.register(
        machine(
            "td",
            initial="a",
            states={"a": state(after={timedelta(minutes=90): "b"}), "b": state(final=True)},
        )
    )
    engine.start("td", instance_id="t1")
    clock.advance("89m")
    assert engine.run_due() == 0
    clock.advance("1m")
    assert engine.run_due() == 1
    assert timer_records(engine, "t1") == ["after.90m"]


def several_timers_machine():
    return machine(
        "several",
        initial="a",
        states={
            "a": state(after={"1h": "b", "2h": "c", "15m": "d"}),
            "b": state(final=True),
            "c": state(final=True),
            "d": state(after={"1d": "b"}),
        },
    )


def test_status_lists_every_timer_of_a_state_with_its_fire_time(engine, clock):
    engine.register(several_timers_machine())
    t0 = clock.now()
    engine.start("several", instance_id="s1")
    timers = engine.status("s1").timers
    assert [(t.event, t.state, t.fire_at) for t in timers] == [
        ("after.15m", "a", t0 + timedelta(minutes=15)),
        ("after.1h", "a", t0 + timedelta(hours=1)),
        ("after.2h", "a", t0 + timedelta(hours=2)),
    ]


def test_earliest_of_several_timers_wins_and_the_others_are_dropped(engine, clock):
    engine.register(several_timers_machine())
    engine.start("several", instance_id="s1")
    clock.advance("3h")  # all three are due; the earliest fires, leaving `a` drops the others
    engine.run_due()
    assert engine.get("s1").state == "d"
    assert timer_records(engine, "s1") == ["after.15m"]
    assert [t.event for t in engine.status("s1").timers] == ["after.1d"]


def test_timer_of_the_next_state_counts_from_when_that_state_was_entered(engine, clock):
    engine.register(several_timers_machine())
    t0 = clock.now()
    engine.start("several", instance_id="s1")
    clock.advance("3h")  # `after.15m` was due at 15m but fires now, at 3h
    engine.run_due()
    [timer] = engine.status("s1").timers
    assert timer.fire_at == t0 + timedelta(hours=3, days=1)
    clock.advance(timedelta(days=1) - US)
    assert engine.run_due() == 0


def bump(ctx: dict, event) -> None:
    ctx["nudges"] = ctx.get("nudges", 0) + 1


def internal_timer_machine():
    return machine(
        "nudge",
        initial="waiting",
        states={
            "waiting": state(
                on={"ANSWER": "done"},
                after={"1h": transition(None, action=bump), "3h": "given_up"},
            ),
            "done": state(final=True),
            "given_up": state(final=True),
        },
    )


def test_internal_transition_timer_runs_its_action_once_without_leaving_the_state(engine, clock):
    engine.register(internal_timer_machine())
    engine.start("nudge", instance_id="n1")
    clock.advance("1h")
    assert engine.run_due() == 1
    snap = engine.get("n1")
    assert (snap.state, snap.status, snap.context) == ("waiting", "active", {"nudges": 1})
    clock.advance("1h")
    assert engine.run_due() == 0
    assert timer_records(engine, "n1") == ["after.1h"]


def test_internal_transition_timer_leaves_the_other_timers_of_the_state_armed(engine, clock):
    engine.register(internal_timer_machine())
    t0 = clock.now()
    engine.start("nudge", instance_id="n1")
    clock.advance("1h")
    engine.run_due()
    assert [(t.event, t.fire_at) for t in engine.status("n1").timers] == [
        ("after.3h", t0 + timedelta(hours=3))
    ]
    clock.advance("2h")
    engine.run_due()
    assert engine.get("n1").state == "given_up"
    assert timer_records(engine, "n1") == ["after.1h", "after.3h"]


def test_external_self_transition_rearms_the_timer_from_the_new_entry(engine, clock):
    engine.register(
        machine(
            "poke",
            initial="idle",
            states={"idle": state(on={"POKE": "idle"}, after={"1h": "asleep"}), "asleep": state(final=True)},
        )
    )
    t0 = clock.now()
    engine.start("poke", instance_id="p1")
    clock.advance("30m")
    engine.send("p1", "POKE")
    assert [t.fire_at for t in engine.status("p1").timers] == [t0 + timedelta(minutes=90)]
    clock.advance(timedelta(hours=1) - US)  # past the first arming, 1 µs before the second
    assert engine.run_due() == 0
    assert engine.get("p1").state == "idle"
    clock.advance(US)
    assert engine.run_due() == 1
    assert engine.get("p1").state == "asleep"
    assert timer_records(engine, "p1") == ["after.1h"]


def never(ctx, event) -> bool:
    return False


def test_timer_refused_by_its_guard_is_recorded_rejected_and_not_fired_again(engine, clock):
    engine.register(
        machine(
            "guarded",
            initial="a",
            states={"a": state(after={"1h": transition("b", guard=never)}), "b": state(final=True)},
        )
    )
    engine.start("guarded", instance_id="g1")
    clock.advance("1h")
    assert engine.run_due() == 1
    last = engine.history("g1")[-1]
    assert (last.event, last.outcome) == ("after.1h", "rejected")
    assert GuardRejected.__name__ in last.reason
    assert engine.get("g1").state == "a"
    clock.advance("1d")
    assert engine.run_due() == 0
    assert len(engine.history("g1")) == 2


def test_timers_of_many_instances_all_fire_in_one_run_due(engine, clock):
    engine.register(reminder_machine())
    for i in range(25):
        engine.start("reminder", instance_id=f"r{i}")
    clock.advance("1h")
    assert engine.run_due(batch=7) == 25  # several batches in one call
    assert {s.state for s in engine.instances(machine="reminder")} == {"expired"}


def test_send_racing_a_worker_that_fires_the_same_instance_timer_never_deadlocks(engine, clock):
    """The send holds the instance while its action runs; the worker claims the timer meanwhile.

    Both must lock the instance before the timer, or PostgreSQL aborts one of them (the send
    with `StorageUnavailable: deadlock detected`)."""
    in_action, release = threading.Event(), threading.Event()

    def slow_approve(ctx: dict, event) -> None:
        in_action.set()
        assert release.wait(20), "the worker never tried the instance"

    engine.register(
        machine(
            "race",
            initial="a",
            states={
                "a": state(on={"GO": transition("b", action=slow_approve)}, after={"1h": "late"}),
                "b": state(final=True),
                "late": state(final=True),
            },
        )
    )
    engine.start("race", instance_id="r1")
    clock.advance("1h")
    outcome: dict[str, object] = {}

    def send() -> None:
        try:
            outcome["send"] = engine.send("r1", "GO").state
        except Exception as exc:  # reported below
            outcome["send"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    assert in_action.wait(10)
    fired: list[int] = []
    worker = threading.Thread(target=lambda: fired.append(fire_due_timers(engine.runtime)))
    worker.start()
    # The send keeps the instance until the worker has tried it: waiting for its lock (SQLite,
    # and PostgreSQL if it locked the timer first) or done without it (PostgreSQL SKIP LOCKED).
    wait_until_blocked_or_done(engine.db.url, worker)
    release.set()
    sender.join(10)
    worker.join(10)
    assert outcome["send"] == "b"
    assert fired[0] == 0 or engine.run_due() == 0
    assert [r.event for r in engine.history("r1")] == ["start", "GO"]
