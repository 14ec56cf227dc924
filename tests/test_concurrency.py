"""Real processes sending to one instance at once: no update is lost, none is applied twice.

Each test runs on SQLite (one file shared by the processes) and on PostgreSQL (row locks), with
processes started by multiprocessing's 'spawn' so nothing is inherited but the database URL.
"""

from __future__ import annotations

import multiprocessing
import queue
import sqlite3
import threading
import time
from collections import Counter as Tally
from contextlib import closing
from typing import Any

import pytest
from pydantic import BaseModel

from statemachines import Engine, EventNotAllowed, InstanceExists, machine, state, transition

pytestmark = pytest.mark.timeout(120)

WORKERS = 4
SENDS = 50


class Count(BaseModel):
    count: int = 0


def increment(ctx: Count, event) -> None:
    ctx.count += 1


COUNTER = machine(
    "counter",
    context=Count,
    initial="counting",
    states={
        "counting": state(on={"INC": transition(None, action=increment), "STOP": "stopped"}),
        "stopped": state(final=True),
    },
)


def raw_query(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return conn.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute(sql).fetchall()


def _hammer(url: str, barrier: Any, results: Any, worker: int) -> None:
    """SENDS events: every 10th is not allowed, every 5th carries a key all workers share."""
    engine = Engine(url)
    engine.register(COUNTER)
    barrier.wait(timeout=60)
    applied: list[int] = []  # versions returned by unkeyed sends
    keyed: dict[str, int] = {}  # shared key -> version returned
    rejected = 0
    for j in range(SENDS):
        if j % 10 == 9:
            try:
                engine.send("C1", "NOPE", actor=f"w{worker}")
            except EventNotAllowed:
                rejected += 1
        elif j % 5 == 0:
            key = f"shared-{j}"
            keyed[key] = engine.send("C1", "INC", idempotency_key=key, actor=f"w{worker}").version
        else:
            applied.append(engine.send("C1", "INC", actor=f"w{worker}").version)
    engine.close()
    results.put((worker, applied, keyed, rejected))


def _start_same_id(url: str, barrier: Any, results: Any, worker: int) -> None:
    engine = Engine(url)
    engine.register(COUNTER)
    barrier.wait(timeout=60)
    try:
        engine.start("counter", {"count": worker}, instance_id="ONLY")
        results.put((worker, "started"))
    except InstanceExists:
        results.put((worker, "exists"))
    engine.close()


def run_workers(target: Any, url: str) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, barrier, results, w)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    out: list[Any] = []
    deadline = time.monotonic() + 90
    try:
        while len(out) < WORKERS and time.monotonic() < deadline:
            try:
                out.append(results.get(timeout=0.2))
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    break  # a worker died without reporting
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * WORKERS
    assert len(out) == WORKERS
    return out


@pytest.fixture
def hammered(db_url: str) -> tuple[Engine, list[Any]]:
    engine = Engine(db_url)
    engine.register(COUNTER)
    engine.start("counter", instance_id="C1")
    return engine, run_workers(_hammer, db_url)


def test_concurrent_sends_from_many_processes_lose_no_update(
    hammered: tuple[Engine, list[Any]], db_url: str
) -> None:
    engine, results = hammered
    unkeyed = [v for _, applied, _, _ in results for v in applied]
    shared_keys = {k for _, _, keyed, _ in results for k in keyed}
    rejected = sum(r for *_, r in results)
    accepted = len(unkeyed) + len(shared_keys)
    assert accepted == WORKERS * (SENDS - SENDS // 10 - SENDS // 5) + SENDS // 5
    assert rejected == WORKERS * (SENDS // 10)

    snap = engine.get("C1")
    # each accepted event applied exactly once
    assert snap.context.count == accepted
    assert snap.version == 1 + accepted
    # every send saw its own version: none two alike, none skipped
    key_versions = {k: {keyed[k] for _, _, keyed, _ in results} for k in shared_keys}
    assert all(len(v) == 1 for v in key_versions.values()), key_versions
    seen = sorted(unkeyed + [v.pop() for v in key_versions.values()])
    assert seen == list(range(2, accepted + 2))

    history = engine.history("C1")
    assert [r.seq for r in history] == list(range(1, 1 + 1 + accepted + rejected))
    assert Tally(r.outcome for r in history) == {"applied": 1 + accepted, "rejected": rejected}
    assert [r.context["count"] for r in history if r.outcome == "applied"] == list(range(accepted + 1))

    receipts = raw_query(db_url, "SELECT key FROM sm_receipts WHERE instance_id = 'C1'")
    assert sorted(k for (k,) in receipts) == sorted(shared_keys)
    engine.close()


def test_concurrent_starts_with_the_same_id_create_one_instance(db_url: str) -> None:
    outcomes = sorted(outcome for _, outcome in run_workers(_start_same_id, db_url))
    assert outcomes == ["exists"] * (WORKERS - 1) + ["started"]
    engine = Engine(db_url)
    engine.register(COUNTER)
    try:
        assert [r.seq for r in engine.history("ONLY")] == [1]
        assert engine.get("ONLY").version == 1
    finally:
        engine.close()


def test_concurrent_sends_from_threads_sharing_one_engine_lose_no_update(db_url: str) -> None:
    engine = Engine(db_url)
    engine.register(COUNTER)
    engine.start("counter", instance_id="C1")
    barrier = threading.Barrier(WORKERS)
    versions: list[int] = []
    errors: list[BaseException] = []

    def send_many() -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(25):
                versions.append(engine.send("C1", "INC").version)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send_many) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(versions) == list(range(2, 2 + WORKERS * 25))
    snap = engine.get("C1")
    assert (snap.context.count, snap.version) == (WORKERS * 25, 1 + WORKERS * 25)
    assert [r.seq for r in engine.history("C1")] == list(range(1, 2 + WORKERS * 25))
    engine.close()
