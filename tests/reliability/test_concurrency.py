"""Concurrency: 8 processes send keyed events to 10 instances while a worker fires timers.

No lost update (the counter equals the applied events, each snapshot a sender got back has a
distinct version that matches history), no duplicate (every key once in history, even when all 8
processes race on the same key), no deadlock or hang (only the documented rejections, and all
processes finish in time), every accepted event in history.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from blocking import wait_until_blocked_or_done

from reliability.support import (
    BUSY,
    T0,
    Facts,
    check_busy_instance,
    error_text,
    kill,
    launch,
    raw_rows,
    record,
    scale,
    start_busy,
)
from statemachines import Effect, Engine, EventNotAllowed, ManualClock, SystemClock, machine, state

PROCESSES = 8
EVENTS = scale(100, 1000)
INSTANCES = [f"c{i}" for i in range(10)]


@pytest.mark.timeout(scale(170, 1800))
def test_eight_processes_lose_nothing_duplicate_nothing_and_never_deadlock(
    db_url: str, tmp_path: Path
) -> None:
    engine = Engine(db_url)
    engine.register(BUSY)
    start_busy(engine, INSTANCES)
    stop = tmp_path / "stop"
    err = tmp_path / "children.err"
    timer_out = tmp_path / "timers.json"
    t0 = time.perf_counter()
    worker = launch("timers", [db_url, str(timer_out), str(stop)], err)
    senders = [
        launch(
            "load",
            [db_url, str(tmp_path / f"w{w}.json"), str(w), str(EVENTS), str(w + 1), ",".join(INSTANCES)],
            err,
        )
        for w in range(PROCESSES)
    ]
    deadline = time.monotonic() + scale(150, 1500)
    try:
        for proc in senders:
            proc.join(max(deadline - time.monotonic(), 0.1))
            assert proc.exitcode is not None, "a sender hung (deadlock?)"
            assert proc.exitcode == 0, error_text(err)
    finally:
        stop.touch()
        worker.join(30)
        for proc in [*senders, worker]:
            kill(proc)
    elapsed = time.perf_counter() - t0
    assert worker.exitcode == 0, error_text(err)
    timers = json.loads(timer_out.read_text())
    assert timers["errors"] == [], f"timer worker errors: {timers['errors'][:5]}"

    results = [row for w in range(PROCESSES) for row in json.loads((tmp_path / f"w{w}.json").read_text())]
    errors = [r for r in results if r[3] == "error"]
    assert errors == [], f"{len(errors)} unexpected errors, e.g. {errors[:5]}"

    # Timers still pending fire now (a clock an hour ahead), then every invariant holds.
    flush = Engine(db_url, clock=ManualClock(SystemClock().now() + timedelta(hours=1)))
    flush.register(BUSY)
    late_timers = flush.run_due()
    facts = Facts()
    for iid in INSTANCES:
        check_busy_instance(flush, iid, facts)
        assert flush.get(iid).state == "a"
    assert raw_rows(flush, "SELECT count(*) FROM sm_timers", {}) == [(0,)]

    # Every result a sender saw is in history exactly as it saw it; versions never handed out twice.
    versions: dict[str, dict[int, str]] = defaultdict(dict)
    for key, iid, event, outcome, *rest in results:
        assert key in facts.by_key, f"{key}: a sender got {outcome} but history does not have it"
        h_iid, _seq, h_outcome, h_version, h_event, h_target = facts.by_key[key]
        assert (h_iid, h_event, h_outcome) == (iid, event, outcome), (key, facts.by_key[key], outcome)
        if outcome == "applied":
            version, state, _n = rest
            assert (version, state) == (h_version, h_target), (key, rest, facts.by_key[key])
            assert versions[iid].setdefault(version, key) == key, f"{iid} v{version} returned for two keys"
        else:
            assert rest[0] in ("GuardRejected", "EventNotAllowed"), rest
    sent_keys = {r[0] for r in results}
    assert set(facts.by_key) == sent_keys, "history holds keys no sender sent"
    shared = {r[0] for r in results if r[0].startswith("shared-")}
    for key in shared:  # all 8 processes raced on it: one record, and all 8 saw the same result
        seen = {tuple(r[3:5]) for r in results if r[0] == key}
        assert len(seen) == 1, (key, seen)
    flush.close()
    engine.close()
    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    record(
        f"concurrency[{backend}]",
        processes=PROCESSES,
        sends=len(results),
        distinct_keys=len(sent_keys),
        raced_keys=len(shared),
        applied=sum(1 for r in results if r[3] == "applied"),
        rejected=sum(1 for r in results if r[3] == "rejected"),
        timers_fired_during_load=timers["fired"],
        timers_fired_after=late_timers,
        timer_firings_in_history=facts.timer_firings,
        history_records=facts.records,
        unexpected_errors=0,
        seconds=round(elapsed, 1),
    )


def ping(ctx: Any, call: Any) -> dict[str, str]:
    return {"key": call.key}


PINGER = machine(
    "pinger",
    initial="waiting",
    states={
        "waiting": state(effect=Effect(ping), on={"GO": "gone", "done.ping": "pinged"}),
        "pinged": state(on={"GO": "gone"}),
        "gone": state(final=True),
    },
)


@pytest.mark.timeout(60)
def test_an_effect_finishing_while_a_send_leaves_its_state_does_not_deadlock(db_url: str) -> None:
    """The worker records an effect's result (effect row, then the instance) while a `send`
    leaves the state (instance, then the effect row to cancel it). Made to overlap for sure:
    the worker pauses right after it has locked the effect row, and resumes only once the send
    is known to be waiting for a lock (or has finished without one)."""
    sender = Engine(db_url, clock=ManualClock(T0))
    sender.register(PINGER)
    sender.start("pinger", instance_id="X")
    worker = Engine(db_url, clock=ManualClock(T0))
    worker.register(PINGER)
    locked, release = threading.Event(), threading.Event()
    original = worker.schedule.lock_effect

    def lock_effect_then_pause(cur: Any, effect_id: int) -> Any:
        row = original(cur, effect_id)
        locked.set()
        assert release.wait(30), "the send never came"
        return row

    worker.schedule.lock_effect = lock_effect_then_pause  # type: ignore[method-assign]
    outcome: dict[str, Any] = {}

    def run_worker() -> None:
        try:
            outcome["worker"] = worker.run_due()
        except Exception as exc:
            outcome["worker"] = exc

    def send() -> None:
        try:
            outcome["send"] = sender.send("X", "GO").state
        except Exception as exc:
            outcome["send"] = exc

    thread = threading.Thread(target=run_worker)
    thread.start()
    assert locked.wait(10), "the effect was never finished"
    sending = threading.Thread(target=send)
    sending.start()
    wait_until_blocked_or_done(db_url, sending)  # the send takes what locks it can, then waits
    release.set()
    sending.join(30)
    thread.join(30)
    assert not sending.is_alive(), "the send hung"
    assert not thread.is_alive(), "the worker hung"
    # No deadlock victim on either side: the effect result lands first, then GO leaves `pinged`
    # (or GO wins and the result is dropped as stale); both are fine, an error is not.
    assert not isinstance(outcome["worker"], Exception), f"worker: {outcome['worker']!r}"
    assert not isinstance(outcome["send"], Exception) or isinstance(outcome["send"], EventNotAllowed), (
        f"send: {outcome['send']!r}"
    )
    hist = [(r.event, r.outcome) for r in sender.history("X")]
    assert hist[0] == ("start", "applied") and ("GO", "applied") in hist, hist
    assert sender.get("X").state == "gone"
    sender.close()
    worker.close()
