"""Crash: workers SIGKILLed at random while they run the effects of a parallel state.

Every FANOUT instance starts three effects at once (one per region of `work`); worker processes
run them and are killed with SIGKILL at random moments (inside an effect call, between the call
and the transaction that delivers its result, inside that transaction...), a new one starts each
time, and a last one is left to finish. Then, from the database alone: no instance lost, each
effect's `done.<effect>` applied exactly once per instance, the join (`done.state.work`) fired
exactly once; and from the outside world's log: every effect ran to success with its one key.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from reliability.chart_support import CHART_EFFECT_LOG_ENV, EFFECTS, FANOUT, check_fanout_instance
from reliability.support import (
    T0,
    error_text,
    kill,
    launch,
    raw_rows,
    read_log,
    record,
    scale,
    sleep_then_kill,
)
from statemachines import Engine, ManualClock

KILLS = scale(20, 200)
BATCH = scale(100, 300)
SEED = int(os.environ.get("RELIABILITY_SEED", "0")) or random.randrange(1, 2**31)


@pytest.fixture(autouse=True)
def _report_seed(request: pytest.FixtureRequest) -> None:
    """Every failure of this module, whatever raised it, shows the seed that replays it."""
    request.node.add_report_section("setup", "seed", f"replay with RELIABILITY_SEED={SEED}")


@pytest.mark.timeout(scale(60, 1800))
def test_killed_workers_deliver_each_parallel_effect_once_and_join_once(db_url: str, tmp_path: Path) -> None:
    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    rng = random.Random(SEED + 7)
    setup = Engine(db_url, clock=ManualClock(T0))
    setup.register(FANOUT)
    started: list[str] = []

    def add_batch() -> None:
        for _ in range(BATCH):
            iid = f"f-{len(started)}"
            setup.start("fanout", {}, instance_id=iid)
            started.append(iid)

    add_batch()
    log, effect_log, err = tmp_path / "worker.log", tmp_path / "effects.log", tmp_path / "worker.err"
    log.touch()
    args = [db_url, str(log), T0.isoformat(), str(time.time()), "100"]
    env = {CHART_EFFECT_LOG_ENV: str(effect_log)}
    kills = 0
    while kills < KILLS:
        proc = launch("chartwork", args, err, env)
        if not sleep_then_kill(proc, log, rng, (0.0, 0.03), (0.02, 0.2)):
            proc.join()
            if proc.exitcode != 0:
                pytest.fail(f"worker failed (seed {SEED}):\n{error_text(err)}")
            add_batch()  # it finished everything before we killed it: more work, more kills
            continue
        kills += 1
    final = launch("chartwork", args, err, env)  # one last worker, left alone, finishes what is left
    final.join(scale(40, 1200))
    if final.exitcode != 0:
        kill(final)
        pytest.fail(
            f"the last worker did not finish (exit {final.exitcode}, seed {SEED}):\n{error_text(err)}"
        )

    # The database: every instance joined once, each result applied once.
    engine = Engine(db_url, clock=ManualClock(T0))
    engine.register(FANOUT)
    for iid in started:
        try:
            check_fanout_instance(engine, iid)
        except AssertionError as exc:
            raise AssertionError(f"{exc} (seed {SEED})") from None
    effects = raw_rows(engine, "SELECT instance_id, name, key, status FROM sm_effects", {})
    expected = {(iid, name, "done") for iid in started for name in EFFECTS.values()}
    got = sorted((iid, name, status) for iid, name, _key, status in effects)
    assert got == sorted(expected), f"seed {SEED}: one done row per effect expected, got {got[:6]}"
    every_key = {key for _iid, _name, key, _status in effects}
    assert len(every_key) == len(effects), f"seed {SEED}: two effects share a key"
    assert raw_rows(engine, "SELECT count(*) FROM sm_timers", {}) == [(0,)]
    if engine.db.dialect == "sqlite":
        with engine.db.read() as cur:
            cur.execute("PRAGMA integrity_check")
            assert cur.fetchall() == [("ok",)]

    # The outside world: every effect ran with its one key, at least once, to success.
    calls = read_log(effect_log)
    starts = Counter(ln[1] for ln in calls if ln[0] == "S")
    successes = Counter(ln[1] for ln in calls if ln[0] == "E")
    ended = {(ln[1], ln[3]) for ln in calls if ln[0] in "EF"}
    assert set(starts) == every_key, f"seed {SEED}: keys outside the instances' effects"
    never = sorted(k for k in every_key if successes[k] < 1)
    assert not never, f"seed {SEED}: effects never ran to success: {never[:5]}"
    engine.close()
    setup.close()
    record(
        f"crash/chart-worker[{backend}]",
        seed=SEED,
        kills=kills,
        instances=len(started),
        effects=len(every_key),
        killed_inside_effect_call=sum(1 for ln in calls if ln[0] == "S" and (ln[1], ln[3]) not in ended),
        effect_successes_repeated_after_kill=sum(successes.values()) - len(every_key),
        results_applied_twice=0,
        joins_fired_twice=0,
        lost=0,
    )
