"""DBOS: one durable workflow per event, with one durable step that applies it.

What a DBOS user would write for "apply this event durably": a workflow
(``event_workflow``) whose single ``@DBOS.step`` runs the state transition.
DBOS checkpoints the workflow's start, the step's output and the workflow's end
in its system database (here SQLite, as the issue asks, or PostgreSQL).  The
order rows themselves live in an application database written by the step with
the floor contender's code (``raw_sqlite`` / ``raw_psycopg``), so this
contender costs "the floor + DBOS's bookkeeping" and is, if anything, flattered.

DBOS is a process-wide singleton: set-up destroys the previous instance and
launches a new one on a fresh system database.  The SQLite system database gets
the same pragmas as every other contender (WAL, ``synchronous``, busy timeout)
through a connection ``creator``; DBOS itself adds ``BEGIN IMMEDIATE`` and its
own busy timeout on top.  Runs entirely locally: no Conductor, no cloud.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from dbos import DBOS, DBOSConfig

from bench.contenders.base import Target, pg_reset_schema, sqlite_pragmas
from bench.contenders.raw_psycopg import RawPsycopg
from bench.contenders.raw_sqlite import RawSqlite

#: The application store the steps write to (set by ``DbosWorkflow.setup``).
_APP: RawSqlite | RawPsycopg | None = None


@DBOS.step()
def start_step(instance_id: str, context: dict[str, Any]) -> None:
    assert _APP is not None
    _APP.start(instance_id, context)


@DBOS.step()
def apply_step(instance_id: str, event: str, payload: dict[str, Any]) -> None:
    assert _APP is not None
    _APP.send(instance_id, event, payload)


@DBOS.workflow()
def start_workflow(instance_id: str, context: dict[str, Any]) -> None:
    start_step(instance_id, context)


@DBOS.workflow()
def event_workflow(instance_id: str, event: str, payload: dict[str, Any]) -> None:
    apply_step(instance_id, event, payload)


def _sqlite_config(target: Target) -> DBOSConfig:
    path = str(target.workdir / "dbos_system.sqlite")

    def creator() -> sqlite3.Connection:
        conn = sqlite3.connect(path, check_same_thread=False)
        sqlite_pragmas(conn, target.sync)
        return conn

    return {
        "name": "bench-dbos",
        "system_database_url": f"sqlite:///{path}",
        "db_engine_kwargs": {"creator": creator},
    }


def _postgres_config(target: Target) -> DBOSConfig:
    system_schema = f"{target.schema}_sys"
    pg_reset_schema(target.pg_url, system_schema)
    return {
        "name": "bench-dbos",
        "system_database_url": target.sqlalchemy_url,
        "dbos_system_schema": system_schema,
        "sys_db_pool_size": 4,
    }


class DbosWorkflow:
    name = "dbos_workflow"
    backends = frozenset({"sqlite", "postgres"})

    def setup(self, target: Target) -> None:
        global _APP
        DBOS.destroy()
        app: RawSqlite | RawPsycopg
        if target.backend == "sqlite":
            app = RawSqlite()
            app.open(str(target.workdir / "app.db"), target.sync)
            app.create_tables()
            config = _sqlite_config(target)
        else:
            app = RawPsycopg()
            app.setup(target)
            config = _postgres_config(target)
        config["log_level"] = "WARNING"
        _APP = app
        DBOS(config=config)
        DBOS.launch()
        logging.getLogger("dbos").setLevel(logging.WARNING)

    def start(self, instance_id: str, context: dict[str, Any]) -> None:
        start_workflow(instance_id, context)

    def send(self, instance_id: str, event: str, payload: dict[str, Any]) -> None:
        event_workflow(instance_id, event, payload)

    def states(self) -> dict[str, int]:
        assert _APP is not None
        return _APP.states()

    def close(self) -> None:
        global _APP
        DBOS.destroy()
        if _APP is not None:
            _APP.close()
            _APP = None


def make() -> DbosWorkflow:
    return DbosWorkflow()
