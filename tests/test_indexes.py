"""Schema step 7 (bytes and CPU per event): the reshaped indexes still serve every query of
`instances()`, an existing database upgrades in place without losing a row, and a flat transition
out of a state entry that armed nothing skips the disarm statement."""

from __future__ import annotations

from typing import Any

import pytest

from persistence import migrations
from statemachines import Effect, Engine, ManualClock, machine, state

OLD_INSTANCE_INDEXES = (
    "CREATE INDEX ix_sm_instances_status ON sm_instances (status, created_at, id)",
    "CREATE INDEX ix_sm_instances_created ON sm_instances (created_at, id)",
    "CREATE INDEX ix_sm_history_at ON sm_history (at)",
)
NEW_INDEXES = ("ix_sm_instances_active", "ix_sm_instances_closed", "ix_sm_history_time")


def noop(ctx: Any, call: Any) -> None:
    return None


FLOW = machine(
    "flow",
    initial="idle",
    states={
        "idle": state(on={"GO": "waiting", "STOP": "stopped"}),
        "waiting": state(on={"GO": "working"}, after={"1h": "stopped"}),
        "working": state(effect=Effect(noop), on={"GO": "idle", "FINISH": "done"}),
        "done": state(final=True),
        "stopped": state(final=True),
    },
)


@pytest.fixture
def flow(db_url: str) -> Any:
    engine = Engine(db_url, clock=ManualClock())
    engine.register(FLOW)
    yield engine
    engine.close()


def index_names(engine: Engine) -> set[str]:
    with engine.db.read() as cur:
        if engine.db.dialect == "sqlite":
            cur.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        else:
            cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        return {r[0] for r in cur.fetchall()}


def ids(snaps: list[Any]) -> list[str]:
    return [s.id for s in snaps]


def test_instances_of_every_status_are_listed_in_creation_order(flow: Engine) -> None:
    for n in range(6):
        flow.start("flow", instance_id=f"f{n}")
    flow.send("f1", "STOP")  # completed
    flow.cancel("f2")
    with flow.db.transaction() as cur:  # a status this code does not know (a later version's)
        cur.execute("UPDATE sm_instances SET status = 'paused' WHERE id = 'f3'")
        cur.execute("UPDATE sm_instances SET status = 'aaa' WHERE id = 'f4'")
    assert ids(flow.instances()) == ["f0", "f1", "f2", "f3", "f4", "f5"]
    assert ids(flow.instances(limit=2, offset=3)) == ["f3", "f4"]
    assert ids(flow.instances(status="active")) == ["f0", "f5"]
    assert ids(flow.instances(status="completed")) == ["f1"]
    assert ids(flow.instances(status="paused")) == ["f3"]
    assert ids(flow.instances(machine="flow", status="cancelled")) == ["f2"]


@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"machine": "flow"},
        {"status": "active"},
        {"status": "failed"},
        {"machine": "flow", "state": "idle"},
        {"state": "idle"},
        {"machine": "flow", "status": "active"},
    ],
)
@pytest.mark.parametrize("keyset", [False, True], ids=["offset", "keyset"])
def test_each_filter_of_instances_reads_an_index(flow: Engine, shape: dict[str, str], keyset: bool) -> None:
    args: dict[str, Any] = {"machine": None, "state": None, "status": None, "limit": 10, "offset": 0}
    args.update(shape)
    args.update(after_at=flow.db.ts(flow.runtime.clock.now()), after_id="f0")
    sql = flow.store.list_statement(args["machine"], args["state"], args["status"], False, keyset)
    assert_reads_an_index(flow, sql, args, "sm_instances")


def assert_reads_an_index(engine: Engine, sql: str, args: dict[str, Any], table: str) -> None:
    """Every read of `table` in the plan of `sql` goes through an index (SQLite), or the plan
    has no sequential scan when the planner is told to avoid one (PostgreSQL)."""
    with engine.db.read() as cur:
        if engine.db.dialect == "sqlite":
            cur.execute(f"EXPLAIN QUERY PLAN {sql}", args)
            steps = [r[3] for r in cur.fetchall()]
            scans = [s for s in steps if s.startswith(("SCAN", "SEARCH")) and table in s]
            assert scans and all("USING" in s and ("INDEX" in s or "PRIMARY KEY" in s) for s in scans), steps
        else:
            cur.execute("SET LOCAL enable_seqscan = off")
            cur.execute(f"EXPLAIN {sql}", args)
            plan = "\n".join(r[0] for r in cur.fetchall())
            assert "Seq Scan" not in plan, plan


HISTORY_QUERIES = {
    "by instance": "SELECT seq, context FROM sm_history WHERE instance_id = :id ORDER BY seq",
    "by time": "SELECT instance_id, seq FROM sm_history WHERE at >= :since AND at < :until",
    "by machine and state": "SELECT instance_id, seq FROM sm_history"
    " WHERE machine = :machine AND target = :state",
}


@pytest.mark.parametrize("query", sorted(HISTORY_QUERIES))
def test_each_history_query_reads_an_index(flow: Engine, query: str) -> None:
    flow.start("flow", instance_id="f0")
    now = flow.runtime.clock.now()
    at = flow.db.ts(now)
    args = {"id": "f0", "since": at, "until": at, "machine": "flow", "state": "idle"}
    assert_reads_an_index(flow, flow.db.sql(HISTORY_QUERIES[query]), args, "sm_history")


def test_a_history_page_and_the_context_it_starts_from_read_the_key(flow: Engine) -> None:
    args = {"id": "f0", "after": 3, "limit": 10, "first": 1, "seq": 3}
    for name in ("history", "history_page", "contexts"):
        assert_reads_an_index(flow, flow.store.sql[name], args, "sm_history")


def test_a_version_4_database_upgrades_its_indexes_and_keeps_its_rows(db_url: str) -> None:
    engine = Engine(db_url, clock=ManualClock())
    engine.register(FLOW)
    engine.start("flow", instance_id="old")
    engine.send("old", "GO")  # waiting: a timer armed
    with engine.db.transaction() as cur:  # the schema as step 4 left it
        for name in NEW_INDEXES:
            cur.execute(f"DROP INDEX {name}")
        for statement in OLD_INSTANCE_INDEXES:
            cur.execute(statement)
        cur.execute("ALTER TABLE sm_instances DROP COLUMN armed")
        cur.execute("UPDATE sm_schema SET version = 4")
    engine.close()

    upgraded = Engine(db_url, clock=ManualClock())
    try:
        upgraded.register(FLOW)
        names = index_names(upgraded)
        assert set(NEW_INDEXES) <= names
        assert not {"ix_sm_instances_status", "ix_sm_instances_created", "ix_sm_history_at"} & names
        with upgraded.db.read() as cur:
            cur.execute("SELECT version FROM sm_schema")
            assert cur.fetchone()[0] == len(migrations.MIGRATIONS)
            cur.execute("SELECT armed FROM sm_instances WHERE id = 'old'")
            assert cur.fetchone()[0] is None  # written before: maybe armed
        assert [r.event for r in upgraded.history("old")] == ["start", "GO"]
        assert upgraded.status("old").timers  # the old row's timer is still armed
        upgraded.send("old", "GO")  # leaving `waiting` drops it although the flag is unknown
        assert not upgraded.status("old").timers
        assert ids(upgraded.instances(status="active")) == ["old"]
    finally:
        upgraded.close()


def count_disarms(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = engine.runtime.schedule.disarm

    def spy(cur: Any, iid: str, now: Any) -> None:
        calls.append(iid)
        real(cur, iid, now)

    monkeypatch.setattr(engine.runtime.schedule, "disarm", spy)
    return calls


def test_leaving_a_state_that_armed_nothing_runs_no_disarm(
    flow: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow.start("flow", instance_id="f")
    calls = count_disarms(flow, monkeypatch)
    flow.send("f", "GO")  # idle armed nothing
    assert calls == []


def test_leaving_a_state_that_armed_a_timer_or_an_effect_disarms(
    flow: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow.start("flow", instance_id="f")
    calls = count_disarms(flow, monkeypatch)
    flow.send("f", "GO")  # -> waiting (timer)
    flow.send("f", "GO")  # -> working (effect): the timer goes
    assert not flow.status("f").timers
    flow.send("f", "GO")  # -> idle: the effect is cancelled
    assert calls == ["f", "f"]
    assert not flow.status("f").effects
