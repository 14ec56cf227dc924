"""Deterministic overlap for race tests: wait until another thread is known to be blocked on a lock.

A race test holds a lock (an action that has not returned, a raw transaction) while another thread
tries to take it. Sleeping "long enough" before releasing can pass without the two ever meeting
(a slow machine starts the other thread late). These helpers instead wait, with a deadline, until
the other side is observably waiting for the lock, or has finished without needing it (PostgreSQL
claims with `SKIP LOCKED`): either way its attempt happened while the lock was held.

How "waiting" is observed:
- PostgreSQL: a backend that has touched this test's schema waits on a heavyweight lock
  (`pg_stat_activity.wait_event_type = 'Lock'`); each test has a schema of its own, so no other
  test's backends count.
- SQLite: the thread is inside the C call of `BEGIN IMMEDIATE` (SQLite's writer lock), which
  cannot return while the other side holds the lock; or it waits in the kernel queue that
  engine writers take first (persistence/write_lock.py, whose waiting functions are named
  `_block_on_*`: a thread only gets there after finding the lock taken).
"""

from __future__ import annotations

import dis
import linecache
import sys
import threading
import time
from typing import Any

_PG_WAITERS = """
SELECT count(*) FROM pg_stat_activity a
WHERE a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid() AND EXISTS (
    SELECT 1 FROM pg_locks l
    JOIN pg_class c ON c.oid = l.relation
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE l.pid = a.pid AND n.nspname = current_schema()
)
"""


def _pg_waiters(url: str) -> int:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        row = conn.execute(_PG_WAITERS).fetchone()
        return int(row[0]) if row else 0


def _in_sqlite_write_lock_queue(frame: Any) -> bool:
    """Whether a frame of this stack waits in persistence/write_lock.py for another writer."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename.endswith("write_lock.py") and code.co_name.startswith("_block_on_"):
            return True
        frame = frame.f_back
    return False


def _in_sqlite_begin_immediate(thread: threading.Thread) -> bool:
    """Whether `thread` is inside the `execute("BEGIN IMMEDIATE")` call (not merely before it),
    or waiting in the engine's write-lock queue in front of it."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return False
    if _in_sqlite_write_lock_queue(frame):
        return True
    code = frame.f_code
    if not code.co_filename.endswith("database.py"):
        return False
    # f_lasti is the instruction being executed. A thread only gives up the interpreter at a call
    # (or a loop back-edge), so a thread seen at the call instruction of this line is inside the C
    # function; it cannot have returned from it while the other side holds the lock. (Python 3.11
    # makes the call in PRECALL once specialised, in CALL otherwise; 3.12+ has CALL only.)
    if dis.opname[code.co_code[frame.f_lasti]] not in ("PRECALL", "CALL"):
        return False
    return "BEGIN IMMEDIATE" in linecache.getline(code.co_filename, frame.f_lineno).upper()


def wait_until_blocked_or_done(url: str, thread: threading.Thread, timeout: float = 20.0) -> str:
    """Return "blocked" once `thread` waits for a database lock, "done" if it finished first.

    Fails (AssertionError) when neither happens within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pg = url.startswith("postgresql")
    while time.monotonic() < deadline:
        if not thread.is_alive():
            return "done"
        if (_pg_waiters(url) > 0) if pg else _in_sqlite_begin_immediate(thread):
            return "blocked"
        time.sleep(0.005)
    raise AssertionError(f"{thread.name} neither blocked on a lock nor finished within {timeout} s")
