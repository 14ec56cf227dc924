"""Schema version 3 (statecharts) upgrades databases in place: a SQLite database written by the
release code (tests/data/release_c6f3d8f.db, made by tests/data/make_release_db.py) keeps its flat
instances working, and statechart instances work next to them; the step also runs on PostgreSQL
over a schema as version 2 left it."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from persistence import migrations
from statemachines import Effect, Engine, ManualClock, machine, state
from tests.chart_machines import CALLS, kyc

RELEASE_DB = Path(__file__).parent / "data" / "release_c6f3d8f.db"
RELEASE_T0 = datetime(2030, 1, 1, tzinfo=UTC)  # the release script's ManualClock start


def charge(ctx: Any, call: Any) -> dict[str, bool]:
    CALLS.setdefault("charge", []).append(call.key)
    return {"charged": True}


def release_order() -> Any:
    """The machine of tests/data/make_release_db.py, unchanged."""
    return machine(
        "release_order",
        initial="waiting",
        states={
            "waiting": state(on={"GO": "working"}, after={"1h": "timed_out"}),
            "working": state(effect=Effect(charge), on={"done.charge": "charged"}),
            "timed_out": state(final=True),
            "charged": state(final=True),
        },
    )


def raw(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            rows = conn.execute(sql).fetchall()
            conn.commit()
            return rows
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


def release_engine(tmp_path: Path) -> tuple[Engine, str]:
    CALLS.clear()
    path = tmp_path / "release.db"
    shutil.copy(RELEASE_DB, path)
    url = f"sqlite:///{path}"
    assert raw(url, "SELECT version FROM sm_schema") == [(1,)]
    engine = Engine(url, clock=ManualClock(RELEASE_T0))
    engine.register(release_order())
    return engine, url


def test_the_release_database_is_upgraded_in_place(tmp_path: Path) -> None:
    engine, url = release_engine(tmp_path)
    engine.close()
    assert raw(url, "SELECT version FROM sm_schema") == [(len(migrations.MIGRATIONS),)]
    assert raw(url, "SELECT id, state, chart FROM sm_instances ORDER BY id") == [
        ("waits-1", "waiting", None),
        ("waits-2", "waiting", None),
        ("works-1", "working", None),
    ]
    assert raw(url, "SELECT count(*) FROM sm_chart_states") == [(0,)]


def test_an_old_instance_runs_its_pending_effect_after_the_upgrade(tmp_path: Path) -> None:
    engine, _ = release_engine(tmp_path)
    engine.run_due()
    assert CALLS["charge"] == ["works-1:2:charge"]  # the key the release code stored
    assert engine.get("works-1").state == "charged"
    assert engine.history("works-1")[-1].configuration == ("charged",)


def test_an_old_instance_fires_its_timer_after_the_upgrade(tmp_path: Path) -> None:
    engine, _ = release_engine(tmp_path)
    engine.clock.advance("1h")
    engine.run_due()
    assert engine.get("waits-1").state == "timed_out"


def test_an_old_instance_accepts_events_after_the_upgrade(tmp_path: Path) -> None:
    engine, _ = release_engine(tmp_path)
    assert engine.send("waits-2", "GO").state == "working"
    engine.run_due()
    snap = engine.get("waits-2")
    assert (snap.state, snap.configuration, snap.status) == ("charged", ("charged",), "completed")
    assert [s.id for s in engine.instances(state="waiting")] == ["waits-1"]


def test_statechart_instances_work_in_the_upgraded_database(tmp_path: Path) -> None:
    engine, _ = release_engine(tmp_path)
    engine.register(kyc())
    engine.start("kyc", instance_id="k1")
    engine.send("k1", "SUBMITTED")
    engine.run_due()
    assert engine.get("k1").configuration == ("review.first",)
    assert engine.get("works-1").state == "charged"
    assert [s.id for s in engine.instances(state="review")] == ["k1"]


def test_the_statechart_step_upgrades_a_version_2_schema_on_both_databases(db_url: str) -> None:
    Engine(db_url).close()
    # The schema as version 2 left it: no chart columns, no active-states table.
    raw(db_url, "DROP TABLE sm_chart_states")
    raw(db_url, "ALTER TABLE sm_instances DROP COLUMN chart")
    raw(db_url, "ALTER TABLE sm_history DROP COLUMN configuration")
    raw(db_url, "UPDATE sm_schema SET version = 2")
    engine = Engine(db_url, clock=ManualClock())
    try:
        assert raw(db_url, "SELECT version FROM sm_schema") == [(len(migrations.MIGRATIONS),)]
        engine.register(kyc())
        engine.start("kyc", instance_id="k1")
        assert engine.send("k1", "SUBMITTED").is_in("checks.identity")
        assert [s.id for s in engine.instances(state="checks.sanctions")] == ["k1"]
    finally:
        engine.close()
