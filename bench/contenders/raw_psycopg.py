"""The physical floor on PostgreSQL: the durable event with nothing but psycopg 3.

Per event: ``SELECT ... FOR UPDATE`` the instance; update it; insert one
history row; ``COMMIT`` (one round trip each; psycopg prepares the statements
server-side after a few executions).  Tables live in this contender's own
schema, which set-up drops and recreates.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from bench import workload
from bench.contenders.base import Target, now, pg_options, pg_reset_schema

DDL = (
    """CREATE TABLE instances (
        id TEXT PRIMARY KEY, machine TEXT NOT NULL, state TEXT NOT NULL,
        context JSONB NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)""",
    "CREATE INDEX ix_instances_machine_state ON instances (machine, state)",
    """CREATE TABLE history (
        instance_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL,
        source TEXT, target TEXT NOT NULL, payload JSONB NOT NULL,
        context JSONB NOT NULL, at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (instance_id, seq))""",
    "CREATE INDEX ix_history_at ON history (at)",
)

INSERT_INSTANCE = "INSERT INTO instances VALUES (%s, %s, %s, %s::jsonb, %s, 1, %s, %s)"
SELECT_INSTANCE = "SELECT state, context::text, status, version FROM instances WHERE id = %s FOR UPDATE"
UPDATE_INSTANCE = (
    "UPDATE instances SET state = %s, context = %s::jsonb, status = %s, version = %s,"
    " updated_at = %s WHERE id = %s"
)
INSERT_HISTORY = "INSERT INTO history VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)"


class RawPsycopg:
    """Hand-written SQL, one transaction per event, row lock on the instance."""

    name = "raw_psycopg"
    backends = frozenset({"postgres"})

    def __init__(self) -> None:
        self.conn: psycopg.Connection[Any] | None = None

    def setup(self, target: Target) -> None:
        pg_reset_schema(target.pg_url, target.schema)
        self.conn = psycopg.connect(target.pg_url, options=pg_options(target.schema))
        for statement in DDL:
            self.conn.execute(statement)
        self.conn.commit()

    def start(self, instance_id: str, context: dict[str, Any]) -> None:
        conn = self.conn
        assert conn is not None
        at, ctx = now(), json.dumps(context)
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
            conn.rollback()
            raise
        conn.commit()

    def send(self, instance_id: str, event: str, payload: dict[str, Any]) -> None:
        conn = self.conn
        assert conn is not None
        try:
            row = conn.execute(SELECT_INSTANCE, (instance_id,)).fetchone()
            if row is None or row[2] != "active":
                raise workload.Rejected(f"{instance_id} is missing or closed")
            source, context, version = row[0], json.loads(row[1]), row[3] + 1
            target = workload.apply(source, context, event, payload)
            ctx, at = json.dumps(context), now()
            conn.execute(
                UPDATE_INSTANCE,
                (target, ctx, workload.status_of(target), version, at, instance_id),
            )
            conn.execute(
                INSERT_HISTORY,
                (instance_id, version, event, source, target, json.dumps(payload), ctx, at),
            )
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def states(self) -> dict[str, int]:
        assert self.conn is not None
        rows = self.conn.execute("SELECT state, count(*) FROM instances GROUP BY state")
        result = dict(sorted(rows.fetchall()))
        self.conn.commit()
        return result

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def make() -> RawPsycopg:
    return RawPsycopg()
