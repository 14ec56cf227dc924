"""The instances table without a rowid on SQLite (WAL bytes per event): a database made before
the change upgrades in place, keeping every row and index, and keeps working; on PostgreSQL the
step changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from persistence import migrations
from statemachines import Engine, ManualClock, machine, state

FLOW = machine(
    "flow",
    initial="idle",
    states={
        "idle": state(on={"GO": "busy"}),
        "busy": state(on={"GO": "done"}),
        "done": state(final=True),
    },
)


@pytest.fixture
def flow(db_url: str) -> Any:
    engine = Engine(db_url, clock=ManualClock())
    engine.register(FLOW)
    yield engine
    engine.close()


def table_sql(engine: Engine) -> str:
    with engine.db.read() as cur:
        cur.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'sm_instances'")
        return str(cur.fetchone()[0])


def instance_indexes(engine: Engine) -> set[str]:
    with engine.db.read() as cur:
        if engine.db.dialect == "sqlite":
            cur.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sm_instances'")
        else:
            cur.execute(
                "SELECT indexname FROM pg_indexes"
                " WHERE schemaname = current_schema() AND tablename = 'sm_instances'"
            )
        return {r[0] for r in cur.fetchall() if r[0].startswith("ix_")}


def test_a_fresh_sqlite_database_keys_instances_by_id_without_a_rowid(flow: Engine) -> None:
    if flow.db.dialect != "sqlite":
        pytest.skip("rowid tables are SQLite's")
    assert "WITHOUT ROWID" in table_sql(flow).upper()


def test_a_database_from_before_the_step_upgrades_and_keeps_its_instances(flow: Engine, db_url: str) -> None:
    for n in range(3):
        flow.start("flow", instance_id=f"f{n}", context={"n": n})
    flow.send("f1", "GO")
    flow.send("f2", "GO")
    flow.send("f2", "GO")
    indexes = instance_indexes(flow)
    with flow.db.transaction() as cur:  # the table as the step before left it
        if flow.db.dialect == "sqlite":
            cur.execute("CREATE TABLE old_instances AS SELECT * FROM sm_instances")
            cur.execute("DROP TABLE sm_instances")
            cur.execute(table_sql_with_rowid())
            cur.execute("INSERT INTO sm_instances SELECT * FROM old_instances")
            cur.execute("DROP TABLE old_instances")
        cur.execute(f"UPDATE sm_schema SET version = {len(migrations.MIGRATIONS) - 1}")
    flow.close()

    upgraded = Engine(db_url, clock=ManualClock())
    try:
        upgraded.register(FLOW)
        with upgraded.db.read() as cur:
            cur.execute("SELECT version FROM sm_schema")
            assert cur.fetchone()[0] == len(migrations.MIGRATIONS)
        if upgraded.db.dialect == "sqlite":
            assert "WITHOUT ROWID" in table_sql(upgraded).upper()
        assert instance_indexes(upgraded) == indexes
        assert [(s.id, s.state, s.context) for s in upgraded.instances()] == [
            ("f0", "idle", {"n": 0}),
            ("f1", "busy", {"n": 1}),
            ("f2", "done", {"n": 2}),
        ]
        upgraded.send("f0", "GO")
        assert upgraded.status("f0").state == "busy"
        assert [r.event for r in upgraded.history("f2")] == ["start", "GO", "GO"]
        assert [s.id for s in upgraded.instances(machine="flow", state="busy")] == ["f0", "f1"]
    finally:
        upgraded.close()


def table_sql_with_rowid() -> str:
    """The instances table as a rowid table (as every version before the step made it)."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateTable

    from persistence import tables

    create = str(CreateTable(tables.InstanceRow.__table__).compile(dialect=sqlite.dialect()))
    return create.replace("WITHOUT ROWID", "")
