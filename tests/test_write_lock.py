"""The kernel queue in front of SQLite's write lock (persistence/write_lock.py).

Another process is played by a second open file description of the side file (a `flock` is
held by an open file, so it conflicts with ours exactly as another process's would), or by a
real child process where dying or forking is the point.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import persistence.write_lock as write_lock_module
from persistence.database import Database
from persistence.errors import DatabaseUnavailable
from persistence.write_lock import SUFFIX, WriteLock
from statemachines import Engine, StorageUnavailable, machine, state, transition
from tests.blocking import wait_until_blocked_or_done

ROOT = Path(__file__).resolve().parents[1]
DOOR = machine("door", initial="closed", states={"closed": state(on={"OPEN": "open"}), "open": state()})


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'lock.db'}", busy_timeout_ms=5_000)
    with database.transaction() as cur:
        cur.execute("CREATE TABLE t (n INTEGER)")
    yield database
    database.close()


def lock_file(db: Database) -> str:
    return os.path.realpath(db.path) + SUFFIX


def taken_by_us(db: Database) -> bool:
    """Whether the side file is locked, seen from another open file (as another process sees it)."""
    fd = os.open(lock_file(db), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class OtherProcess:
    """Holds the side file's lock through an open file of its own."""

    def __init__(self, db: Database) -> None:
        self.fd = os.open(lock_file(db), os.O_RDWR | os.O_CREAT)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        os.close(self.fd)


def test_a_sqlite_write_transaction_holds_the_lock_until_it_commits(db: Database) -> None:
    with db.transaction() as cur:
        cur.execute("INSERT INTO t VALUES (1)")
        assert taken_by_us(db)
    assert not taken_by_us(db)


def test_a_rolled_back_transaction_lets_the_lock_go(db: Database) -> None:
    with pytest.raises(ZeroDivisionError), db.transaction() as cur:
        cur.execute("INSERT INTO t VALUES (1)")
        1 / 0  # noqa: B018
    assert not taken_by_us(db)
    with db.read() as cur:
        assert cur.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_reads_do_not_take_the_lock(db: Database) -> None:
    other = OtherProcess(db)
    try:
        with db.read() as cur:
            assert cur.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    finally:
        other.release()


def test_a_writer_waits_for_another_process_and_goes_on_when_it_lets_go(db: Database) -> None:
    other = OtherProcess(db)
    done: list[str] = []

    def write() -> None:
        with db.transaction() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
        done.append("written")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert wait_until_blocked_or_done(db.url, writer) == "blocked"
        assert done == []
    finally:
        other.release()
    writer.join(timeout=10)
    assert done == ["written"]


def test_a_writer_that_cannot_have_the_lock_in_time_gets_database_unavailable(db: Database) -> None:
    impatient = Database(db.url, busy_timeout_ms=100)
    other = OtherProcess(db)
    try:
        with pytest.raises(DatabaseUnavailable, match="write lock"), impatient.transaction() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
    finally:
        other.release()
    # The descriptor left waiting is closed once the lock comes to it: nothing stays locked.
    deadline = time.monotonic() + 10
    while taken_by_us(db) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not taken_by_us(db)
    with impatient.transaction() as cur:
        cur.execute("INSERT INTO t VALUES (2)")
    impatient.close()


def test_threads_of_one_process_queue_and_time_out_like_processes(db: Database) -> None:
    impatient = Database(db.url, busy_timeout_ms=100)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.transaction() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(DatabaseUnavailable), impatient.transaction():
            pass
    finally:
        release.set()
        holder.join(10)
    with impatient.transaction() as cur:
        cur.execute("INSERT INTO t VALUES (2)")
    impatient.close()


def test_the_engine_reports_a_lock_timeout_as_storage_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    engine = Engine(url, busy_timeout="100ms")
    engine.register(DOOR)
    engine.start("door", instance_id="d1")
    other = OtherProcess(engine.db)
    try:
        with pytest.raises(StorageUnavailable):
            engine.send("d1", "OPEN")
    finally:
        other.release()
    assert engine.get("d1").state == "closed"
    engine.close()


def test_a_killed_holder_does_not_leave_the_file_locked(db: Database) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from persistence.database import Database
                db = Database({db.url!r})
                with db.transaction() as cur:
                    cur.execute("INSERT INTO t VALUES (1)")
                    print("holding", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert taken_by_us(db)
    finally:
        holder.kill()
        holder.wait(10)
    with db.transaction() as cur:
        cur.execute("INSERT INTO t VALUES (2)")
    with db.read() as cur:
        assert [n for (n,) in cur.execute("SELECT n FROM t")] == [2]


def test_a_forked_child_closes_the_descriptor_it_inherited(db: Database) -> None:
    with db.transaction():
        pass
    lock = db.write_lock
    assert lock is not None
    inherited = lock._descriptor()  # the descriptor a child would inherit
    assert inherited is not None
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (runs in the child)
        try:
            os.fstat(inherited)
            answer = b"open"
        except OSError:
            answer = b"closed"
        os.write(write_end, answer)
        os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 16)
    os.close(read_end)
    os.waitpid(child, 0)
    assert answer == b"closed"
    os.fstat(inherited)  # the parent's own stays open


def test_a_group_commit_batch_holds_the_lock_until_it_commits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    engine = Engine(url, group_commit=True)
    seen: list[bool] = []

    def look(ctx: dict, event: object) -> None:
        seen.append(taken_by_us(engine.db))

    go = transition("b", action=look)
    engine.register(machine("probe", initial="a", states={"a": state(on={"GO": go}), "b": state()}))
    engine.start("probe", instance_id="p1")
    engine.send("p1", "GO")
    assert seen == [True]
    assert not taken_by_us(engine.db)
    engine.close()


def test_without_flock_the_busy_handler_does_the_waiting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(write_lock_module, "fcntl", None)
    lock = WriteLock(str(tmp_path / "w.db"))
    lock.acquire(0.1)
    lock.release()
    assert not (tmp_path / ("w.db" + SUFFIX)).exists()


def test_a_side_file_that_cannot_be_opened_falls_back_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ("ro.db" + SUFFIX)).mkdir()  # a directory where the side file would be
    db = Database(f"sqlite:///{tmp_path / 'ro.db'}")
    with caplog.at_level(logging.WARNING, logger="persistence.write_lock"):
        for n in range(3):
            with db.transaction() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
                cur.execute("INSERT INTO t VALUES (?)", (n,))
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "busy handler" in caplog.records[0].message
    db.close()


def test_only_sqlite_files_have_a_write_lock(postgres_url: str) -> None:
    assert Database("sqlite://").write_lock is None
    assert Database(postgres_url).write_lock is None


def test_every_database_on_one_file_shares_one_lock(db: Database, tmp_path: Path) -> None:
    again = Database(f"sqlite:///{tmp_path / '.' / 'lock.db'}")
    assert again.write_lock is db.write_lock


def test_a_writer_that_gave_up_waiting_does_not_keep_its_process_alive(db: Database) -> None:
    other = OtherProcess(db)  # holds the lock for the whole test
    try:
        gave_up = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    f"""
                    from persistence.database import Database
                    from persistence.errors import DatabaseUnavailable
                    db = Database({db.url!r}, busy_timeout_ms=100)
                    try:
                        with db.transaction():
                            pass
                    except DatabaseUnavailable:
                        print("gave up")
                    """
                ),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,  # the helper thread still waits in flock: it must not hold the exit
        )
    finally:
        other.release()
    assert (gave_up.returncode, gave_up.stdout.strip()) == (0, "gave up"), gave_up.stderr


def test_the_descriptor_goes_when_no_database_uses_the_file(tmp_path: Path) -> None:
    """A process that opens many SQLite files one after another keeps no descriptor per file."""
    import gc

    db = Database(f"sqlite:///{tmp_path / 'gone.db'}")
    with db.transaction() as cur:
        cur.execute("CREATE TABLE t (n INTEGER)")
    lock = db.write_lock
    assert lock is not None
    fd = lock._descriptor()  # the descriptor the lock keeps between transactions
    assert fd is not None
    os.fstat(fd)
    db.close()
    del db, lock
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)
    assert os.path.realpath(tmp_path / "gone.db") not in write_lock_module._locks
