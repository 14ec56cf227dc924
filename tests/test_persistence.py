"""Storage: the schema, its migrations, the SQLite settings, URLs and row locks, on both databases."""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from blocking import wait_until_blocked_or_done

from persistence import Database, migrations
from statemachines import (
    ConfigurationError,
    Engine,
    ManualClock,
    StateMachineError,
    StorageUnavailable,
    machine,
    state,
    transition,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TABLES = {
    "sm_schema",
    "sm_definitions",
    "sm_instances",
    "sm_history",
    "sm_receipts",
    "sm_timers",
    "sm_effects",
}
INSTANCE_COLUMNS = "id, machine, definition_version, state, context, status, version, created_at, updated_at"


def bump(ctx: dict, event) -> None:
    ctx["n"] = ctx.get("n", 0) + 1


DOOR = machine(
    "door",
    initial="closed",
    states={
        "closed": state(on={"OPEN": "open", "BUMP": transition(None, action=bump)}),
        "open": state(on={"CLOSE": "closed"}),
    },
)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = Engine(db_url, clock=ManualClock(T0))
    eng.register(DOOR)
    yield eng
    eng.close()


def is_pg(url: str) -> bool:
    return url.startswith("postgresql")


def raw_query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if not is_pg(url):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return conn.execute(sql, params).fetchall()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute(sql.replace("?", "%s"), params).fetchall()


def raw_execute(url: str, sql: str) -> None:
    if not is_pg(url):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn, conn:
            conn.execute(sql)
        return
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(sql)


def table_names(url: str) -> set[str]:
    if is_pg(url):
        rows = raw_query(url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    else:
        rows = raw_query(url, "SELECT name FROM sqlite_master WHERE type = 'table'")
    return {name for (name,) in rows}


def index_columns(url: str, table: str) -> list[tuple[str, ...]]:
    """The column lists of every index on `table` (primary keys included)."""
    if is_pg(url):
        rows = raw_query(
            url,
            "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indrelid"
            " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
            " WHERE c.relname = ? AND c.relnamespace = current_schema()::regnamespace"
            " GROUP BY i.indexrelid",
            (table,),
        )
        return [tuple(cols) for (cols,) in rows]
    names = [n for (n,) in raw_query(url, "SELECT name FROM pragma_index_list(?)", (table,))]
    return [
        tuple(c for (c,) in raw_query(url, "SELECT name FROM pragma_index_info(?) ORDER BY seqno", (n,)))
        for n in names
    ]


def column_names(url: str, table: str) -> set[str]:
    if is_pg(url):
        sql = "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        rows = raw_query(url, sql + " AND table_name = ?", (table,))
    else:
        rows = raw_query(url, "SELECT name FROM pragma_table_info(?)", (table,))
    return {name for (name,) in rows}


def schema_version(url: str) -> list[tuple[int, int]]:
    return [(int(i), int(v)) for i, v in raw_query(url, "SELECT id, version FROM sm_schema")]


# The schema ----------------------------------------------------------------------------------------


def test_a_fresh_database_gets_every_table(engine: Engine, db_url: str) -> None:
    assert table_names(db_url) >= TABLES


def test_a_fresh_database_records_the_current_schema_version(engine: Engine, db_url: str) -> None:
    assert schema_version(db_url) == [(1, len(migrations.MIGRATIONS))]


def test_history_is_keyed_by_instance_and_seq(engine: Engine, db_url: str) -> None:
    assert ("instance_id", "seq") in index_columns(db_url, "sm_history")


def test_history_is_indexed_by_time(engine: Engine, db_url: str) -> None:
    assert ("at",) in index_columns(db_url, "sm_history")


def test_history_is_indexed_by_machine_and_state(engine: Engine, db_url: str) -> None:
    assert ("machine", "target") in index_columns(db_url, "sm_history")


def test_instances_are_indexed_by_state_and_machine_in_page_order(engine: Engine, db_url: str) -> None:
    assert ("state", "machine", "created_at") in index_columns(db_url, "sm_instances")


def test_instances_are_indexed_by_machine_and_by_status_in_page_order(engine: Engine, db_url: str) -> None:
    columns = index_columns(db_url, "sm_instances")
    assert ("machine", "created_at") in columns
    assert ("status", "created_at") in columns


def test_a_transition_rewrites_one_instance_index_at_most(engine: Engine, db_url: str) -> None:
    with_state = [c for c in index_columns(db_url, "sm_instances") if "state" in c]
    assert len(with_state) == 1


def test_receipts_are_unique_per_instance_and_key(engine: Engine, db_url: str) -> None:
    assert ("instance_id", "key") in index_columns(db_url, "sm_receipts")


def test_definitions_are_keyed_by_name_and_version(engine: Engine, db_url: str) -> None:
    assert ("name", "version") in index_columns(db_url, "sm_definitions")


def test_instances_survive_a_new_engine_on_the_same_database(engine: Engine, db_url: str) -> None:
    engine.start("door", instance_id="d1")
    engine.send("d1", "OPEN")
    engine.close()
    again = Engine(db_url)
    try:
        again.register(DOOR)
        assert (again.get("d1").state, again.get("d1").version) == ("open", 2)
        assert again.send("d1", "CLOSE").version == 3
    finally:
        again.close()


# Migrations ----------------------------------------------------------------------------------------


class _RecordingCursor:
    def __init__(self, cur: Any, log: list[str]) -> None:
        self._cur = cur
        self._log = log

    def execute(self, sql: str, params: Any = None) -> Any:
        self._log.append(sql)
        return self._cur.execute(sql) if params is None else self._cur.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


class _RecordingConnection:
    def __init__(self, conn: Any, log: list[str]) -> None:
        self._conn = conn
        self._log = log

    def cursor(self) -> _RecordingCursor:
        return _RecordingCursor(self._conn.cursor(), self._log)

    def execute(self, sql: str, *args: Any) -> Any:
        self._log.append(sql)
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement the engine sends from now on (PRAGMAs at connect time excepted)."""
    log: list[str] = []
    connect = Database._connect
    monkeypatch.setattr(Database, "_connect", lambda self: _RecordingConnection(connect(self), log))
    return log


def test_a_second_engine_on_the_same_database_runs_only_a_version_check(
    engine: Engine, db_url: str, statements: list[str]
) -> None:
    second = Engine(db_url)
    second.close()
    assert statements, "the version check itself should have been recorded"
    for sql in statements:
        assert re.match(r"\s*SELECT\b", sql, re.IGNORECASE), sql
        assert "advisory" not in sql.lower()


def test_migrate_on_a_current_schema_applies_no_steps(engine: Engine, db_url: str) -> None:
    db = Database(db_url)
    try:
        assert migrations.migrate(db) == 0
    finally:
        db.close()


def add_note_column(db: Database, cur: Any) -> None:
    cur.execute("ALTER TABLE sm_instances ADD COLUMN note TEXT")


def test_an_older_schema_is_upgraded_and_its_rows_kept(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.start("door", instance_id="d1")
    engine.send("d1", "BUMP")
    engine.close()
    old_version = len(migrations.MIGRATIONS)
    instances = raw_query(db_url, f"SELECT {INSTANCE_COLUMNS} FROM sm_instances")
    history = raw_query(db_url, "SELECT * FROM sm_history ORDER BY seq")
    definitions = raw_query(db_url, "SELECT * FROM sm_definitions")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, add_note_column])
    upgraded = Engine(db_url)
    try:
        assert schema_version(db_url) == [(1, old_version + 1)]
        assert raw_query(db_url, f"SELECT {INSTANCE_COLUMNS} FROM sm_instances") == instances
        assert raw_query(db_url, "SELECT note FROM sm_instances") == [(None,)]
        assert raw_query(db_url, "SELECT * FROM sm_history ORDER BY seq") == history
        assert raw_query(db_url, "SELECT * FROM sm_definitions") == definitions
        upgraded.register(DOOR)
        assert upgraded.send("d1", "BUMP").context == {"n": 2}
    finally:
        upgraded.close()


def test_an_upgrade_step_runs_once(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def step(db: Database, cur: Any) -> None:
        calls.append(1)
        add_note_column(db, cur)

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, step])
    for _ in range(3):
        Engine(db_url).close()
    assert calls == [1]


def test_a_failing_upgrade_step_leaves_the_old_schema_in_place(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.start("door", instance_id="d1")
    engine.close()
    old = schema_version(db_url)

    def broken(db: Database, cur: Any) -> None:
        add_note_column(db, cur)
        cur.execute("THIS IS NOT SQL")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    with pytest.raises(StateMachineError):
        Engine(db_url)
    assert schema_version(db_url) == old
    assert "note" not in column_names(db_url, "sm_instances")
    assert raw_query(db_url, "SELECT id FROM sm_instances") == [("d1",)]


def test_a_schema_newer_than_the_code_is_refused_and_left_alone(engine: Engine, db_url: str) -> None:
    engine.start("door", instance_id="d1")
    engine.close()
    raw_execute(db_url, "UPDATE sm_schema SET version = 999")
    with pytest.raises(StateMachineError, match="newer"):
        Engine(db_url)
    assert schema_version(db_url) == [(1, 999)]
    assert raw_query(db_url, "SELECT id FROM sm_instances") == [("d1",)]


def _start_one(url: str, barrier: Any, index: int) -> None:
    barrier.wait(timeout=60)
    eng = Engine(url)
    eng.register(DOOR)
    eng.start("door", instance_id=f"p{index}")
    eng.close()


def test_many_processes_starting_at_once_on_a_fresh_database_all_succeed(db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    count = 6
    barrier = ctx.Barrier(count)
    procs = [ctx.Process(target=_start_one, args=(db_url, barrier, i)) for i in range(count)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=90)
    assert [p.exitcode for p in procs] == [0] * count
    assert schema_version(db_url) == [(1, len(migrations.MIGRATIONS))]
    assert sorted(i for (i,) in raw_query(db_url, "SELECT id FROM sm_instances")) == [
        f"p{i}" for i in range(count)
    ]


# SQLite settings -------------------------------------------------------------------------------------


def _pragma(engine: Engine, name: str) -> Any:
    return engine.db.connection().execute(f"PRAGMA {name}").fetchone()[0]


def test_sqlite_uses_wal(sqlite_url: str) -> None:
    eng = Engine(sqlite_url)
    try:
        assert _pragma(eng, "journal_mode") == "wal"
    finally:
        eng.close()


def test_sqlite_is_synchronous_full_by_default(sqlite_url: str) -> None:
    eng = Engine(sqlite_url)
    try:
        assert _pragma(eng, "synchronous") == 2
    finally:
        eng.close()


def test_sqlite_synchronous_normal_is_a_setting(sqlite_url: str) -> None:
    eng = Engine(sqlite_url, sqlite_synchronous="NORMAL")
    try:
        assert _pragma(eng, "synchronous") == 1
    finally:
        eng.close()


def test_sqlite_has_a_busy_timeout(sqlite_url: str) -> None:
    eng = Engine(sqlite_url, busy_timeout="5s")
    try:
        assert _pragma(eng, "busy_timeout") == 5000
    finally:
        eng.close()


def test_an_unknown_sqlite_synchronous_level_is_a_configuration_error(sqlite_url: str) -> None:
    with pytest.raises(ConfigurationError, match="synchronous"):
        Engine(sqlite_url, sqlite_synchronous="SOMETIMES")


# URLs ----------------------------------------------------------------------------------------------


def test_the_default_database_is_statemachines_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STATEMACHINES_DATABASE_URL", raising=False)
    eng = Engine()
    try:
        assert (tmp_path / "statemachines.db").exists()
        assert "sm_instances" in table_names(f"sqlite:///{tmp_path / 'statemachines.db'}")
    finally:
        eng.close()


def test_the_database_url_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STATEMACHINES_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    eng = Engine()
    try:
        assert (tmp_path / "env.db").exists()
        assert not (tmp_path / "statemachines.db").exists()
    finally:
        eng.close()


def test_a_bare_path_is_a_sqlite_file(tmp_path: Path) -> None:
    eng = Engine(str(tmp_path / "bare.db"))
    try:
        assert (tmp_path / "bare.db").exists()
    finally:
        eng.close()


def test_an_unsupported_database_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unsupported"):
        Engine("mysql://localhost/app")


def test_an_unreachable_postgresql_is_storage_unavailable() -> None:
    with pytest.raises(StorageUnavailable):
        Engine("postgresql://postgres@127.0.0.1:1/test")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_every_postgresql_url_option_reaches_the_server(db_url: str) -> None:
    eng = Engine(db_url + quote(" -capplication_name=sm-test"))
    try:
        with eng.db.read() as cur:
            cur.execute("SELECT current_setting('application_name'), current_schema()")
            name, schema = cur.fetchone()
        assert name == "sm-test"
        assert schema.startswith("t_")
    finally:
        eng.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_sqlalchemy_psycopg_driver_spelling_is_accepted(db_url: str) -> None:
    eng = Engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        eng.register(DOOR)
        assert eng.start("door", instance_id="d1").state == "closed"
    finally:
        eng.close()


# Locks -----------------------------------------------------------------------------------------------


class _LockHolder:
    """A raw connection holding the write lock of instance `iid` (PostgreSQL: its row; SQLite: the file)."""

    def __init__(self, url: str, iid: str) -> None:
        self.url = url
        if is_pg(url):
            import psycopg

            self.conn: Any = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
            self.conn.execute("SELECT 1 FROM sm_instances WHERE id = %s FOR UPDATE", (iid,))
        else:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.rollback() if is_pg(self.url) else self.conn.execute("ROLLBACK")
        self.conn.close()


def test_a_send_waits_for_a_concurrent_writer_of_the_same_instance(engine: Engine, db_url: str) -> None:
    engine.start("door", instance_id="d1")
    holder = _LockHolder(db_url, "d1")
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(engine.send("d1", "OPEN")))
    try:
        worker.start()
        assert wait_until_blocked_or_done(db_url, worker) == "blocked", "send did not wait for the lock"
        assert results == []
    finally:
        holder.release()
    worker.join(timeout=10)
    assert [r.state for r in results] == ["open"]
    assert engine.get("d1").version == 2


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_postgresql_row_lock_does_not_block_other_instances(engine: Engine, db_url: str) -> None:
    engine.start("door", instance_id="d1")
    engine.start("door", instance_id="d2")
    holder = _LockHolder(db_url, "d1")
    try:
        assert engine.send("d2", "OPEN").state == "open"
    finally:
        holder.release()
