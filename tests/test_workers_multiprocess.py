"""Real worker processes sharing one database: timers fire exactly once, whichever worker fires
them; a worker killed mid-effect loses its lease and another completes the effect with the same
key; SIGTERM stops a worker gracefully.

Only what is guaranteed is asserted: how the OS schedules the workers (who gets how much work,
how fast a signal lands) is not, so no test depends on it.

Children are started with the 'spawn' method (a fresh interpreter, like a worker on another
host), each with its own Engine on the SystemClock, and exit by themselves within a deadline.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import _fresh_schema

from statemachines import Effect, Engine, Retry, machine, state, transition
from statemachines.worker import Worker

SPAWN = mp.get_context("spawn")
CHILD_DEADLINE = 60.0  # seconds: a child gives up (and the test fails) rather than hang


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    yield from _fresh_schema(postgres_url)


def tick_machine():
    return machine(
        "tick",
        initial="waiting",
        states={"waiting": state(after={"1ms": "done"}), "done": state(final=True)},
    )


def _timer_worker(url: str, barrier: Any, results: Any) -> None:
    """Child: fire due timers until no `tick` instance is active; report how many it fired."""
    engine = Engine(url)
    engine.register(tick_machine())
    worker = Worker(engine, batch=10, idle=0.01, max_idle=0.05)
    barrier.wait(timeout=CHILD_DEADLINE)
    fired = 0
    end = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < end:
        done = worker.run_once()
        fired += done
        if done == 0:
            if not engine.instances(machine="tick", status="active", limit=1):
                break
            time.sleep(0.005)
    results.put((os.getpid(), fired))
    engine.close()


def run_timer_workers(url: str, instances: int, workers: int = 4) -> list[int]:
    """Start `instances` ticks (timers due in 1 ms), let `workers` processes fire them all."""
    engine = Engine(url)
    engine.register(tick_machine())
    for i in range(instances):
        engine.start("tick", instance_id=f"t{i:05d}")
    barrier = SPAWN.Barrier(workers)
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=_timer_worker, args=(url, barrier, results)) for _ in range(workers)]
    for p in procs:
        p.start()
    try:
        counts = [results.get(timeout=CHILD_DEADLINE + 30)[1] for _ in procs]
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    per_instance = timer_records_per_instance(engine)
    assert len(per_instance) == instances
    assert set(per_instance.values()) == {1}, "some timer fired more than once"
    assert {s.state for s in engine.instances(machine="tick", limit=instances)} == {"done"}
    assert sum(counts) == instances
    engine.close()
    return counts


def timer_records_per_instance(engine: Engine) -> dict[str, int]:
    with engine.runtime.read() as cur:
        cur.execute(
            engine.db.sql(
                "SELECT instance_id, COUNT(*) FROM sm_history WHERE event LIKE :pattern GROUP BY instance_id"
            ),
            {"pattern": "after.%"},
        )
        return {iid: int(n) for iid, n in cur.fetchall()}


def test_four_workers_fire_1000_timers_exactly_once_on_postgres(pg_url):
    counts = run_timer_workers(pg_url, 1000)
    print(f"\ntimers fired per PostgreSQL worker: {counts}")  # the spread is the scheduler's business


def test_four_workers_fire_timers_exactly_once_on_sqlite(tmp_path):
    counts = run_timer_workers(f"sqlite:///{tmp_path / 'workers.db'}", 200)
    print(f"\ntimers fired per SQLite worker: {counts}")


# A worker killed mid-effect -------------------------------------------------------------------


def slow_charge(ctx: dict, call: Any) -> dict:
    """Attempt 1 leaves a marker and hangs (its worker is killed); later attempts succeed."""
    if call.attempt == 1:
        Path(ctx["marker"]).write_text(f"{os.getpid()} {call.key}")
        time.sleep(float(ctx.get("hang", 30)))
    return {"key": call.key, "attempt": call.attempt, "pid": os.getpid()}


def record_charge(ctx: dict, event: Any) -> None:
    ctx["charge"] = event.payload


def slow_machine():
    return machine(
        "slow-pay",
        initial="charging",
        states={
            "charging": state(
                effect=Effect(slow_charge, lease="1s", retry=Retry(max_attempts=3, initial="100ms")),
                on={"done.slow_charge": transition("paid", action=record_charge)},
            ),
            "paid": state(final=True),
        },
    )


def _effect_worker(url: str, iid: str) -> None:
    """Child: run due work until `iid` is no longer active (or the deadline passes)."""
    engine = Engine(url)
    engine.register(slow_machine())
    worker = Worker(engine, batch=10, idle=0.02, max_idle=0.1)
    end = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < end and engine.get(iid).status == "active":
        if worker.run_once() == 0:
            time.sleep(0.02)
    engine.close()


def wait_for(path: Path, timeout: float = 30.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_worker_killed_mid_effect_loses_its_lease_and_another_completes_it_with_the_same_key(
    pg_url, tmp_path
):
    marker = tmp_path / "attempt1"
    engine = Engine(pg_url)
    engine.register(slow_machine())
    engine.start("slow-pay", {"marker": str(marker)}, instance_id="p1")
    first = SPAWN.Process(target=_effect_worker, args=(pg_url, "p1"))
    second = SPAWN.Process(target=_effect_worker, args=(pg_url, "p1"))
    first.start()
    try:
        pid, key = wait_for(marker).split()
        assert int(pid) == first.pid
        assert engine.status("p1").effects[0].status == "running"
        os.kill(first.pid, signal.SIGKILL)
        first.join(timeout=10)
        assert first.exitcode == -signal.SIGKILL
        second.start()
        second.join(timeout=CHILD_DEADLINE + 10)
        assert second.exitcode == 0
    finally:
        for p in (first, second):
            if p.is_alive():
                p.kill()
    snap = engine.get("p1")
    assert (snap.state, snap.status) == ("paid", "completed")
    assert snap.context["charge"] == {"key": key, "attempt": 2, "pid": second.pid}
    attempts = engine.effect_attempts("p1")
    assert [(a.attempt, a.ok) for a in attempts] == [(2, True)]  # attempt 1 died unrecorded
    engine.close()


def held_charge(ctx: dict, call: Any) -> dict:
    """Runs until its own worker has received SIGTERM, so the signal always lands mid-effect.

    It chains onto the worker's SIGTERM handler (effects run in the worker's main thread) and
    returns only once that handler has run: no timing assumption about when the signal lands."""
    handled = Path(ctx["handled"])
    worker_handler = signal.getsignal(signal.SIGTERM)

    def chained(signum: int, frame: Any) -> None:
        if callable(worker_handler):
            worker_handler(signum, frame)
        handled.write_text("1")

    signal.signal(signal.SIGTERM, chained)
    Path(ctx["marker"]).write_text(f"{os.getpid()} {call.key}")
    end = time.monotonic() + CHILD_DEADLINE
    while not handled.exists() and time.monotonic() < end:
        time.sleep(0.01)
    return {"key": call.key, "attempt": call.attempt}


def held_machine():
    return machine(
        "held-pay",
        initial="charging",
        states={
            "charging": state(
                effect=Effect(held_charge, lease="1m"),
                on={"done.held_charge": transition("paid", action=record_charge)},
            ),
            "paid": state(final=True),
        },
    )


def _signalled_worker(url: str) -> None:
    """Child: a worker with its signal handlers installed, as `statemachines worker` runs it."""
    engine = Engine(url)
    engine.register(held_machine())
    Worker(engine, batch=10, idle=0.02, max_idle=0.1).run(
        install_signals=True, max_rounds=int(CHILD_DEADLINE / 0.02)
    )
    engine.close()


SIGTERM_BOUND = 10.0  # seconds from SIGTERM to exit: generous, the worker only finishes one effect


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_lets_the_effect_in_flight_finish_and_gives_back_the_rest(pg_url, tmp_path):
    engine = Engine(pg_url)
    engine.register(held_machine())
    marker, handled = tmp_path / "first", tmp_path / "handled"
    for i in range(3):
        engine.start("held-pay", {"marker": str(marker), "handled": str(handled)}, instance_id=f"p{i}")
    proc = SPAWN.Process(target=_signalled_worker, args=(pg_url,))
    proc.start()
    try:
        wait_for(marker)
        os.kill(proc.pid, signal.SIGTERM)
        proc.join(timeout=SIGTERM_BOUND)
        assert not proc.is_alive(), f"the worker did not exit within {SIGTERM_BOUND} s of SIGTERM"
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
    assert handled.exists(), "the effect in flight finished before the worker saw SIGTERM"
    snaps = [engine.get(f"p{i}") for i in range(3)]
    finished = [s for s in snaps if s.state == "paid"]
    assert len(finished) == 1  # the effect in flight completed and was recorded
    assert finished[0].context["charge"]["attempt"] == 1
    for s in snaps:
        if s.state != "paid":
            [eff] = engine.status(s.id).effects
            assert (eff.status, eff.attempt) == ("pending", 0)  # given back, not started
    engine.close()
