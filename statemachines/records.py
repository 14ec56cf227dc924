"""What the engine hands back: plain, immutable records (sismic-style), never live objects."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ACTIVE, COMPLETED, CANCELLED, FAILED = "active", "completed", "cancelled", "failed"
APPLIED, REJECTED = "applied", "rejected"


@dataclass(frozen=True, slots=True)
class Event:
    """What guards and actions receive as their second argument."""

    name: str
    payload: Any
    instance_id: str
    actor: str | None = None
    idempotency_key: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScxmlEvent(Event):
    """An event executable content made (docs/scxml.md), with SCXML's fields: `type` is
    `internal` (`<raise>`, a send to `#_internal`), `platform` (`error.execution`...) or
    `external` (a `<send>` delivered later); `sendid` and `origin` (the sending instance's
    address) when a `<send>` made it. Other events are plain `Event`s: the external event of a
    call is `external`, the `done.state.*` events the algorithm raises are `platform`."""

    type: str = "external"
    sendid: str | None = None
    origin: str | None = None


class Snapshot:
    """An instance as of one moment. `context` is parsed from JSON only when first read."""

    __slots__ = (
        "_configuration",
        "_context",
        "_context_json",
        "_model",
        "created_at",
        "definition_version",
        "id",
        "machine",
        "state",
        "status",
        "updated_at",
        "version",
    )

    def __init__(
        self,
        id: str,
        machine: str,
        state: str,
        status: str,
        context_json: str,
        version: int,
        created_at: datetime,
        updated_at: datetime,
        model: Any = None,
        context: Any = None,
        definition_version: str | None = None,
        configuration: tuple[str, ...] | None = None,
    ) -> None:
        self.id = id
        self._configuration = configuration  # None: a flat machine, configuration (state,)
        self.definition_version = definition_version
        self.machine = machine
        self.state = state
        self.status = status
        self._context_json = context_json
        self.version = version
        self.created_at = created_at
        self.updated_at = updated_at
        self._model = model
        self._context = context

    @property
    def context(self) -> Any:
        """The context model instance (or a dict for machines without a model)."""
        if self._context is None:
            model = self._model
            self._context = (
                model.model_validate_json(self._context_json)
                if model is not None
                else json.loads(self._context_json)
            )
        return self._context

    @property
    def context_json(self) -> str:
        return self._context_json

    @property
    def configuration(self) -> tuple[str, ...]:
        """The active atomic states, full dotted paths in document order; `(state,)` when flat."""
        return self._configuration if self._configuration is not None else (self.state,)

    @property
    def is_chart(self) -> bool:
        """Whether this is an instance of a statechart (nested, parallel or history states)."""
        return self._configuration is not None

    def is_in(self, path: str) -> bool:
        """True when `path` is active: one of the atomic states or one of their ancestors
        (a flat machine: `path == state`)."""
        if self._configuration is None:
            return path == self.state
        prefix = path + "."
        return any(s == path or s.startswith(prefix) for s in self._configuration)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "machine": self.machine,
            "state": self.state,
            **({"configuration": list(self._configuration)} if self._configuration is not None else {}),
            "status": self.status,
            "context": json.loads(self._context_json),
            "version": self.version,
            **({"definition_version": self.definition_version} if self.definition_version else {}),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        conf = f", configuration={self._configuration!r}" if self._configuration is not None else ""
        return (
            f"Snapshot(id={self.id!r}, machine={self.machine!r}, state={self.state!r}{conf},"
            f" status={self.status!r}, version={self.version}, context={self._context_json})"
        )


@dataclass(frozen=True, slots=True)
class Record:
    """One line of the audit trail."""

    seq: int
    event: str
    source: str | None
    target: str
    payload: Any
    context: Any
    actor: str | None
    at: datetime
    outcome: str
    reason: str | None = None
    #: The active atomic states after the event (`(target,)` for flat machines).
    configuration: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event": self.event,
            "source": self.source,
            "target": self.target,
            "payload": self.payload,
            "context": self.context,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "outcome": self.outcome,
            "reason": self.reason,
            "configuration": list(self.configuration),
        }


@dataclass(frozen=True, slots=True)
class PendingTimer:
    event: str
    state: str
    fire_at: datetime


@dataclass(frozen=True, slots=True)
class PendingEffect:
    name: str
    state: str
    status: str
    attempt: int
    next_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class Status:
    """`engine.status(id)`: the snapshot plus what the instance is waiting on."""

    snapshot: Snapshot
    events: list[str] = field(default_factory=list)
    timers: list[PendingTimer] = field(default_factory=list)
    effects: list[PendingEffect] = field(default_factory=list)

    @property
    def waiting_on(self) -> dict[str, Any]:
        return {"events": self.events, "timers": self.timers, "effects": self.effects}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.snapshot, name)
