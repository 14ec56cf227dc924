"""Connections and transactions on SQLite or PostgreSQL, through the raw DB-API drivers.

Why raw drivers: on the hot path SQLAlchemy's per-statement overhead costs more than SQLite
itself. Statements are plain SQL text with `:name` parameters, converted once per dialect.
One connection per thread (and per process: a forked child opens its own).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from persistence.errors import (
    DatabaseError,
    DatabaseUnavailable,
    ReentrantTransaction,
    UnsupportedDatabase,
)
from persistence.translate import translate
from persistence.urls import parse_url
from persistence.write_lock import WriteLock, write_lock_for

SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
WAL_AUTOCHECKPOINT_PAGES = 1_000
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Database:
    """A database URL plus the settings the engine needs; hands out per-thread connections."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", busy_timeout_ms: int = 30_000) -> None:
        self.url = url
        parsed = parse_url(url)
        backend = parsed.backend
        if backend == "sqlite":
            self.dialect = "sqlite"
            self.path = parsed.database or ":memory:"
            #: In memory (`sqlite://`, `:memory:`): one private database per `Database`, on one
            #: connection that every thread shares, one transaction at a time (`serial`); it lives
            #: as long as this object. A memory database is per connection, so per-thread
            #: connections would each see an empty one.
            self.serial = threading.RLock() if self.path == ":memory:" else None
            sync = str(sqlite_synchronous).upper()
            if sync not in SQLITE_SYNCHRONOUS:
                raise UnsupportedDatabase(
                    f"sqlite_synchronous must be one of {SQLITE_SYNCHRONOUS}, got {sqlite_synchronous!r}"
                )
            self.synchronous = sync
        elif backend == "postgresql":
            self.dialect = "postgresql"
            self.serial = None
            try:
                import psycopg  # noqa: F401  (fail here, with advice, not at the first query)
            except ImportError:
                raise UnsupportedDatabase(
                    f"{url!r} needs the PostgreSQL driver psycopg, which is not installed:"
                    " pip install 'statemachines[postgres]'"
                ) from None
            # libpq gets the URL as written (minus the SQLAlchemy driver suffix): re-rendering it
            # through SQLAlchemy turns `%20` into `+`, which libpq does not decode in `options`.
            self.conninfo = "postgresql://" + url.split("://", 1)[1]
        else:
            raise UnsupportedDatabase(
                f"unsupported database {backend!r} in {url!r}: use sqlite:///path or postgresql://..."
            )
        self.busy_timeout_ms = busy_timeout_ms
        #: SQLite files: the kernel queue writers take before `BEGIN IMMEDIATE`, so a waiting
        #: writer wakes at the holder's commit instead of polling (persistence.write_lock).
        self.write_lock: WriteLock | None = (
            write_lock_for(self.path) if self.dialect == "sqlite" and self.serial is None else None
        )
        #: What "the same database" means for the re-entrancy check: two `Database` objects (two
        #: engines) on one file or one server+schema would deadlock each other just the same.
        self.identity = (
            ("postgresql", self.conninfo)
            if self.dialect == "postgresql"
            else ("sqlite", f":memory:{id(self)}")
            if self.serial is not None
            else ("sqlite", os.path.realpath(self.path))
        )
        #: Maps a `DatabaseError` to the exception callers should see (the engine's own types).
        self.error_hook: Callable[[BaseException], BaseException] | None = None
        self._ts_cache: tuple[datetime | None, Any] = (None, None)
        self._local = threading.local()

    @property
    def in_memory(self) -> bool:
        return self.serial is not None

    # SQL text ------------------------------------------------------------------------------------
    def sql(self, text: str) -> str:
        """Convert `:name` parameters to the driver's style (once, at statement build time)."""
        if self.dialect == "postgresql":
            return _NAMED.sub(r"%(\1)s", text.replace("%", "%%"))
        return text

    def ts(self, when: datetime) -> Any:
        """A timestamp as the driver stores it: SQLite gets sortable UTC text.

        The last conversion is kept: one event writes the same instant several times."""
        if self.dialect != "sqlite":
            return when
        last, text = self._ts_cache
        if last is not when:
            text = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            self._ts_cache = (when, text)
        return text

    def from_ts(self, value: Any) -> datetime:
        """An aware UTC datetime, whatever the PostgreSQL session's TimeZone or the text's offset."""
        when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)

    # Connections ---------------------------------------------------------------------------------
    def connection(self) -> Any:
        if self.serial is not None:
            return self._memory_connection()
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = self._connect()
            local.conn, local.pid = conn, os.getpid()
        return conn

    def _connect(self) -> Any:
        try:
            if self.dialect == "sqlite":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=self.busy_timeout_ms / 1000,
                )
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    _enable_wal(conn, self.busy_timeout_ms / 1000)
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                # SQLite's own interval, ~4 MB of WAL (docs/performance.md: 10,000 pages, chosen
                # on a disk with a 8 us fsync, gained nothing measurable on either kind of disk
                # and made each checkpoint, paid by one unlucky commit, ten times longer).
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
                return conn
            import psycopg

            return psycopg.connect(self.conninfo, autocommit=False, connect_timeout=10)
        except Exception as exc:
            raise translate(exc) from exc

    def _memory_connection(self) -> sqlite3.Connection:
        conn = getattr(self, "_memory", None)
        if conn is None:
            if getattr(self, "_closed", False):
                raise DatabaseError("this in-memory database was closed: its data is gone")
            try:
                conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            except Exception as exc:
                raise translate(exc) from exc
            self._memory = conn
        return conn

    def new_connection(self) -> Any:
        """A connection of its own, with this database's settings, that no thread owns: for
        `persistence.group_commit`, which shares one between threads under its lock."""
        return self._connect()

    def discard(self) -> None:
        """Drop this thread's connection (after a connection error, or on close).

        An in-memory database keeps its one connection: dropping it would drop the data."""
        if self.serial is not None:
            return
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def close(self) -> None:
        """Close this thread's connection; an in-memory database is gone once closed."""
        if self.serial is not None:
            conn, self._memory, self._closed = getattr(self, "_memory", None), None, True
            if conn is not None:
                with suppress(Exception):
                    conn.close()
            return
        self.discard()

    def lock_writes(self) -> bool:
        """Queue for the SQLite file's write lock (persistence.write_lock), to be taken before
        `BEGIN IMMEDIATE`. True when taken (give it back with `unlock_writes` after the commit or
        the rollback); False where there is none (PostgreSQL, memory, no `fcntl`)."""
        if self.write_lock is None:
            return False
        self.write_lock.acquire(self.busy_timeout_ms / 1000)
        return True

    def unlock_writes(self) -> None:
        if self.write_lock is not None:
            self.write_lock.release()

    def transaction(self) -> Transaction:
        """One write transaction: SQLite `BEGIN IMMEDIATE`, PostgreSQL implicit BEGIN."""
        return Transaction(self, write=True)

    def read(self) -> Transaction:
        """A read: SQLite reads outside a transaction; PostgreSQL one that is closed at once."""
        return Transaction(self, write=False)

    def _rollback(self, conn: Any) -> None:
        try:
            if self.dialect == "sqlite":
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            else:
                conn.rollback()
        except Exception:
            self.discard()


#: The databases (by `Database.identity`) this thread has a transaction open on. An action or a
#: guard runs inside its event's transaction; if it calls the engine again, a second transaction
#: on the same database from the same thread either breaks the first (SQLite: the nested BEGIN
#: fails and its rollback ends the outer transaction) or commits in the middle of it
#: (PostgreSQL: a second connection), or waits for the first forever (a row lock held by this
#: very thread). So it is refused before it touches the database.
_open = threading.local()


def hold(db: Database, write: bool) -> None:
    """Mark this thread as having a transaction open on `db` (for transactions that are not a
    `Transaction`, such as a group commit's event); raises `ReentrantTransaction` (through the
    database's `error_hook`) when it already has one, as `Transaction` does."""
    held: dict[tuple[str, str], bool] = _open.__dict__.setdefault("held", {})
    if db.identity in held:
        error = ReentrantTransaction(
            "this thread already has a transaction open on this database"
            " (the engine was called from inside an action or a guard)"
        )
        raise (db.error_hook(error) if db.error_hook is not None else error) from None
    held[db.identity] = write


def release(db: Database) -> None:
    """Undo `hold`."""
    _open.__dict__.setdefault("held", {}).pop(db.identity, None)


class Transaction:
    """`with db.transaction() as cur:` commits on success and rolls back on any exception.

    Driver errors come out as `DatabaseError` subclasses (passed through the database's
    `error_hook`, which lets the engine raise its own types); anything else (an action's error)
    comes out unchanged. Opening one while the thread already has one open on the same database
    raises `ReentrantTransaction` and leaves the open one alone. A class, not a generator: this
    runs once per event.
    """

    __slots__ = ("_conn", "_db", "_locked", "_outermost", "_write")

    def __init__(self, db: Database, write: bool) -> None:
        self._db = db
        self._write = write

    def __enter__(self) -> Any:
        db = self._db
        self._conn = None
        self._locked = False
        held: dict[tuple[str, str], bool] = _open.__dict__.setdefault("held", {})
        open_write = held.get(db.identity)
        # A read inside a read is harmless (it ends the outer read's snapshot at worst); anything
        # inside a write transaction, or a write inside a read, is not.
        self._outermost = open_write is None
        if not self._outermost and (open_write or self._write):
            error = ReentrantTransaction(
                "this thread already has a transaction open on this database"
                " (the engine was called from inside an action or a guard)"
            )
            raise (db.error_hook(error) if db.error_hook is not None else error) from None
        if self._outermost:
            held[db.identity] = self._write
            if db.serial is not None:
                db.serial.acquire()
        try:
            conn = self._conn = db.connection()
            cur = conn.cursor()
            if self._write and db.dialect == "sqlite":
                self._locked = db.lock_writes()
                cur.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            self._fail(exc)
        return cur

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            try:
                if self._db.dialect == "postgresql":
                    self._conn.commit()
                elif self._write:
                    self._conn.execute("COMMIT")
                    if self._locked:
                        self._locked = False
                        self._db.unlock_writes()
                if self._outermost:
                    del _open.held[self._db.identity]
                    if self._db.serial is not None:
                        self._db.serial.release()
                return
            except BaseException as commit_error:
                exc = commit_error
        self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        db = self._db
        if self._conn is not None:
            db._rollback(self._conn)
        if self._locked:
            self._locked = False
            db.unlock_writes()
        if self._outermost:
            _open.held.pop(db.identity, None)
            if db.serial is not None:
                db.serial.release()
        translated = translate(exc)
        if isinstance(translated, DatabaseUnavailable):
            db.discard()
        if translated is exc and not isinstance(exc, DatabaseError):
            raise exc
        hooked = db.error_hook(translated) if db.error_hook is not None else translated
        if hooked is exc:
            raise exc
        raise hooked from exc


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch a file to WAL. The switch needs an exclusive lock and SQLite answers SQLITE_BUSY
    at once (no busy handler) while another process opens or switches the same fresh file, so
    retry until the busy timeout; a process that lost the race finds the file in WAL already."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (a driver error or one of ours) says "the database, not this statement":
    a lost connection, a lock timeout, a deadlock. Retrying later may succeed; blaming the row
    being processed would be wrong."""
    return isinstance(translate(exc), DatabaseUnavailable)
