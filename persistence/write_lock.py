"""A kernel lock that queues SQLite writers, so that a waiting writer wakes when the holder commits.

Why: SQLite lets one writer at a time into a database file. A connection that finds the write
lock taken does not wait on it: its busy handler sleeps and tries again, with sleeps that grow
to 100 ms. Two processes writing at a steady rate (the HTTP service's workers, a migration next
to a worker) therefore take turns badly: the waiter sleeps through the other's commit, and the
other, which never slept, takes the lock again at once. Measured on the HTTP service (two
uvicorn workers on one file): p99 ~130 ms, and a bulk migration could keep a sender waiting for
its whole run. A kernel lock does not poll: `flock` puts the waiter to sleep in the kernel and
wakes it the moment the holder lets go.

How: every write transaction on a SQLite file takes this lock before `BEGIN IMMEDIATE` and lets
it go after `COMMIT` or the rollback (persistence.database, persistence.group_commit), so
SQLite's own lock is then almost always free when asked for. The lock is an exclusive `flock`
on an empty side file, `<database>-writelock`, next to SQLite's `-wal` and `-shm` files:

- one descriptor per process and file, shared by the process's threads and engines, which
  queue first on a `threading.Lock` (a `flock` is held by an open file, not by a thread);
- the busy timeout still applies: a writer that cannot have the lock in time gets
  `DatabaseUnavailable`, as it would from SQLite ("database is locked"). `flock` itself cannot
  time out, so a writer that finds the file locked by another process waits in a helper thread
  and gives up on its result at the deadline (the helper then closes that descriptor as soon as
  the lock comes to it, which lets it go);
- a process that dies holding the lock loses it with its descriptors (the kernel's rule), so a
  killed writer never leaves the file locked. A forked child closes the descriptors it
  inherited, so that a parent killed later is not kept "holding" through its child.

It only orders writers: correctness still rests on SQLite's own lock, which every writer also
takes. A writer that does not take this lock (another program, an older engine) is simply not
queued. Where `fcntl` does not exist (Windows), or the side file cannot be opened (a read-only
directory), there is no kernel lock and SQLite's busy handler does the waiting, as before.
In-memory databases have one shared connection and a lock of their own, and do not use this.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import weakref

from persistence.errors import DatabaseUnavailable

try:
    import fcntl
except ImportError:  # Windows: no flock; SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_EX_NB = fcntl.LOCK_EX | fcntl.LOCK_NB if fcntl is not None else 0

#: The side file's suffix, next to SQLite's `-wal` and `-shm`.
SUFFIX = "-writelock"


class WriteLock:
    """The write lock of one SQLite file in this process; see the module docstring.

    `acquire(timeout)` / `release()` bracket one write transaction. Release may happen on
    another thread than acquire (a group commit's batch is committed by its last member)."""

    def __init__(self, path: str) -> None:
        self.path = path + SUFFIX
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._usable = fcntl is not None
        self._waiter: _FileWaiter | None = None

    def acquire(self, timeout: float) -> None:
        """Take the lock within `timeout` seconds, or raise `DatabaseUnavailable`."""
        deadline = None  # the clock is read only when there is a wait (this runs per event)
        if not self._threads.acquire(blocking=False):
            deadline = time.monotonic() + timeout
            self._block_on_threads(deadline)
        try:
            fd = self._fd
            if fd is None:
                fd = self._descriptor()
                if fd is None:
                    return
            try:
                fcntl.flock(fd, LOCK_EX_NB)
            except BlockingIOError:
                self._block_on_file(fd, deadline or time.monotonic() + timeout)
            except OSError as exc:  # a file system without flock (some network mounts)
                self._give_up(exc)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        fd = self._fd
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            # Cannot unlock: closing the descriptor lets the lock go just the same.
            self._forget_descriptor()
        finally:
            self._threads.release()

    # Waiting ---------------------------------------------------------------------------------
    # (tests/blocking.py recognises a thread waiting here by these two functions' names.)
    def _block_on_threads(self, deadline: float) -> None:
        if not self._threads.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise self._timed_out()

    def _block_on_file(self, fd: int, deadline: float) -> None:
        """Wait for another process to let go of the file, through the helper thread."""
        if self._waiter is None:
            self._waiter = _FileWaiter(self.path)
        wait = self._waiter.wait_for(fd)
        if wait.done.wait(max(0.0, deadline - time.monotonic())) or not wait.abandon():
            if wait.error is not None:
                self._give_up(wait.error)
            return
        # The helper still waits with this descriptor: it is its own now, to be closed once
        # the lock comes to it (which lets the lock go again at once).
        self._fd = None
        raise self._timed_out()

    def _timed_out(self) -> DatabaseUnavailable:
        return DatabaseUnavailable(
            f"database is locked: another writer held the SQLite write lock ({self.path})"
            " longer than the busy timeout"
        )

    # The descriptor --------------------------------------------------------------------------
    def _descriptor(self) -> int | None:
        if self._fd is None and self._usable:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                self._give_up(exc)
        return self._fd

    def _give_up(self, exc: OSError) -> None:
        """No kernel queue for this file in this process: SQLite's busy handler waits instead."""
        self._usable = False
        self._forget_descriptor()
        log.warning(
            "cannot lock %s (%s): SQLite writers on this file wait in SQLite's busy handler"
            " instead of a kernel queue",
            self.path,
            exc,
        )

    def _forget_descriptor(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            _close(fd)

    def __del__(self) -> None:
        """No `Database` uses the file any more: its descriptor and helper thread go too (a
        process that opens many files, one after another, must not keep a descriptor each)."""
        with contextlib.suppress(Exception):  # at interpreter shutdown, nothing is left to tidy
            self._forget_descriptor()
            if self._waiter is not None:
                self._waiter.stop()

    def after_fork_in_child(self) -> None:
        """Drop what the child inherited: the parent's descriptor (closing the child's copy
        leaves the parent's lock alone), a thread lock another thread may have held, the
        helper thread (not running in the child)."""
        self._forget_descriptor()
        self._threads = threading.Lock()
        self._waiter = None


class _Wait:
    """One writer's wait for the file, handed to the helper thread."""

    __slots__ = ("_guard", "abandoned", "done", "error", "fd", "finished")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.done = threading.Event()
        self.error: OSError | None = None
        self.finished = self.abandoned = False
        self._guard = threading.Lock()

    def finish(self, error: OSError | None) -> None:
        """The helper got the lock (or an error): hand it over, or drop it if nobody waits."""
        with self._guard:
            self.finished, self.error = True, error
            abandoned = self.abandoned
        if abandoned:
            _close(self.fd)
        self.done.set()

    def abandon(self) -> bool:
        """The writer gives up; False when the lock came to it in the meantime (then it is its own)."""
        with self._guard:
            if self.finished:
                return False
            self.abandoned = True
            return True


class _FileWaiter:
    """A daemon thread that blocks in `flock` for the writers of one process, one at a time
    (they queue on the thread lock first). A daemon: a wait abandoned at the busy timeout must not
    keep the interpreter from exiting."""

    def __init__(self, path: str) -> None:
        self._requests: queue.SimpleQueue[_Wait | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name=f"write-lock {path}", daemon=True).start()

    def wait_for(self, fd: int) -> _Wait:
        wait = _Wait(fd)
        self._requests.put(wait)
        return wait

    def stop(self) -> None:
        self._requests.put(None)

    def _run(self) -> None:
        while True:
            wait = self._requests.get()
            if wait is None:
                return
            try:
                fcntl.flock(wait.fd, fcntl.LOCK_EX)
            except OSError as exc:
                wait.finish(exc)
            else:
                wait.finish(None)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


#: One lock per file per process (by real path), shared by every `Database` on that file (each
#: holds it); it goes when the last of them does.
_locks: weakref.WeakValueDictionary[str, WriteLock] = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


def write_lock_for(path: str) -> WriteLock:
    """The process's lock for the SQLite file at `path`."""
    real = os.path.realpath(path)
    with _locks_guard:
        lock = _locks.get(real)
        if lock is None:
            lock = _locks[real] = WriteLock(real)
        return lock


def _after_fork_in_child() -> None:
    global _locks_guard
    _locks_guard = threading.Lock()
    for lock in list(_locks.values()):
        lock.after_fork_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
