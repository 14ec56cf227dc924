"""Storage errors, independent of the engine (which wraps them in its own typed errors)."""

from __future__ import annotations


class DatabaseError(Exception):
    """The database refused a statement."""


class DatabaseUnavailable(DatabaseError):
    """The connection failed, dropped, or a lock could not be had in time: retry later.

    The transaction did not commit, so nothing is half-written.
    """


class Conflict(DatabaseError):
    """A unique key is already taken (an id, an idempotency key, a token)."""


class UnsupportedDatabase(DatabaseError, ValueError):
    """The URL names a database this engine does not run on."""


class ReentrantTransaction(DatabaseError):
    """A transaction was opened on a database while this thread already has one open on it.

    Raised before anything is executed: the open transaction (an event whose action or guard
    called the engine) is left untouched, and its own error handling rolls it back.
    """
