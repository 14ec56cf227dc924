"""Driver exceptions as ours: a transient failure (retry later) or a permanent one (don't).

Why classify by error code and not by exception class: psycopg raises `OperationalError` for
PostgreSQL's classes 53-58 alike, so "index row size exceeds maximum" (54000, permanent: the
same statement fails forever) would look like a dropped connection (retryable). Retrying a
permanent error only delays the failure and hides its cause, so only what can succeed on a
later attempt is `DatabaseUnavailable`; everything else is a plain `DatabaseError`.
"""

from __future__ import annotations

import sqlite3

from persistence.errors import Conflict, DatabaseError, DatabaseUnavailable

#: PostgreSQL SQLSTATEs (or their two-character classes) worth retrying: the connection (08),
#: lack of resources such as too many connections (53), lock not available / lock timeout
#: (55P03), statement timeout or cancel (57014), server shutting down or starting (57P01-57P05),
#: I/O errors (58), serialization failure and deadlock (40001, 40P01), and a read-only
#: transaction on a standby just after a failover (25006).
PG_RETRYABLE_CLASSES = frozenset({"08", "53", "58"})
PG_RETRYABLE_STATES = frozenset(
    {"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "57P04", "57P05", "25006"}
)
PG_UNIQUE_VIOLATION = "23505"

#: SQLite primary result codes worth retrying: busy/locked (another writer), and I/O or
#: can't-open (a file system that is briefly unavailable). TOOBIG, CORRUPT, NOTADB, CONSTRAINT,
#: MISMATCH, RANGE, plain ERROR (bad SQL), READONLY, FULL... are permanent.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_PROTOCOL = 5, 6, 10, 14, 15
SQLITE_RETRYABLE = frozenset({SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_PROTOCOL})
#: Extended codes of SQLITE_CONSTRAINT that mean "this key is taken".
SQLITE_UNIQUE_CONSTRAINTS = frozenset({1555, 2067})  # PRIMARYKEY, UNIQUE


def translate(exc: BaseException) -> BaseException:
    """Map a driver exception to ours; leave everything else (an action's error) alone."""
    if isinstance(exc, DatabaseError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return _sqlite(exc)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL extra not installed
        return exc
    if isinstance(exc, psycopg.Error):
        return _postgres(exc, psycopg)
    return exc


def _sqlite(exc: sqlite3.Error) -> DatabaseError:
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        # Older SQLite builds may not report the extended code: then any integrity error on a
        # statement of ours is a taken key (we declare no CHECK constraints, and NOT NULL
        # columns are always bound).
        return Conflict(text) if code is None or code in SQLITE_UNIQUE_CONSTRAINTS else DatabaseError(text)
    if code is not None:
        retryable = code & 0xFF in SQLITE_RETRYABLE
    else:  # no code (an error raised by the sqlite3 module itself): judge by the message
        lowered = text.lower()
        retryable = any(w in lowered for w in ("locked", "busy", "unable to open", "disk i/o"))
    return DatabaseUnavailable(text) if retryable else DatabaseError(text)


def _postgres(exc: BaseException, psycopg: object) -> DatabaseError:
    text = str(exc).strip() or type(exc).__name__
    state = getattr(exc, "sqlstate", None)
    if state is None:  # a code psycopg has no class for: the server's diagnostic still has it
        diag = getattr(exc, "diag", None)
        state = getattr(diag, "sqlstate", None)
    if state is None:
        # No server answer at all: the connection failed or was closed (OperationalError,
        # InterfaceError); anything else without a code is a client-side misuse.
        transient = (psycopg.OperationalError, psycopg.InterfaceError)  # type: ignore[attr-defined]
        return DatabaseUnavailable(text) if isinstance(exc, transient) else DatabaseError(text)
    if state == PG_UNIQUE_VIOLATION:
        return Conflict(text)
    if state[:2] in PG_RETRYABLE_CLASSES or state in PG_RETRYABLE_STATES:
        return DatabaseUnavailable(text)
    return DatabaseError(text)
