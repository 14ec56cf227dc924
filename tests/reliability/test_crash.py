"""Crash: processes SIGKILLed at random moments lose nothing and apply nothing twice.

A child process sends keyed events (or runs timers and effects) in a loop; the parent kills it
with SIGKILL at random moments, starts the next one, and at the end checks every invariant from
the database alone, then resends every key ever attempted.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from reliability.support import (
    BUSY,
    EFFECT_LOG_ENV,
    T0,
    TIMED,
    Facts,
    check_busy_instance,
    error_text,
    kill,
    launch,
    plan,
    raw_rows,
    read_log,
    record,
    scale,
    sleep_then_kill,
    start_busy,
)
from statemachines import Engine, EventRejected, ManualClock
from statemachines.apply import effect_key

KILLS = scale(20, 250)
INSTANCES = [f"crash-{i}" for i in range(4)]
SEED = int(os.environ.get("RELIABILITY_SEED", "0")) or random.randrange(1, 2**31)


@pytest.fixture(autouse=True)
def _report_seed(request: pytest.FixtureRequest) -> None:
    """Every failure of this module, whatever raised it, shows the seed that replays it."""
    request.node.add_report_section("setup", "seed", f"replay with RELIABILITY_SEED={SEED}")


#: How long a child lives: right after start (engine set-up, first send), or once set up.
EARLY, LATE = (0.0, 0.03), (0.005, 0.15)


def _backend(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


def _integrity(engine: Engine) -> None:
    if engine.db.dialect == "sqlite":
        with engine.db.read() as cur:
            cur.execute("PRAGMA integrity_check")
            assert cur.fetchall() == [("ok",)]


@pytest.mark.timeout(scale(150, 3600))
def test_killed_sender_loses_nothing_and_applies_every_key_exactly_once(db_url: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    engine = Engine(db_url)
    engine.register(BUSY)
    start_busy(engine, INSTANCES)
    log = tmp_path / "sender.log"
    log.touch()
    err = tmp_path / "sender.err"
    for k in range(KILLS):
        proc = launch("send", [db_url, str(log), ",".join(INSTANCES)], err)
        if not sleep_then_kill(proc, log, rng, EARLY, LATE):
            pytest.fail(f"sender died by itself (life {k}, seed {SEED}):\n{error_text(err)}")

    # What the client knew: every attempt, every result it saw, what was in flight at each kill.
    lines = read_log(log)
    attempted = list(dict.fromkeys(ln[1] for ln in lines if ln[0] == "A"))
    assert attempted, f"no sender life got to send anything before its kill (seed {SEED})"
    seen: dict[str, list[list[str]]] = defaultdict(list)
    in_flight: list[str] = []
    pending: str | None = None
    for ln in lines:
        if ln[0] == "L":
            if pending is not None:
                in_flight.append(pending)
            pending = None
        elif ln[0] == "A":
            pending = ln[1]
        elif ln[0] == "D":
            seen[ln[1]].append(ln[2:])
            pending = None
    if pending is not None:
        in_flight.append(pending)

    # What the database says, checked on its own.
    facts = Facts()
    for iid in INSTANCES:
        check_busy_instance(engine, iid, facts)
    _integrity(engine)
    assert set(facts.by_key) <= set(attempted), "history holds a key nobody sent"
    for key, results in seen.items():  # every result a client saw is in history, as it saw it
        assert key in facts.by_key, f"{key}: the client saw {results} but history lost it (seed {SEED})"
        _, _, outcome, version, _, target = facts.by_key[key]
        for res in results:
            assert res[0] == outcome, (key, res, facts.by_key[key])
            if outcome == "applied":
                assert [int(res[1]), res[2]] == [version, target], (key, res, facts.by_key[key])
    committed_in_flight = sum(1 for k in in_flight if k in facts.by_key)

    # Resend every key ever attempted: each event ends up in history exactly once.
    records_before = facts.records
    missing = [k for k in attempted if k not in facts.by_key]
    for key in attempted:
        iid, event = plan(key, INSTANCES)
        try:
            snap = engine.send(iid, event, {"key": key}, idempotency_key=key)
            got = ("applied", snap.version)
        except EventRejected:
            got = ("rejected", None)
        if key in facts.by_key:  # a replay: the recorded result, nothing written
            _, _, outcome, version, _, _ = facts.by_key[key]
            assert got == (outcome, version if outcome == "applied" else None), (key, got, facts.by_key[key])
    after = Facts()
    for iid in INSTANCES:
        check_busy_instance(engine, iid, after)
    assert set(after.by_key) == set(attempted)
    assert after.records == records_before + len(missing)
    engine.close()
    record(
        f"crash/sender[{_backend(db_url)}]",
        seed=SEED,
        kills=KILLS,
        keys_attempted=len(attempted),
        in_flight_at_kill=len(in_flight),
        in_flight_committed=committed_in_flight,
        in_flight_rolled_back=len(in_flight) - committed_in_flight,
        history_records_checked=after.records,
        applied=after.applied,
        rejected=after.rejected,
        lost=0,
        duplicated=0,
    )


@pytest.mark.timeout(scale(150, 3600))
def test_killed_worker_fires_every_timer_once_and_runs_every_effect_at_least_once(
    db_url: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED + 1)
    batch = scale(150, 600)
    setup = Engine(db_url, clock=ManualClock(T0))
    setup.register(TIMED)
    started: list[str] = []

    def add_batch() -> None:
        for _ in range(batch):
            iid = f"t-{len(started)}"
            setup.start("timed", {}, instance_id=iid)
            started.append(iid)

    add_batch()
    log = tmp_path / "worker.log"
    log.touch()
    effect_log = tmp_path / "effects.log"
    base = (T0 + timedelta(hours=2)).isoformat()
    ref = time.time()
    err = tmp_path / "worker.err"
    args = [db_url, str(log), base, str(ref), "100"]
    env = {EFFECT_LOG_ENV: str(effect_log)}
    kills = 0
    while kills < KILLS:
        proc = launch("work", args, err, env)
        if not sleep_then_kill(proc, log, rng, EARLY, LATE):
            proc.join()
            if proc.exitcode != 0:
                pytest.fail(f"worker failed (seed {SEED}):\n{error_text(err)}")
            add_batch()  # it finished everything before we killed it: more work, more kills
            continue
        kills += 1
    final = launch("work", args, err, env)  # one last worker, left alone, finishes what is left
    final.join(scale(120, 1200))
    if final.exitcode != 0:
        kill(final)
        pytest.fail(f"the last worker did not finish (exit {final.exitcode}):\n{error_text(err)}")

    worker_lines = read_log(log)
    lives: list[list[list[str]]] = []
    for ln in worker_lines:
        if ln[0] == "L":
            lives.append([])
        elif lives:
            lives[-1].append(ln)
    killed_mid_timer_batch = sum(1 for life in lives[:-1] if life and life[-1][0] == "T")

    # Timers exactly once, every effect result delivered once, every instance done.
    engine = Engine(db_url, clock=ManualClock(T0))
    engine.register(TIMED)
    for iid in started:
        snap = engine.get(iid)
        assert (snap.state, snap.status, snap.version) == ("notified", "completed", 3), snap
        assert snap.context == {"fired": 1}, f"{iid}: timer action ran {snap.context} times"
        hist = engine.history(iid)
        shape = [(r.seq, r.event, r.source, r.target, r.outcome, r.actor) for r in hist]
        assert shape == [
            (1, "start", None, "waiting", "applied", None),
            (2, "after.1h", "waiting", "fired", "applied", "timer"),
            (3, "done.notify", "fired", "notified", "applied", "effect"),
        ], f"{iid}: {shape}"
        assert hist[2].payload["key"] == effect_key(iid, 2, "notify"), hist[2].payload
    assert raw_rows(engine, "SELECT count(*) FROM sm_timers", {}) == [(0,)]
    effects = raw_rows(engine, "SELECT instance_id, key, status FROM sm_effects", {})
    assert len(effects) == len(started)
    expected = {(iid, effect_key(iid, 2, "notify"), "done") for iid in started}
    assert set(effects) == expected, effects[:5]
    _integrity(engine)

    # The outside world: every effect ran with its one key, at least once.
    calls = read_log(effect_log)
    starts = Counter(ln[1] for ln in calls if ln[0] == "S")
    successes = Counter(ln[1] for ln in calls if ln[0] == "E")
    ended = Counter((ln[1], ln[3]) for ln in calls if ln[0] in "EF")
    interrupted = sum(1 for ln in calls if ln[0] == "S" and (ln[1], ln[3]) not in ended)
    for iid in started:
        key = effect_key(iid, 2, "notify")
        assert starts[key] >= 1 and successes[key] >= 1, f"{key}: never ran to success"
    assert set(starts) == {effect_key(iid, 2, "notify") for iid in started}
    reruns = sum(successes.values()) - len(started)
    engine.close()
    record(
        f"crash/worker[{_backend(db_url)}]",
        seed=SEED,
        kills=kills,
        instances=len(started),
        killed_inside_timer_batch=killed_mid_timer_batch,
        killed_inside_effect_call=interrupted,
        effect_calls=sum(starts.values()),
        effect_successes_repeated_after_kill=reruns,
        timers_fired_twice=0,
        lost=0,
    )
