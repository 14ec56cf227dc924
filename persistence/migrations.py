"""Versioned schema set-up: check first, migrate under a lock, never drop.

Many processes may start at once (web workers, `statemachines worker` x N). DDL takes locks on
PostgreSQL even when it is a no-op (`CREATE INDEX IF NOT EXISTS`) and would queue behind running
workers, so the common case reads `sm_schema.version` and does nothing else. Only when the schema
is behind do we take an advisory lock (SQLite: `BEGIN IMMEDIATE`), re-check, and apply the missing
steps in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from persistence.database import Database

_ADVISORY_KEY = 0x5354_4D41  # "STMA"


def _create(*models: str, if_not_exists: bool = False) -> Callable[[Database, Any], None]:
    """Create the tables (and their indexes) of the named `persistence.tables` models.

    The models, SQLModel and SQLAlchemy are imported only when the step runs: a process that
    finds the schema current (every CLI call, every worker start) never loads them."""

    def step(db: Database, cur: Any) -> None:
        from sqlalchemy.dialects import postgresql, sqlite
        from sqlalchemy.schema import CreateIndex, CreateTable

        from persistence import tables

        dialect = postgresql.psycopg.dialect() if db.dialect == "postgresql" else sqlite.dialect()
        for model in models:
            table = getattr(tables, model).__table__
            cur.execute(str(CreateTable(table, if_not_exists=if_not_exists).compile(dialect=dialect)))
            for index in sorted(table.indexes, key=lambda i: i.name or ""):
                cur.execute(str(CreateIndex(index, if_not_exists=if_not_exists).compile(dialect=dialect)))

    return step


def _create_missing(*models: str) -> Callable[[Database, Any], None]:
    """Create tables (and their indexes) added after step 1, unless they exist: a database
    rolled back to an earlier version number by hand upgrades again without an error."""
    return _create(*models, if_not_exists=True)


def _add_column(table: str, column: str, sql_type: str) -> Callable[[Database, Any], None]:
    """Add a nullable column to a table created by an earlier step.

    Step 1 creates the tables from the current models, so on a fresh database the column is
    already there: the step then does nothing. Columns are only ever added, never dropped."""

    def step(db: Database, cur: Any) -> None:
        if db.dialect == "postgresql":
            cur.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {sql_type}")
            return
        cur.execute(f"PRAGMA table_info({table})")
        if column not in {row[1] for row in cur.fetchall()}:
            cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")

    return step


def _create_index(name: str, table: str, *columns: str) -> Callable[[Database, Any], None]:
    """Add an index to a table created by an earlier step (a no-op when step 1 made it already)."""

    def step(db: Database, cur: Any) -> None:
        cur.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})")

    return step


def _reindex(table: str, drop: tuple[str, ...], create: tuple[str, ...]) -> Callable[[Database, Any], None]:
    """Replace indexes of a table created by an earlier step: drop the `drop` ones if they exist,
    then create the `create` ones (as the current models declare them) unless they exist. Rows
    are never touched; on a fresh database step 1 already made the new ones and this only drops
    nothing and skips them. A name in both lists reshapes that index: it is dropped and created
    again as the model declares it now (on a fresh database, over an empty table)."""

    def step(db: Database, cur: Any) -> None:
        from sqlalchemy.dialects import postgresql, sqlite
        from sqlalchemy.schema import CreateIndex

        from persistence import tables

        dialect = postgresql.psycopg.dialect() if db.dialect == "postgresql" else sqlite.dialect()
        for name in drop:
            cur.execute(f"DROP INDEX IF EXISTS {name}")
        model = next(m for m in vars(tables).values() if getattr(m, "__tablename__", None) == table)
        by_name = {index.name: index for index in model.__table__.indexes}
        for name in create:
            cur.execute(str(CreateIndex(by_name[name], if_not_exists=True).compile(dialect=dialect)))

    return step


def _all(*steps: Callable[[Database, Any], None]) -> Callable[[Database, Any], None]:
    """One schema version made of several steps, applied in order in the same transaction."""

    def step(db: Database, cur: Any) -> None:
        for part in steps:
            part(db, cur)

    return step


#: The four `instances()` indexes, rebuilt by step 9 under their names with narrower keys.
INSTANCE_INDEXES = (
    "ix_sm_instances_state_machine",
    "ix_sm_instances_machine",
    "ix_sm_instances_active",
    "ix_sm_instances_closed",
)

#: Step N brings the schema from version N-1 to N. Append; never edit a released step.
MIGRATIONS: list[Callable[[Database, Any], None]] = [
    _create(
        "SchemaVersion",
        "DefinitionRow",
        "InstanceRow",
        "HistoryRow",
        "ReceiptRow",
        "TimerRow",
        "EffectRow",
        "EffectAttemptRow",
        "TokenUseRow",
    ),
    # 2: idempotency receipts remember the request their key was used for.
    _add_column("sm_receipts", "fingerprint", "TEXT"),
    # 3: statecharts: the configuration of chart instances and history rows, and their active
    # states (flat instances and rows leave all three empty).
    _all(
        _add_column("sm_instances", "chart", "TEXT"),
        _add_column("sm_history", "configuration", "TEXT"),
        _create_missing("ChartStateRow"),
    ),
    # 4: OpenTelemetry: the W3C traceparent of the span that armed a timer or an effect, so the
    # worker's span joins that trace (NULL when nothing was tracing).
    _all(
        _add_column("sm_timers", "trace", "TEXT"),
        _add_column("sm_effects", "trace", "TEXT"),
    ),
    # 5 (rewind, compensation, retention): an effect's compensation row points at the effect it
    # undoes (`compensates`); a succeeded effect keeps the history seq of its `done.` record
    # (`done_seq`: compensations run newest first); spent tokens indexed by instance for `prune`.
    _all(
        _add_column("sm_effects", "compensates", "INTEGER"),
        _add_column("sm_effects", "done_seq", "INTEGER"),
        _create_index("ix_sm_token_uses_instance_id", "sm_token_uses", "instance_id"),
    ),
    # 6 (SCXML executable content): the queue of events an instance sends itself with <send>
    # (delivered in later transactions, after their delay).
    _create_missing("SendRow"),
    # 7 (bytes and CPU per durable event): fewer index entries per event. Instances: the status
    # and created indexes become two partial ones (active / closed rows); history: by time as a
    # BRIN index on PostgreSQL. The queries they serve stay index ranges (docs/performance.md).
    _all(
        _reindex(
            "sm_instances",
            drop=("ix_sm_instances_status", "ix_sm_instances_created"),
            create=("ix_sm_instances_active", "ix_sm_instances_closed"),
        ),
        _reindex("sm_history", drop=("ix_sm_history_at",), create=("ix_sm_history_time",)),
        # ... and one statement fewer per transition: whether a flat state entry armed anything.
        _add_column("sm_instances", "armed", "INTEGER"),
    ),
    # (web service) API keys of the HTTP API, stored as digests.
    _create_missing("ApiKeyRow"),
    # 9 (bytes per event): the instance indexes without `id` (each entry ~16 bytes narrower; a
    # page stays an index range, only instances created at the same instant are sorted by id),
    # and history rows store the context only as far as their event changed it (no DDL for
    # that: the version number keeps older code, which cannot read such rows, off the database).
    _reindex("sm_instances", drop=INSTANCE_INDEXES, create=INSTANCE_INDEXES),
]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(db: Database, cur: Any) -> int:
    if db.dialect == "postgresql":
        # A plain catalog query, not to_regclass(): to_regclass trusts a negative cache entry left
        # by the first check, so a process that waited on the advisory lock would not see the
        # table another process just created, and would try to create it again.
        cur.execute(
            "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'sm_schema'"
            " AND relnamespace = current_schema()::regnamespace"
        )
    else:
        cur.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='sm_schema'")
    if not cur.fetchone()[0]:
        return 0
    cur.execute("SELECT version FROM sm_schema WHERE id = 1")
    row = cur.fetchone()
    return int(row[0]) if row else 0


def migrate(db: Database) -> int:
    """Bring the schema to `SCHEMA_VERSION`; returns the number of steps applied."""
    target = len(MIGRATIONS)  # read at call time, so a test can append a step
    with db.read() as cur:
        if current_version(db, cur) == target:
            return 0
    with db.transaction() as cur:
        if db.dialect == "postgresql":
            cur.execute(f"SELECT pg_advisory_xact_lock({_ADVISORY_KEY})")
        found = current_version(db, cur)
        if found > target:
            from persistence.errors import DatabaseError

            raise DatabaseError(
                f"database schema version {found} is newer than this code ({target}); upgrade statemachines"
            )
        for step in MIGRATIONS[found:]:
            step(db, cur)
        now = db.ts(datetime.now(UTC))
        params = {"v": target, "now": now}
        if found == 0:
            cur.execute(
                db.sql("INSERT INTO sm_schema (id, version, migrated_at) VALUES (1, :v, :now)"),
                params,
            )
        else:
            cur.execute(db.sql("UPDATE sm_schema SET version = :v, migrated_at = :now WHERE id = 1"), params)
        return target - found
