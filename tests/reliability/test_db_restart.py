"""Database restart: PostgreSQL restarted (`pg_ctlcluster ... restart`) in the middle of load.

In-flight calls fail with `StorageUnavailable` (typed, `retryable`); the engine and a worker
reconnect by themselves on their next call; every send that returned is in history, exactly once,
even the ones whose commit succeeded while the connection died (their idempotency key resolves
them on retry); nothing is half-written (every invariant of every instance holds).

Disruptive: it restarts the local PostgreSQL cluster, which every other client of that server
notices. So it is opt-in: it runs only when `STATEMACHINES_TEST_DISRUPTIVE=1` (.ci/run sets it),
and also needs root and `pg_ctlcluster` (skipped otherwise, with the reason). PostgreSQL is up
again when the test ends, whatever happens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reliability.support import BUSY, BUSY_TIMER, Facts, check_busy_instance, plan, record, scale, start_busy
from statemachines import (
    Engine,
    EventRejected,
    ManualClock,
    StateMachineError,
    StorageUnavailable,
    SystemClock,
)
from statemachines.worker import Worker

RESTARTS = scale(1, 3)
INSTANCES = [f"r{i}" for i in range(3)]
PG_ETC = Path("/etc/postgresql")
DISRUPTIVE_ENV = "STATEMACHINES_TEST_DISRUPTIVE"


def _disruptive_allowed() -> bool:
    """Whether the user opted in to tests that restart servers on this machine."""
    return os.environ.get(DISRUPTIVE_ENV, "").strip() == "1"


disruptive = pytest.mark.skipif(
    not _disruptive_allowed(), reason=f"restarts the local PostgreSQL cluster: opt in with {DISRUPTIVE_ENV}=1"
)


def _cluster() -> tuple[str, str] | None:
    """(version, name) of the local cluster, when this process may restart it."""
    if os.geteuid() != 0 or shutil.which("pg_ctlcluster") is None or not PG_ETC.is_dir():
        return None
    versions = sorted(p.name for p in PG_ETC.iterdir() if (p / "main").is_dir())
    return (versions[-1], "main") if versions else None


def _ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False).returncode == 0


def _wait_ready(timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not _ready():
        if time.monotonic() > deadline:
            raise AssertionError("PostgreSQL did not come back")
        time.sleep(0.1)


def _ctl(cluster: tuple[str, str], action: str) -> None:
    done = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, action],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:  # say why: pg_ctl's own words are the only clue
        raise RuntimeError(
            f"pg_ctlcluster {action} exited {done.returncode}: {(done.stderr or done.stdout).strip()}"
        )


@pytest.fixture
def pg_cluster(postgres_url: str) -> Iterator[tuple[str, str]]:
    cluster = _cluster()
    if cluster is None:
        pytest.skip("cannot control the PostgreSQL cluster (needs root and pg_ctlcluster)")
    if "127.0.0.1" not in postgres_url and "localhost" not in postgres_url:
        pytest.skip("PostgreSQL is not the local cluster")
    try:
        yield cluster
    finally:  # up again, whatever happened
        if not _ready():
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "start"], check=False)
        _wait_ready()


@pytest.fixture
def pg_url(pg_cluster: tuple[str, str], postgres_url: str) -> Iterator[str]:
    from conftest import _fresh_schema

    yield from _fresh_schema(postgres_url)


@disruptive
@pytest.mark.timeout(scale(120, 600))
def test_postgres_restart_mid_load_fails_typed_reconnects_and_loses_nothing(
    pg_cluster: tuple[str, str], pg_url: str
) -> None:
    engine = Engine(pg_url)
    engine.register(BUSY)
    start_busy(engine, INSTANCES)
    worker_engine = Engine(pg_url)
    worker_engine.register(BUSY)
    worker = Worker(worker_engine, batch=20, idle=0.01, max_idle=0.2)
    worker_crash: list[BaseException] = []

    def run_worker() -> None:
        try:
            worker.run(install_signals=False)
        except BaseException as exc:
            worker_crash.append(exc)

    windows: list[tuple[datetime, datetime]] = []
    restart_errors: list[BaseException] = []

    def restarter() -> None:
        try:
            for _ in range(RESTARTS):
                time.sleep(0.5)
                began = datetime.now(UTC)
                _ctl(pg_cluster, "restart")
                _wait_ready()
                windows.append((began, datetime.now(UTC)))
        except BaseException as exc:
            restart_errors.append(exc)

    worker_thread = threading.Thread(target=run_worker, daemon=True)
    restart_thread = threading.Thread(target=restarter, daemon=True)
    worker_thread.start()
    restart_thread.start()

    results: dict[str, tuple[str, object]] = {}
    failures: dict[str, datetime] = {}  # key -> when its first attempt failed
    failed_at: list[datetime] = []  # every StorageUnavailable the sender saw
    unavailable = 0
    unexpected: list[str] = []
    i = 0
    calm_until: float | None = None
    while calm_until is None or time.monotonic() < calm_until:
        if calm_until is None and not restart_thread.is_alive():
            calm_until = time.monotonic() + 1.0  # keep going after the last restart: reconnected?
        key = f"k{i}"
        i += 1
        iid, event = plan(key, INSTANCES)
        give_up = time.monotonic() + 60
        while True:
            try:
                snap = engine.send(iid, event, {"key": key}, idempotency_key=key)
                results[key] = ("applied", snap.version)
                break
            except EventRejected as exc:
                results[key] = ("rejected", type(exc).__name__)
                break
            except StorageUnavailable as exc:
                assert exc.retryable is True
                unavailable += 1
                failed_at.append(datetime.now(UTC))
                failures.setdefault(key, failed_at[-1])
                if time.monotonic() > give_up:
                    unexpected.append(f"{key}: still unavailable after 60 s: {exc}")
                    break
                time.sleep(0.05)  # the same engine, the same key: it must reconnect by itself
            except StateMachineError as exc:
                unexpected.append(f"{key}: {type(exc).__name__}: {exc}")
                break
    # Every instance into `b` now: its 20 ms timer can only be fired by the worker, reconnected.
    for iid in INSTANCES:
        if engine.get(iid).state == "a":
            key = f"final-{iid}"
            results[key] = ("applied", engine.send(iid, "FLIP", {"key": key}, idempotency_key=key).version)
    deadline = time.monotonic() + 15
    while any(engine.get(iid).state == "b" for iid in INSTANCES) and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    worker_thread.join(15)
    restart_thread.join(1)

    assert not restart_errors, f"could not restart PostgreSQL: {restart_errors}"
    assert len(windows) == RESTARTS
    assert not worker_crash, f"the worker died: {worker_crash!r}"
    assert not worker_thread.is_alive(), "the worker did not stop"
    assert not unexpected, unexpected[:5]
    assert unavailable > 0, "no call was in flight during the restart: the test proved nothing"
    # Once PostgreSQL accepts connections again, the engine recovers on its next call: at most
    # the one call that finds its old connection dead fails after a restart has finished.
    starts = [w[0] for w in windows[1:]] + [datetime.max.replace(tzinfo=UTC)]
    after_ready = [
        sum(1 for t in failed_at if end < t < nxt) for (_, end), nxt in zip(windows, starts, strict=True)
    ]
    assert all(n <= 1 for n in after_ready), f"failures after PostgreSQL was ready again: {after_ready}"

    # Nothing lost, nothing doubled, nothing half-written.
    flush = Engine(pg_url, clock=ManualClock(SystemClock().now() + timedelta(hours=1)))
    flush.register(BUSY)
    facts = Facts()
    for iid in INSTANCES:
        check_busy_instance(flush, iid, facts)
    assert set(facts.by_key) == set(results), "history and the client disagree on what was sent"
    committed_before_error = 0
    for key, (outcome, version) in results.items():
        _, seq, h_outcome, h_version, _, _ = facts.by_key[key]
        assert h_outcome == outcome, (key, outcome, facts.by_key[key])
        if outcome == "applied":
            assert h_version == version, (key, version, facts.by_key[key])
    when = {(iid, r.seq): r.at for iid in INSTANCES for r in flush.history(iid)}
    for key, failed_at in failures.items():
        iid, seq = facts.by_key[key][:2]
        if when[(iid, seq)] < failed_at - timedelta(milliseconds=5):
            committed_before_error += 1  # its commit raced the restart; the key resolved it
    last_restart = windows[-1][1]
    fired_after = [
        r
        for iid in INSTANCES
        for r in flush.history(iid)
        if r.event == BUSY_TIMER and r.actor == "timer" and r.at > last_restart
    ]
    assert fired_after, "the worker fired no timer after the restart: it did not reconnect"
    late = flush.run_due()
    for iid in INSTANCES:
        check_busy_instance(flush, iid)
    for e in (flush, engine, worker_engine):
        e.close()
    record(
        "db-restart[postgresql]",
        restarts=RESTARTS,
        restart_seconds=[round((b - a).total_seconds(), 1) for a, b in windows],
        sends=len(results),
        storage_unavailable_raised=unavailable,
        failures_after_ready_again=after_ready,
        keys_retried=len(failures),
        committed_before_the_error=committed_before_error,
        timers_fired_by_worker_after_restart=len(fired_after),
        timers_left_for_flush=late,
        history_records=facts.records,
        lost=0,
        duplicated=0,
        other_errors=0,
    )


def test_the_restart_test_skips_naming_the_variable_unless_opted_in() -> None:
    env = {k: v for k, v in os.environ.items() if k != DISRUPTIVE_ENV}
    node = f"{__file__}::test_postgres_restart_mid_load_fails_typed_reconnects_and_loses_nothing"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", node],
        capture_output=True, text=True, timeout=120, env=env, cwd=Path(__file__).parents[2], check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 skipped" in proc.stdout and f"{DISRUPTIVE_ENV}=1" in proc.stdout, proc.stdout[-2000:]
