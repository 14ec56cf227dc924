"""Compensations under SIGKILL: a worker process killed in the middle of a compensation loses its
lease, another worker runs it again with the same key, and each compensation takes effect
exactly once (the provider applies a key once), in reverse order of success.

Children are real processes started with 'spawn', each with its own Engine; the provider is a
directory of files keyed by idempotency key, so what took effect outlives the killed processes.
"""

from __future__ import annotations

import hashlib
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

from statemachines import Effect, Engine, Retry, machine, state
from statemachines.worker import Worker

SPAWN = mp.get_context("spawn")
CHILD_DEADLINE = 60.0
LEASED: dict[str, Any] = {"lease": "1s", "retry": Retry(max_attempts=5, initial="100ms", max="1s", jitter=0)}


def _apply(ctx: dict, name: str, call: Any) -> str:
    """The provider: log the call; apply `name` once per idempotency key; the first attempt of a
    call named in `ctx["hang"]` hangs after taking effect (its worker is killed there)."""
    root = Path(ctx["root"])
    with (root / "calls.log").open("a") as log:
        log.write(f"{call.instance_id} {name} {call.attempt} {os.getpid()} {call.key}\n")
    done = root / "applied" / hashlib.sha256(call.key.encode()).hexdigest()
    if not done.exists():
        done.write_text(f"{call.instance_id} {name} {call.key}")
        with (root / "order.log").open("a") as order:
            order.write(f"{call.instance_id} {name}\n")
    time.sleep(float(os.environ.get("CRASH_SLOW", "0")))  # took effect, not yet recorded
    if name == ctx.get("hang") and call.attempt == 1:
        (root / "marker").write_text(f"{os.getpid()}")
        time.sleep(CHILD_DEADLINE)
    return name


def book_a(ctx: dict, call: Any) -> str:
    return _apply(ctx, "book_a", call)


def book_b(ctx: dict, call: Any) -> str:
    return _apply(ctx, "book_b", call)


def undo_a(ctx: dict, call: Any) -> str:
    return _apply(ctx, "undo_a", call)


def undo_b(ctx: dict, call: Any) -> str:
    return _apply(ctx, "undo_b", call)


def fail_c(ctx: dict, call: Any) -> str:
    raise RuntimeError("the car rental is down")


def saga() -> Any:
    return machine(
        "crash-saga",
        initial="a",
        states={
            "a": state(effect=Effect(book_a, compensate=undo_a, **LEASED), on={"done.book_a": "b"}),
            "b": state(effect=Effect(book_b, compensate=undo_b, **LEASED), on={"done.book_b": "c"}),
            # A short lease here too: a worker killed while it runs fail_c must not hold the
            # instance for the default lease (longer than the test's deadline).
            "c": state(
                effect=Effect(fail_c, lease="1s", retry=Retry(max_attempts=1)), on={"error.fail_c": "undoing"}
            ),
            "undoing": state(compensate=True, on={"done.compensation": "undone"}),
            "undone": state(final=True),
        },
    )


def _worker(url: str, ids: list[str]) -> None:
    """Child: run due work until every instance of `ids` is closed (or the deadline passes)."""
    engine = Engine(url)
    engine.register(saga())
    worker = Worker(engine, batch=10, idle=0.02, max_idle=0.1)
    end = time.monotonic() + CHILD_DEADLINE
    while time.monotonic() < end and any(engine.get(i).status == "active" for i in ids):
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


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crash.db'}"
    else:
        postgres = request.getfixturevalue("postgres_url")
        yield from _fresh_schema(postgres)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_worker_killed_mid_compensation_is_taken_over_and_each_compensation_takes_effect_once(
    url: str, tmp_path: Path
) -> None:
    root = tmp_path / "provider"
    (root / "applied").mkdir(parents=True)
    engine = Engine(url)
    engine.register(saga())
    ids = ["s0", "s1", "s2"]
    for iid in ids:  # s0's undo_b hangs on its first attempt: its worker is killed there
        context = {"root": str(root), "hang": "undo_b" if iid == "s0" else None}
        engine.start("crash-saga", context, instance_id=iid)
    first = SPAWN.Process(target=_worker, args=(url, ids))
    first.start()
    try:
        assert int(wait_for(root / "marker")) == first.pid
        os.kill(first.pid, signal.SIGKILL)
        first.join(timeout=10)
        assert first.exitcode == -signal.SIGKILL
        rest = [SPAWN.Process(target=_worker, args=(url, ids)) for _ in range(2)]
        for p in rest:
            p.start()
        for p in rest:
            p.join(timeout=CHILD_DEADLINE + 10)
            assert p.exitcode == 0
    finally:
        for p in [first, *locals().get("rest", [])]:
            if p.is_alive():
                p.kill()
    calls = [line.split() for line in (root / "calls.log").read_text().splitlines()]
    order = [line.split() for line in (root / "order.log").read_text().splitlines()]
    for iid in ids:
        snap = engine.get(iid)
        assert (snap.state, snap.status) == ("undone", "completed"), iid
        took_effect = [name for i, name in order if i == iid]
        assert took_effect == ["book_a", "book_b", "undo_b", "undo_a"], iid  # each once, reversed
        for name in ("undo_a", "undo_b"):
            keys = {c[4] for c in calls if c[0] == iid and c[1] == name}
            assert len(keys) == 1, f"{iid} {name}: keys {keys}"  # stable over attempts
        assert engine.history(iid)[-1].payload == {"compensated": ["book_b", "book_a"]}
    killed = [c for c in calls if c[0] == "s0" and c[1] == "undo_b"]
    assert [int(c[2]) for c in killed] == [1, 2]  # run again after the kill, same key
    assert int(killed[0][3]) == first.pid != int(killed[1][3])
    engine.close()


def _slow_worker(url: str, ids: list[str]) -> None:
    """Child: like `_worker`, with every call slowed down (`SLOW` in the environment) so that kills
    land inside effects and compensations as well as between them."""
    os.environ["CRASH_SLOW"] = "0.3"
    _worker(url, ids)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_workers_killed_at_random_moments_still_compensate_each_effect_exactly_once(
    url: str, tmp_path: Path
) -> None:
    import random

    root = tmp_path / "provider"
    (root / "applied").mkdir(parents=True)
    engine = Engine(url)
    engine.register(saga())
    ids = [f"r{i}" for i in range(8)]
    for iid in ids:
        engine.start("crash-saga", {"root": str(root), "hang": None}, instance_id=iid)
    rng = random.Random(12)
    procs = [SPAWN.Process(target=_slow_worker, args=(url, ids)) for _ in range(2)]
    for p in procs:
        p.start()
    kills = 0
    try:
        end = time.monotonic() + CHILD_DEADLINE
        log = root / "calls.log"
        seen = 0
        while kills < 6 and time.monotonic() < end:
            while time.monotonic() < end and _lines(log) <= seen:  # kill workers that are working
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            seen = _lines(log)
            victim = rng.choice([p for p in procs if p.is_alive()] or procs)
            if victim.is_alive():
                os.kill(victim.pid, signal.SIGKILL)
                victim.join(timeout=10)
                kills += 1
            procs = [p for p in procs if p.is_alive()]
            procs.append(SPAWN.Process(target=_slow_worker, args=(url, ids)))
            procs[-1].start()
        last = SPAWN.Process(target=_worker, args=(url, ids))
        last.start()
        last.join(timeout=CHILD_DEADLINE + 10)
        assert last.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
    calls = [line.split() for line in (root / "calls.log").read_text().splitlines()]
    order = [line.split() for line in (root / "order.log").read_text().splitlines()]
    for iid in ids:
        assert engine.get(iid).state == "undone", iid
        assert [name for i, name in order if i == iid] == ["book_a", "book_b", "undo_b", "undo_a"], iid
        for name in ("undo_a", "undo_b"):
            assert len({c[4] for c in calls if c[0] == iid and c[1] == name}) == 1
    again = sum(1 for c in calls if int(c[2]) > 1)
    undo_again = sum(1 for c in calls if int(c[2]) > 1 and c[1].startswith("undo"))
    print(f"\n{kills} workers killed; {len(calls)} calls for {len(order)} effects that took effect;"
          f" {again} calls ran again after a kill ({undo_again} compensations)")  # fmt: skip
    engine.close()
