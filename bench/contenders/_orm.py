"""SQLModel persistence shared by the ORM-recipe contenders.

This is the recipe most teams hand-write around a state-machine library: ORM
table classes, a ``Session`` per event, load the row, let the library move it,
add a history row, commit.  Both library contenders use this module, so they
differ only by the library.  The tables have their own SQLAlchemy registry so
they never clash with the engine's SQLModel tables in the same process.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Engine, Index, create_engine, event, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel

from bench import workload
from bench.contenders.base import Target, now, pg_options, pg_reset_schema, sqlite_pragmas

JSON_TYPE = JSON().with_variant(JSONB(), "postgresql")


class BenchModel(SQLModel, registry=registry()):
    """Base with a private metadata: the engine's tables may share the process."""


class Instance(BenchModel, table=True):
    __tablename__ = "instances"  # type: ignore[assignment]
    __table_args__ = (Index("ix_instances_machine_state", "machine", "state"),)

    id: str = Field(primary_key=True)
    machine: str
    state: str
    context: dict[str, Any] = Field(sa_column=Column(JSON_TYPE, nullable=False))
    status: str
    version: int
    created_at: datetime
    updated_at: datetime


class History(BenchModel, table=True):
    __tablename__ = "history"  # type: ignore[assignment]

    instance_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    event: str
    source: str | None = None
    target: str
    payload: dict[str, Any] = Field(sa_column=Column(JSON_TYPE, nullable=False))
    context: dict[str, Any] = Field(sa_column=Column(JSON_TYPE, nullable=False))
    at: datetime = Field(index=True)


def make_engine(target: Target) -> Engine:
    """A fresh store with the same durability settings as the raw contenders."""
    if target.backend == "sqlite":
        engine = create_engine(target.sqlalchemy_url)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            sqlite_pragmas(dbapi_conn, target.sync)

    else:
        pg_reset_schema(target.pg_url, target.schema)
        engine = create_engine(target.sqlalchemy_url, connect_args={"options": pg_options(target.schema)})
    BenchModel.metadata.create_all(engine)
    return engine


#: fire(row, event, payload): let the library move ``row`` (it sets ``row.state``
#: and may replace ``row.context``).  Raises when the event is not allowed.
Fire = Callable[[Instance, str, dict[str, Any]], None]


class OrmRecipe:
    """The per-event ORM session recipe, parameterised by a library's ``fire``."""

    name = "orm"
    backends = frozenset({"sqlite", "postgres"})

    def __init__(self, fire: Fire) -> None:
        self.fire = fire
        self.engine: Engine | None = None

    def setup(self, target: Target) -> None:
        self.engine = make_engine(target)

    def start(self, instance_id: str, context: dict[str, Any]) -> None:
        at = now()
        with Session(self.engine) as session:
            session.add(
                Instance(
                    id=instance_id,
                    machine=workload.MACHINE,
                    state=workload.INITIAL,
                    context=context,
                    status="active",
                    version=1,
                    created_at=at,
                    updated_at=at,
                )
            )
            session.add(
                History(
                    instance_id=instance_id,
                    seq=1,
                    event="start",
                    source=None,
                    target=workload.INITIAL,
                    payload={},
                    context=context,
                    at=at,
                )
            )
            session.commit()

    def send(self, instance_id: str, event_name: str, payload: dict[str, Any]) -> None:
        with Session(self.engine) as session:
            row = session.get(Instance, instance_id, with_for_update=True)
            if row is None or row.status != "active":
                raise workload.Rejected(f"{instance_id} is missing or closed")
            source = row.state
            self.fire(row, event_name, payload)
            row.version += 1
            row.status = workload.status_of(row.state)
            row.updated_at = at = now()
            session.add(
                History(
                    instance_id=instance_id,
                    seq=row.version,
                    event=event_name,
                    source=source,
                    target=row.state,
                    payload=payload,
                    context=row.context,
                    at=at,
                )
            )
            session.commit()

    def states(self) -> dict[str, int]:
        with Session(self.engine) as session:
            rows = session.execute(select(Instance.state, func.count()).group_by(Instance.state))
            return dict(sorted((state, n) for state, n in rows.all()))

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


def paid_context(context: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """A new context dict with the payment recorded.

    JSON columns do not track in-place mutation, so the recipe assigns a new
    dict (the usual fix users reach for).
    """
    new = dict(context)
    workload.record_payment(new, payload)
    return new
