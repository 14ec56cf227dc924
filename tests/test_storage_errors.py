"""Database errors are classified by what retrying would do: a transient failure (a lock not had
in time, a dropped connection) is `StorageUnavailable` (retryable); a permanent one (a value too
large for an index, a constraint, bad SQL) is `StorageError` with `retryable` False."""

from __future__ import annotations

import secrets
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import pytest

from persistence import Conflict, Database, DatabaseError, DatabaseUnavailable
from statemachines import (
    ConfigurationError,
    Engine,
    ManualClock,
    StorageError,
    StorageUnavailable,
    machine,
    state,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
DOOR = machine("door", initial="closed", states={"closed": state(on={"OPEN": "open"}), "open": state()})


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = Engine(db_url, clock=ManualClock(T0))
    eng.register(DOOR)
    yield eng
    eng.close()


def insert_instance(engine: Engine, instance_id: str) -> None:
    """Straight through the store: the engine's own name checks would refuse long names."""
    with engine.db.transaction() as cur:
        engine.store.insert_instance(cur, instance_id, "door", "1", "closed", "{}", "active", T0)


def test_a_value_too_large_for_the_database_is_a_permanent_storage_error(engine: Engine) -> None:
    if engine.db.dialect == "sqlite":  # SQLite's limit is a gigabyte by default: lower it
        engine.db.connection().setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 5000)
    # PostgreSQL: a primary key entry over the B-tree row limit (~2.7 kB; random text does not
    # compress), "index row size exceeds maximum", SQLSTATE 54000 (program limit exceeded).
    long_id = secrets.token_urlsafe(6000)
    with pytest.raises(StorageError) as err:
        insert_instance(engine, long_id)
    assert not isinstance(err.value, StorageUnavailable)
    assert err.value.retryable is False
    assert engine.instances() == []


def test_storage_unavailable_is_the_only_retryable_storage_error() -> None:
    assert StorageError.retryable is False
    assert StorageUnavailable.retryable is True


def hold_row_lock(db_url: str, instance_id: str) -> Any:
    """A connection of its own (not a `Database`, whose transactions nest-check per thread) that
    holds the write lock on an instance row until closed."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE sm_instances SET version = 2 WHERE id = ?", (instance_id,))
        return conn
    import psycopg

    conn = psycopg.connect(db_url)
    conn.execute("UPDATE sm_instances SET version = 2 WHERE id = %s", (instance_id,))
    return conn


def test_a_lock_not_had_in_time_is_retryable(db_url: str, engine: Engine) -> None:
    engine.start("door", instance_id="d1")
    db = Database(db_url, busy_timeout_ms=50)
    holder = hold_row_lock(db_url, "d1")
    try:
        with pytest.raises(DatabaseUnavailable), db.transaction() as cur:
            if db.dialect == "postgresql":
                cur.execute("SET LOCAL lock_timeout = '50ms'")  # SQLSTATE 55P03
            cur.execute(db.sql("UPDATE sm_instances SET version = 3 WHERE id = :id"), {"id": "d1"})
    finally:
        db.close()
        holder.close()


def test_bad_sql_is_permanent(db_url: str, engine: Engine) -> None:
    db = Database(db_url)
    try:
        with pytest.raises(DatabaseError) as err, db.transaction() as cur:
            cur.execute("SELECT * FROM sm_no_such_table")
        assert not isinstance(err.value, DatabaseUnavailable | Conflict)
    finally:
        db.close()


def test_a_taken_key_is_a_conflict_and_a_missing_value_is_permanent(db_url: str, engine: Engine) -> None:
    engine.start("door", instance_id="d1")
    db = Database(db_url)
    insert = db.sql("INSERT INTO sm_token_uses (token_id, instance_id, used_at) VALUES (:token, :id, :now)")
    try:
        with db.transaction() as cur:
            cur.execute(insert, {"token": "t1", "id": "d1", "now": db.ts(T0)})
        with pytest.raises(Conflict), db.transaction() as cur:
            cur.execute(insert, {"token": "t1", "id": "d1", "now": db.ts(T0)})
        with pytest.raises(DatabaseError) as err, db.transaction() as cur:
            cur.execute(insert, {"token": "t2", "id": None, "now": db.ts(T0)})  # NOT NULL
        assert not isinstance(err.value, Conflict | DatabaseUnavailable)
    finally:
        db.close()


def test_sqlite_busy_through_the_engine_is_storage_unavailable(sqlite_url: str) -> None:
    eng = Engine(sqlite_url, clock=ManualClock(T0), busy_timeout="50ms")
    eng.register(DOOR)
    eng.start("door", instance_id="d1")
    try:
        with closing(sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StorageUnavailable) as err:
                eng.send("d1", "OPEN")
            assert err.value.retryable is True
            other.execute("ROLLBACK")
        assert eng.send("d1", "OPEN").state == "open"
    finally:
        eng.close()


def test_postgresql_without_psycopg_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` raises ImportError
    with pytest.raises(ConfigurationError, match=r"pip install 'statemachines\[postgres\]'"):
        Engine("postgresql://user@localhost/db")


def test_the_cli_without_psycopg_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from statemachines.cli import main

    monkeypatch.setitem(sys.modules, "psycopg", None)
    code = main(["--db", "postgresql://user@localhost/db", "instances"])
    out, err = capsys.readouterr()
    assert code != 0
    assert "pip install 'statemachines[postgres]'" in err
    assert "ModuleNotFoundError" not in out + err
