"""The API's request and response bodies (pydantic), built from the engine's records.

Contexts and payloads are `Any` here; the OpenAPI schema narrows them per machine and per event
where the definition declares a model (`statemachines.web.openapi`). The engine, not these
models, validates them: it answers 422 naming the field, and 409 for an event the state refuses.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from statemachines.records import PendingEffect, PendingTimer, Record, Snapshot, Status

_STRICT = ConfigDict(extra="forbid")


class InstanceOut(BaseModel):
    """An instance as of one moment (`Snapshot`)."""

    id: str
    machine: str
    state: str
    configuration: list[str] = Field(description="active atomic states ([state] for a flat machine)")
    status: str = Field(description="active, completed, cancelled or failed")
    context: Any
    version: int
    definition_version: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, snap: Snapshot) -> InstanceOut:
        return cls(
            id=snap.id, machine=snap.machine, state=snap.state, configuration=list(snap.configuration),
            status=snap.status, context=json.loads(snap.context_json), version=snap.version,
            definition_version=snap.definition_version, created_at=snap.created_at,
            updated_at=snap.updated_at,
        )  # fmt: skip


class TimerOut(BaseModel):
    event: str
    state: str
    fire_at: datetime

    @classmethod
    def of(cls, t: PendingTimer) -> TimerOut:
        return cls(event=t.event, state=t.state, fire_at=t.fire_at)


class EffectOut(BaseModel):
    name: str
    state: str
    status: str
    attempt: int
    next_at: datetime | None
    last_error: str | None

    @classmethod
    def of(cls, e: PendingEffect) -> EffectOut:
        return cls(
            name=e.name, state=e.state, status=e.status, attempt=e.attempt, next_at=e.next_at,
            last_error=e.last_error,
        )  # fmt: skip


class StatusOut(BaseModel):
    """The instance plus what it waits on: events accepted now, pending timers and effects."""

    instance: InstanceOut
    events: list[str]
    timers: list[TimerOut]
    effects: list[EffectOut]

    @classmethod
    def of(cls, st: Status) -> StatusOut:
        return cls(
            instance=InstanceOut.of(st.snapshot), events=list(st.events),
            timers=[TimerOut.of(t) for t in st.timers], effects=[EffectOut.of(e) for e in st.effects],
        )  # fmt: skip


class RecordOut(BaseModel):
    """One line of the audit trail."""

    seq: int
    event: str
    source: str | None
    target: str
    configuration: list[str]
    payload: Any
    context: Any
    actor: str | None
    at: datetime
    outcome: str
    reason: str | None

    @classmethod
    def of(cls, r: Record) -> RecordOut:
        return cls(
            seq=r.seq, event=r.event, source=r.source, target=r.target,
            configuration=list(r.configuration), payload=r.payload, context=r.context, actor=r.actor,
            at=r.at, outcome=r.outcome, reason=r.reason,
        )  # fmt: skip


class InstancePage(BaseModel):
    items: list[InstanceOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class HistoryPage(BaseModel):
    items: list[RecordOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class MachineSummary(BaseModel):
    name: str
    version: str = Field(description="the definition version registered in this process")
    description: str | None
    initial: str
    states: list[str]


class MachineDetail(MachineSummary):
    """A machine: its spec, every version stored, and how many instances sit in each state."""

    spec: dict[str, Any]
    versions: list[str] = Field(description="stored definition versions, latest first")
    counts: dict[str, dict[str, int]] = Field(
        description="per state, instances by status: {state: {status: count}}"
    )
    context_schema: dict[str, Any] | None
    event_schemas: dict[str, dict[str, Any]]


class StartRequest(BaseModel):
    model_config = _STRICT
    machine: str = Field(min_length=1, max_length=200)
    context: Any = None
    id: str | None = Field(default=None, description="instance id; a random one when omitted")


class EventRequest(BaseModel):
    model_config = _STRICT
    event: str = Field(min_length=1, max_length=200)
    payload: Any = None


class CancelRequest(BaseModel):
    model_config = _STRICT
    reason: str | None = Field(default=None, max_length=10_000)


class Health(BaseModel):
    status: str
    database: str
    machines: int
