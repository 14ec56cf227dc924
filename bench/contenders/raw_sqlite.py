"""The physical floor on SQLite: the durable event with nothing but ``sqlite3``.

Per event: ``BEGIN IMMEDIATE``; read the instance; update it (state, context,
status, version + 1); insert one history row; ``COMMIT``.  That is the least
any engine that locks, records an audit trail and commits per event can do, so
it is the baseline the engine's ``send`` is measured against.  The transition
logic is the plain function in ``bench.workload`` (no library).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from bench import workload
from bench.contenders.base import Target, now, sqlite_pragmas

#: The same tables the ORM contenders map (and the engine's in spirit):
#: history keyed by (instance, seq) and indexed by time.
DDL = (
    """CREATE TABLE instances (
        id TEXT PRIMARY KEY, machine TEXT NOT NULL, state TEXT NOT NULL,
        context TEXT NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    "CREATE INDEX ix_instances_machine_state ON instances (machine, state)",
    """CREATE TABLE history (
        instance_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL,
        source TEXT, target TEXT NOT NULL, payload TEXT NOT NULL,
        context TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (instance_id, seq))""",
    "CREATE INDEX ix_history_at ON history (at)",
)

INSERT_INSTANCE = "INSERT INTO instances VALUES (?, ?, ?, ?, ?, 1, ?, ?)"
SELECT_INSTANCE = "SELECT state, context, status, version FROM instances WHERE id = ?"
UPDATE_INSTANCE = (
    "UPDATE instances SET state = ?, context = ?, status = ?, version = ?, updated_at = ? WHERE id = ?"
)
INSERT_HISTORY = "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


class RawSqlite:
    """Hand-written SQL, one ``BEGIN IMMEDIATE`` transaction per event."""

    name = "raw_sqlite"
    backends = frozenset({"sqlite"})

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None

    def setup(self, target: Target) -> None:
        self.open(str(target.sqlite_path), target.sync)
        self.create_tables()

    def open(self, path: str, sync: str) -> None:
        """Connect in autocommit mode so BEGIN/COMMIT are ours, not the driver's."""
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        sqlite_pragmas(self.conn, sync)

    def create_tables(self) -> None:
        assert self.conn is not None
        for statement in DDL:
            self.conn.execute(statement)

    def start(self, instance_id: str, context: dict[str, Any]) -> None:
        conn = self.conn
        assert conn is not None
        at = now().isoformat()
        ctx = json.dumps(context)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                INSERT_INSTANCE,
                (instance_id, workload.MACHINE, workload.INITIAL, ctx, "active", at, at),
            )
            conn.execute(
                INSERT_HISTORY,
                (instance_id, 1, "start", None, workload.INITIAL, "{}", ctx, at),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def send(self, instance_id: str, event: str, payload: dict[str, Any]) -> None:
        conn = self.conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(SELECT_INSTANCE, (instance_id,)).fetchone()
            if row is None or row[2] != "active":
                raise workload.Rejected(f"{instance_id} is missing or closed")
            source, context, version = row[0], json.loads(row[1]), row[3] + 1
            target = workload.apply(source, context, event, payload)
            ctx, at = json.dumps(context), now().isoformat()
            conn.execute(
                UPDATE_INSTANCE,
                (target, ctx, workload.status_of(target), version, at, instance_id),
            )
            conn.execute(
                INSERT_HISTORY,
                (instance_id, version, event, source, target, json.dumps(payload), ctx, at),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def states(self) -> dict[str, int]:
        assert self.conn is not None
        rows = self.conn.execute("SELECT state, count(*) FROM instances GROUP BY state")
        return dict(sorted(rows.fetchall()))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def make() -> RawSqlite:
    return RawSqlite()
