"""Group commit (`Engine(group_commit=True)`): concurrent sends of one process share a commit,
each returns only once its own event is durable, and a failing event never takes others with it.

Batches are made deterministic by an action that holds its event (inside the batch, with the
group's lock) until the other threads are queued behind it: then they all join that batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from statemachines import (
    ActionFailed,
    ConfigurationError,
    Engine,
    ReentrantCall,
    StorageUnavailable,
    machine,
    state,
    transition,
)

pytestmark = pytest.mark.timeout(120)

THREADS = 8
#: Filled by tests: the action of `GO` waits on it (set from a test thread).
hold_until: dict[str, Any] = {}


def wait_for_queue(ctx: dict[str, Any], event: Any) -> None:
    """Hold this event (and the group's lock) until `hold_until["n"]` threads queue behind it."""
    engine, n = hold_until["engine"], hold_until["n"]
    deadline = time.monotonic() + 20
    while engine.group.queued < n and time.monotonic() < deadline:
        time.sleep(0.001)
    ctx["held"] = True


def boom(ctx: dict[str, Any], event: Any) -> None:
    raise RuntimeError("this event fails")


def hold_then_boom(ctx: dict[str, Any], event: Any) -> None:
    wait_for_queue(ctx, event)
    raise RuntimeError("this event fails")


def call_engine(ctx: dict[str, Any], event: Any) -> None:
    hold_until["engine"].send("other", "GO")


TOGGLE = machine(
    "toggle",
    initial="off",
    states={
        "off": state(
            on={
                "GO": "on",
                "HOLD": transition("on", action=wait_for_queue),
                "FAIL": transition("on", action=boom),
                "HOLD_FAIL": transition("on", action=hold_then_boom),
                "NEST": transition("on", action=call_engine),
            }
        ),
        "on": state(on={"GO": "off"}),
    },
)


@pytest.fixture
def group_engine(db_url: str) -> Any:
    engine = Engine(db_url, group_commit=True)
    engine.register(TOGGLE)
    hold_until.clear()
    hold_until["engine"] = engine
    yield engine
    engine.close()


def run_threads(calls: list[Any]) -> list[Any]:
    """Run each call in its own thread; results (or the exception raised) in order."""
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    threads[0].start()
    time.sleep(0.05)  # the first takes the group's lock and holds it in its action
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(60)
    return results


def start_all(engine: Engine, n: int) -> list[str]:
    ids = [f"i{k}" for k in range(n)]
    for iid in ids:
        engine.start("toggle", instance_id=iid)
    return ids


def test_concurrent_sends_share_one_commit(group_engine: Engine) -> None:
    ids = start_all(group_engine, THREADS)
    hold_until["n"] = THREADS - 1
    commits = group_engine.group.commits
    calls = [lambda: group_engine.send(ids[0], "HOLD")]
    calls += [lambda iid=iid: group_engine.send(iid, "GO") for iid in ids[1:]]
    results = run_threads(calls)
    assert [r.state for r in results] == ["on"] * THREADS
    assert group_engine.group.commits - commits == 1
    assert [len(group_engine.history(iid)) for iid in ids] == [2] * THREADS


def test_a_single_sender_commits_each_event_before_returning(group_engine: Engine) -> None:
    start_all(group_engine, 1)
    commits = group_engine.group.commits
    group_engine.send("i0", "GO")
    group_engine.send("i0", "GO")
    assert group_engine.group.commits - commits == 2
    assert group_engine.get("i0").version == 3


def test_a_failing_event_leaves_the_rest_of_its_batch_committed(group_engine: Engine) -> None:
    ids = start_all(group_engine, 3)
    hold_until["n"] = 2
    results = run_threads(
        [
            lambda: group_engine.send(ids[0], "HOLD"),
            lambda: group_engine.send(ids[1], "FAIL"),
            lambda: group_engine.send(ids[2], "GO"),
        ]
    )
    assert results[0].state == "on" and results[2].state == "on"
    assert isinstance(results[1], ActionFailed)
    assert group_engine.get(ids[1]).state == "off"
    assert [r.event for r in group_engine.history(ids[1])] == ["start"]
    assert [r.event for r in group_engine.history(ids[0])] == ["start", "HOLD"]


def test_the_first_event_of_a_batch_failing_does_not_end_the_batch(group_engine: Engine) -> None:
    ids = start_all(group_engine, 3)
    hold_until["n"] = 2
    commits = group_engine.group.commits
    results = run_threads(
        [
            lambda: group_engine.send(ids[0], "HOLD_FAIL"),
            lambda: group_engine.send(ids[1], "GO"),
            lambda: group_engine.send(ids[2], "GO"),
        ]
    )
    assert isinstance(results[0], ActionFailed)
    assert [r.state for r in results[1:]] == ["on", "on"]
    assert group_engine.group.commits - commits == 1
    assert group_engine.get(ids[0]).version == 1


def test_one_idempotency_key_twice_in_a_batch_applies_once(group_engine: Engine) -> None:
    ids = start_all(group_engine, 2)
    hold_until["n"] = 2
    results = run_threads(
        [
            lambda: group_engine.send(ids[1], "HOLD"),
            lambda: group_engine.send(ids[0], "GO", idempotency_key="k1"),
            lambda: group_engine.send(ids[0], "GO", idempotency_key="k1"),
        ]
    )
    assert [r.state for r in results] == ["on", "on", "on"]
    assert results[1].version == results[2].version == 2
    assert [r.event for r in group_engine.history(ids[0])] == ["start", "GO"]
    assert group_engine.send(ids[0], "GO", idempotency_key="k1").version == 2  # the receipt


def test_events_of_one_instance_in_a_batch_apply_in_turn(group_engine: Engine) -> None:
    ids = start_all(group_engine, 2)
    hold_until["n"] = 4
    calls = [lambda: group_engine.send(ids[1], "HOLD")]
    calls += [lambda: group_engine.send(ids[0], "GO") for _ in range(4)]
    results = run_threads(calls)
    assert sorted(r.version for r in results[1:]) == [2, 3, 4, 5]
    assert group_engine.get(ids[0]).version == 5
    assert [r.seq for r in group_engine.history(ids[0])] == [1, 2, 3, 4, 5]


def test_an_action_calling_the_engine_is_refused_and_nothing_written(group_engine: Engine) -> None:
    start_all(group_engine, 1)
    group_engine.start("toggle", instance_id="other")
    with pytest.raises(ActionFailed) as raised:
        group_engine.send("i0", "NEST")
    assert isinstance(raised.value.__cause__, ReentrantCall)
    assert group_engine.get("i0").version == 1
    assert group_engine.get("other").version == 1
    assert group_engine.send("i0", "GO").state == "on"  # the group is usable afterwards


def test_in_memory_engines_have_no_group() -> None:
    engine = Engine("sqlite://", group_commit=True)
    assert engine.group is None
    engine.close()


CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading
    from statemachines import Engine, machine, state
    url, threads, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    m = machine("flip", initial="a", states={"a": state(on={"E": "b"}), "b": state(on={"E": "a"})})
    engine = Engine(url, group_commit=True)
    engine.register(m)
    lock = threading.Lock()
    def run(t):
        engine.start("flip", instance_id=f"t{t}")
        os.write(1, f"t{t} 1\\n".encode())
        for _ in range(per):
            snap = engine.send(f"t{t}", "E")
            os.write(1, f"t{t} {snap.version}\\n".encode())
    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for p in pool: p.start()
    for p in pool: p.join()
    os.write(1, f"commits {engine.group.commits}\\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_every_returned_send_survives_a_kill_right_after(db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(script), db_url, "16", "20"],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    lines = done.stdout.split()
    returned: dict[str, int] = {}
    for iid, version in zip(lines[0::2], lines[1::2], strict=True):
        if iid != "commits":
            returned[iid] = max(returned.get(iid, 0), int(version))
    assert len(returned) == 16 and set(returned.values()) == {21}
    engine = Engine(db_url)
    try:
        assert {iid: engine.get(iid).version for iid in returned} == returned
        assert all(len(engine.history(iid)) == 21 for iid in returned)
    finally:
        engine.close()


def test_a_lost_connection_fails_one_call_and_the_next_reconnects(group_engine: Engine, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("a server-side disconnect is a PostgreSQL failure")
    import psycopg

    start_all(group_engine, 1)
    with group_engine.group.transaction() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    plain = db_url.split("?")[0].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StorageUnavailable):
        group_engine.send("i0", "GO")
    assert group_engine.send("i0", "GO").version == 2
    assert [r.seq for r in group_engine.history("i0")] == [1, 2]


def test_group_commit_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="group_commit must be True or False, got 'yes'"):
        Engine(f"sqlite:///{tmp_path / 'x.db'}", group_commit="yes")  # type: ignore[arg-type]
