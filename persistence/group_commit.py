"""Group commit: the events of concurrent threads of one process share one commit (one fsync).

Why: on a disk where an fsync costs what it costs (0.1-5 ms on ordinary SSDs and cloud volumes),
a durable event per transaction is bounded by fsyncs per second, however little CPU it needs.
Threads that send to different instances at the same moment can instead write their events into
one open transaction and commit it once: each event's work is paid per event, the fsync once per
batch.

How (one shared connection, owned by a lock):
- a thread takes the lock, opens the batch's transaction if none is open, and runs its event
  inside a `SAVEPOINT`; an event that raises is rolled back to its savepoint alone, and its
  error is raised to its caller only (the other events of the batch are untouched);
- after its event, a thread commits the batch itself when no other thread is waiting for the
  lock (or the batch is full); otherwise it leaves the transaction open for them and waits;
  the last thread of a burst always finds nobody waiting, so every batch is committed promptly;
- every thread whose event is in a batch returns only after that batch's `COMMIT` succeeded:
  its event is durable when the call returns. If the commit itself fails (the database, not an
  event: disk full, connection lost), every event of the batch gets that error, and none of
  them is stored.

One thread alone pays a savepoint and a lock more than a plain transaction; the engine uses this
only when asked (`Engine(group_commit=True)`). In-memory databases have nothing to fsync and do
not use it. Events of the same instance from two threads are serialised by the lock and applied
in order in the same transaction, so locking, idempotency receipts and history stay exact.
"""

from __future__ import annotations

import os
import threading
from contextlib import suppress
from typing import Any

from persistence.database import Database, hold, release
from persistence.errors import DatabaseError
from persistence.translate import translate

#: Events per batch at most: a steady stream of senders still commits regularly.
MAX_BATCH = 64


class _Batch:
    """One open transaction: its members wait for `done`; `error` is set when the commit failed."""

    __slots__ = ("done", "error", "members")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.members = 0


class GroupCommit:
    """The shared connection and the batch it has open; `transaction()` is one event."""

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.db = db
        self.max_batch = max_batch
        self._lock = threading.Lock()  # owns the connection and the open batch
        self._count_lock = threading.Lock()
        self._queued = 0  # threads waiting for `_lock`
        self._conn: Any = None
        self._pid = 0
        self._batch: _Batch | None = None
        self._locked = False  # holds the SQLite file's write lock (persistence.write_lock)
        #: Batches committed and events in them (for tests and benchmarks).
        self.commits = 0
        self.events = 0

    @property
    def queued(self) -> int:
        """Threads waiting to apply their event right now."""
        return self._queued

    def transaction(self) -> GroupTransaction:
        """`with group.transaction() as cur:` applies one event in the shared batch."""
        return GroupTransaction(self)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with suppress(Exception):
                    conn.close()
            self._unlock()

    # Used by GroupTransaction, under `_lock` -----------------------------------------------------
    def _cursor(self) -> Any:
        if self._conn is None or self._pid != os.getpid():
            # (a forked child starts afresh: the parent's batch and lock are not its own)
            self._conn, self._pid, self._batch = self.db.new_connection(), os.getpid(), None
            self._locked = False
        return self._conn.cursor()

    def _begin(self, cur: Any) -> _Batch:
        batch = self._batch
        if batch is None:
            if self.db.dialect == "sqlite":
                self._locked = self.db.lock_writes()
                cur.execute("BEGIN IMMEDIATE")
            batch = self._batch = _Batch()
        return batch

    def _finish(self, batch: _Batch) -> None:
        """Commit the batch now if nobody is waiting to join it (or it is full)."""
        if self._queued and batch.members < self.max_batch:
            return
        self._batch = None
        try:
            if self.db.dialect == "sqlite":
                self._conn.execute("COMMIT")
            else:
                self._conn.commit()
            self.commits += 1
            self.events += batch.members
            self._unlock()
        except BaseException as exc:
            batch.error = exc
            self._abandon()
        batch.done.set()

    def _abandon(self) -> None:
        """The batch's transaction cannot go on: roll back what is left, drop a broken connection."""
        self._batch = None
        conn = self._conn
        if conn is not None:
            try:
                if self.db.dialect == "sqlite":
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                else:
                    conn.rollback()
            except Exception:
                self._conn = None
                with suppress(Exception):
                    conn.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            self.db.unlock_writes()


class GroupTransaction:
    """One event in the shared batch: a savepoint in, released or rolled back out; the caller
    leaves the `with` block only once its batch is committed (or with the error that stopped it).
    """

    __slots__ = ("_batch", "_group", "_held")

    def __init__(self, group: GroupCommit) -> None:
        self._group = group
        self._batch: _Batch | None = None
        self._held = False

    def __enter__(self) -> Any:
        group = self._group
        hold(group.db, write=True)  # refuses an engine call from inside an action or a guard
        self._held = True
        with group._count_lock:
            group._queued += 1
        group._lock.acquire()
        with group._count_lock:
            group._queued -= 1
        try:
            cur = group._cursor()
            self._batch = group._begin(cur)
            cur.execute("SAVEPOINT sm_event")
        except BaseException as exc:
            # The connection or its transaction failed before this event began: end the batch
            # (a broken connection is dropped, the next event reconnects); its members, if any,
            # get this error.
            batch = group._batch
            group._abandon()
            if batch is not None and batch.members:
                batch.error = exc
                batch.done.set()
            group._lock.release()
            self._leave()
            raise _typed(group.db, exc) from exc
        return cur

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        group, batch = self._group, self._batch
        assert batch is not None
        try:
            if exc is None:
                try:
                    group._conn.execute("RELEASE SAVEPOINT sm_event")
                    batch.members += 1
                except BaseException as release_error:
                    exc = release_error
                    self._undo(batch, exc)
            else:
                self._undo(batch, exc)
            if group._batch is batch:
                if batch.members:
                    group._finish(batch)
                else:  # nothing of anyone's to commit: end the empty transaction
                    group._abandon()
        finally:
            group._lock.release()
            self._leave()
        if exc is not None:
            raised = _typed(group.db, exc)
            if raised is exc:
                return None  # the event's own error propagates unchanged
            raise raised from exc
        batch.done.wait()
        if batch.error is not None:
            raise _typed(group.db, batch.error) from batch.error
        return None

    def _undo(self, batch: _Batch, exc: BaseException) -> None:
        """Roll this event back to its savepoint; if that is impossible (the database ended the
        whole transaction), the batch is lost and every member gets this error."""
        group = self._group
        try:
            group._conn.execute("ROLLBACK TO SAVEPOINT sm_event")
            group._conn.execute("RELEASE SAVEPOINT sm_event")
        except BaseException:
            if group._batch is batch:
                batch.error = (
                    exc
                    if isinstance(exc, DatabaseError)
                    else DatabaseError(f"the batch's transaction was lost with an event's error: {exc}")
                )
                group._abandon()
                batch.done.set()

    def _leave(self) -> None:
        if self._held:
            release(self._group.db)
            self._held = False


def _typed(db: Database, exc: BaseException) -> BaseException:
    """Driver errors as the database's typed errors (through its `error_hook`); anything else
    (an action's error) unchanged."""
    translated = translate(exc)
    if translated is exc and not isinstance(exc, DatabaseError):
        return exc
    return db.error_hook(translated) if db.error_hook is not None else translated
