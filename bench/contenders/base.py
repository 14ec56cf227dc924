"""What every contender implements, and the database set-up they share.

The harness only knows this interface, so adding a contender (the engine's
among them) is one module with a ``make()`` function.  Set-up work that must
be identical across contenders (SQLite pragmas, the PostgreSQL schema that
isolates one contender's tables) lives here so no contender gets a cheaper
or a more expensive database by accident.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import psycopg

Backend = Literal["sqlite", "postgres"]
SYNC_LEVELS = ("FULL", "NORMAL")
BUSY_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class Target:
    """Where one contender writes in one round: always a fresh database.

    ``workdir`` is a fresh empty directory (SQLite files go there);
    ``schema`` is the PostgreSQL schema reserved for this contender, dropped
    and recreated at set-up; ``sync`` is SQLite's ``synchronous`` level.
    """

    backend: Backend
    workdir: Path
    sync: str = "FULL"
    pg_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    schema: str = "bench_default"

    @property
    def sqlite_path(self) -> Path:
        return self.workdir / "bench.db"

    @property
    def sqlalchemy_url(self) -> str:
        """The same database as a SQLAlchemy URL (psycopg 3 driver)."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        return self.pg_url.replace("postgresql://", "postgresql+psycopg://", 1)

    @property
    def sqlalchemy_url_in_schema(self) -> str:
        """The PostgreSQL URL with ``search_path`` set to this contender's schema.

        For code that only takes a URL (the engine): psycopg passes the
        ``options`` query parameter to libpq.
        """
        sep = "&" if "?" in self.sqlalchemy_url else "?"
        return f"{self.sqlalchemy_url}{sep}options=-csearch_path%3D{self.schema}"


class Contender(Protocol):
    """One way of applying durable events to order instances."""

    name: str
    backends: frozenset[str]

    def setup(self, target: Target) -> None:
        """Create a fresh, empty store (untimed)."""

    def start(self, instance_id: str, context: dict[str, Any]) -> None:
        """Create an instance in the initial state: one durable transaction."""

    def send(self, instance_id: str, event: str, payload: dict[str, Any]) -> None:
        """Apply one event: one durable transaction."""

    def states(self) -> dict[str, int]:
        """Instances per state, read back after the run to check the work (untimed)."""

    def close(self) -> None:
        """Release connections and background threads."""


def now() -> datetime:
    return datetime.now(UTC)


WAL_AUTOCHECKPOINT = 1_000  # pages (the engine's, persistence/database.py)


def sqlite_pragmas(conn: sqlite3.Connection, sync: str) -> None:
    """The durability settings every SQLite contender runs with.

    WAL plus ``synchronous=FULL`` fsyncs the WAL at every commit (durable
    across power loss); ``NORMAL`` skips that fsync (survives a process
    crash).  The busy timeout only matters if something else holds the lock.
    """
    if sync not in SYNC_LEVELS:
        raise ValueError(f"sync must be one of {SYNC_LEVELS}, not {sync!r}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # The engine's own setting (persistence/database.py), given to everyone: same database settings.
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")


def pg_reset_schema(pg_url: str, schema: str) -> None:
    """Drop and recreate this contender's own schema, and nothing else."""
    if not schema.startswith("bench_") or not schema.replace("_", "").isalnum():
        raise ValueError(f"refusing to reset schema {schema!r}: not a bench_ schema")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")


def pg_options(schema: str) -> str:
    """libpq ``options`` that point a connection's search_path at one schema."""
    return f"-c search_path={schema}"
