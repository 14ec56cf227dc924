"""The tables, as SQLModel classes. Persistence knows rows and JSON text, never machine semantics.

Every table is prefixed `sm_` so the engine can share a database with an application.
JSON (contexts, payloads, specs) is stored as text: portable, and cheaper to write than JSONB.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), nullable=nullable)


#: The predicates of the two partial instance indexes (`Store.list_instances` repeats them
#: literally, so both planners can prove that the index applies).
ACTIVE_ROW = {"sqlite_where": text("status = 'active'"), "postgresql_where": text("status = 'active'")}
CLOSED_ROW = {"sqlite_where": text("status <> 'active'"), "postgresql_where": text("status <> 'active'")}


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "sm_schema"
    id: int = Field(default=1, primary_key=True)
    version: int
    migrated_at: datetime = Field(sa_column=_ts())


class DefinitionRow(SQLModel, table=True):
    __tablename__ = "sm_definitions"
    name: str = Field(primary_key=True, max_length=200)
    version: str = Field(primary_key=True, max_length=64)
    spec: str = Field(sa_column=Column(Text, nullable=False))
    #: Bumped on every registration, so "the latest" is the last one registered, even within
    #: one clock tick, and re-registering an older version (a rollback) makes it latest again.
    revision: int
    created_at: datetime = Field(sa_column=_ts())


class InstanceRow(SQLModel, table=True):
    __tablename__ = "sm_instances"
    __table_args__ = (
        # `instances()` filters by machine/state/status and pages in (created_at, id) order:
        # each index ends with `created_at`, so a page is an index range, not a sort of the table
        # (only instances created at the same instant are sorted by id among themselves: `id` is
        # not in the keys since schema step 9, which made every entry ~16 bytes narrower, and
        # PostgreSQL inserts into all four on every transition; bench/RESULTS.md section 21).
        # Only the first contains `state`, so a transition rewrites one index entry, not three.
        Index("ix_sm_instances_state_machine", "state", "machine", "created_at"),
        Index("ix_sm_instances_machine", "machine", "created_at"),
        # Live and closed instances in two partial indexes (schema step 7): an active row is in
        # the first only, so a transition on PostgreSQL (where an update that changes `state`
        # inserts into every index whose predicate the new row satisfies) writes one index entry
        # fewer than with (status, ...) and (created_at, ...) both; an unfiltered page merges one
        # range per status (persistence.store).
        Index("ix_sm_instances_active", "created_at", **ACTIVE_ROW),
        Index("ix_sm_instances_closed", "status", "created_at", **CLOSED_ROW),
    )
    id: str = Field(primary_key=True)
    machine: str
    definition_version: str
    state: str
    context: str = Field(sa_column=Column(Text, nullable=False))
    status: str
    version: int
    entered_seq: int
    last_seq: int
    created_at: datetime = Field(sa_column=_ts())
    updated_at: datetime = Field(sa_column=_ts())
    #: Statecharts only (NULL for flat instances): JSON of the active states with the history seq
    #: of their entry and the history memory, `{"active": {"checks": 4, ...}, "history": {...}}`.
    #: `state` then holds the one-string summary. Added by schema version 3.
    chart: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: Flat instances: 1 when the current state entry armed timer or effect rows, 0 when it armed
    #: none (leaving the state then skips the disarm statement); NULL (maybe) for rows written
    #: before schema step 7 and for statecharts, which keep theirs in `chart`.
    armed: int | None = Field(default=None, nullable=True)


class HistoryRow(SQLModel, table=True):
    __tablename__ = "sm_history"
    __table_args__ = (
        # By time. History rows are appended in time order, so on PostgreSQL a BRIN index: block
        # ranges not summarised yet (all but the first, until VACUUM) cost nothing to insert
        # into. A B-tree on SQLite.
        Index("ix_sm_history_time", "at", postgresql_using="brin"),
        Index("ix_sm_history_machine_target", "machine", "target"),
        # SQLite: the (instance_id, seq) key *is* the table, one B-tree less to write per event.
        {"sqlite_with_rowid": False},
    )
    instance_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    machine: str
    event: str
    source: str | None = None
    target: str
    payload: str = Field(sa_column=Column(Text, nullable=False))
    #: The context after the event, or '' when the event left it unchanged (schema step 9; the
    #: nearest earlier row with one has it: persistence.history_context).
    context: str = Field(sa_column=Column(Text, nullable=False))
    actor: str | None = None
    at: datetime = Field(sa_column=_ts())
    outcome: str
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: Statecharts only (NULL for flat rows, whose configuration is `(target,)`): JSON list of the
    #: active atomic states after the event. Added by schema version 3.
    configuration: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ChartStateRow(SQLModel, table=True):
    """The active states of statechart instances, one row per active state (compound and
    parallel ones included), with the history seq of its entry.

    Maintained on every chart step (exited states deleted, entered ones inserted), so that
    `instances(state=X)` finds X at any depth, and so that a timer or effect row is live exactly
    while its declaring state is active with the same entry seq. Flat instances have no rows here.

    One B-tree, no secondary index: every statement names the state, so the primary key is
    (state, instance_id) and serves them all (`instances(state=X)` is a key-prefix scan, with
    `machine` a plain column filtered there; a step's deletes and the liveness checks name both
    columns). On SQLite the table is `WITHOUT ROWID`: the key is the table. An index on
    (state, machine, instance_id) beside a (instance_id, state) key cost a second B-tree write
    per state entered or exited (docs/decisions.md, "Statecharts in the engine: storage")."""

    __tablename__ = "sm_chart_states"
    __table_args__ = ({"sqlite_with_rowid": False},)
    state: str = Field(primary_key=True)
    instance_id: str = Field(primary_key=True)
    machine: str
    entered_seq: int


class ReceiptRow(SQLModel, table=True):
    """Idempotency receipts: the recorded result of an event sent with a key."""

    __tablename__ = "sm_receipts"
    instance_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    seq: int
    result: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_ts())
    #: The request the key was first used for (event + payload hash), so that the key sent with
    #: another request is refused instead of answered with this result. NULL on receipts written
    #: before schema version 2: those replay without the check.
    fingerprint: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class TimerRow(SQLModel, table=True):
    __tablename__ = "sm_timers"
    __table_args__ = (
        Index("ix_sm_timers_fire_at", "fire_at"),
        Index("ix_sm_timers_instance", "instance_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    instance_id: str
    machine: str
    entered_seq: int
    state: str
    event: str
    fire_at: datetime = Field(sa_column=_ts())
    # W3C traceparent of the span that armed it (migration 4); NULL when nothing was tracing.
    trace: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class EffectRow(SQLModel, table=True):
    """The outbox: one row per effect per state entry; `key` is the idempotency key.

    `attempt` counts every attempt ever made; `round_start` is where the current retry budget
    began (a redrive with `engine.retry` starts a new round without renumbering attempts).
    """

    __tablename__ = "sm_effects"
    __table_args__ = (
        UniqueConstraint("key", name="uq_sm_effects_key"),
        Index("ix_sm_effects_due", "status", "next_at"),
        Index("ix_sm_effects_instance", "instance_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    instance_id: str
    machine: str
    entered_seq: int
    state: str
    name: str
    key: str
    status: str
    attempt: int = 0
    round_start: int = 0
    next_at: datetime = Field(sa_column=_ts())
    lease_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    result: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: datetime = Field(sa_column=_ts())
    # W3C traceparent of the span that armed it (migration 4); NULL when nothing was tracing.
    trace: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: A compensation row: the id of the effect it undoes (migration 5); NULL for an effect.
    compensates: int | None = None
    #: The history seq of the `done.<name>` record of a succeeded effect (migration 5): the order
    #: of success that compensations reverse. NULL until it succeeds (and on older rows).
    done_seq: int | None = None


class EffectAttemptRow(SQLModel, table=True):
    __tablename__ = "sm_effect_attempts"
    effect_id: int = Field(primary_key=True)
    attempt: int = Field(primary_key=True)
    instance_id: str = Field(index=True)
    started_at: datetime = Field(sa_column=_ts())
    duration_ms: float
    ok: bool
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class TokenUseRow(SQLModel, table=True):
    """Spent callback tokens, so that a token works once."""

    __tablename__ = "sm_token_uses"
    token_id: str = Field(primary_key=True)
    instance_id: str = Field(index=True)  # `prune` deletes by instance (migration 5)
    used_at: datetime = Field(sa_column=_ts())


class SendRow(SQLModel, table=True):
    """Events an instance sent itself with SCXML's `<send>` (executable content): queued by the
    step that ran the send, delivered by a worker in a later transaction when `fire_at` comes
    (the step's time for a send without delay), in (fire_at, id) order; `<cancel>` deletes by
    (instance_id, send_id). Added by the SCXML migration step."""

    __tablename__ = "sm_sends"
    __table_args__ = (
        Index("ix_sm_sends_fire_at", "fire_at"),
        Index("ix_sm_sends_instance", "instance_id", "send_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    instance_id: str
    machine: str
    send_id: str
    event: str
    payload: str = Field(sa_column=Column(Text, nullable=False))
    fire_at: datetime = Field(sa_column=_ts())


class ApiKeyRow(SQLModel, table=True):
    """HTTP API keys (`statemachines keys create`). Only a SHA-256 digest of the secret is stored:
    the secret is 256 random bits, so a fast hash is enough, and a database dump reveals no key."""

    __tablename__ = "sm_api_keys"
    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    #: Space-separated scopes: `read`, `write`, `admin`.
    scopes: str = Field(max_length=64)
    digest: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_ts())
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
