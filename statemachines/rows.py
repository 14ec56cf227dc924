"""Turning database rows into records, and records into receipts: one place for each shape."""

from __future__ import annotations

import json
from typing import Any

from persistence import Database
from statemachines import errors
from statemachines.records import Record, Snapshot

# Column order of persistence.store.INSTANCE_COLUMNS
(
    ID,
    MACHINE,
    DEF_VERSION,
    STATE,
    CONTEXT,
    STATUS,
    VERSION,
    ENTERED_SEQ,
    CREATED,
    UPDATED,
    LAST_SEQ,
) = range(11)


def snapshot_from_row(db: Database, row: tuple[Any, ...], model: Any) -> Snapshot:
    return Snapshot(
        row[ID],
        row[MACHINE],
        row[STATE],
        row[STATUS],
        row[CONTEXT],
        row[VERSION],
        db.from_ts(row[CREATED]),
        db.from_ts(row[UPDATED]),
        model,
        definition_version=row[DEF_VERSION],
    )


def record_from_row(db: Database, row: tuple[Any, ...]) -> Record:
    seq, event, source, target, payload, context, actor, at, outcome, reason = row
    return Record(
        seq,
        event,
        source,
        target,
        json.loads(payload),
        json.loads(context),
        actor,
        db.from_ts(at),
        outcome,
        reason,
    )


def applied_receipt(snap: Snapshot) -> str:
    return json.dumps({"outcome": "applied", "snapshot": _snapshot_fields(snap)})


def rejected_receipt(err: errors.EventRejected) -> str:
    return json.dumps(
        {
            "outcome": "rejected",
            "error": type(err).__name__,
            "instance": err.instance_id,
            "state": err.state,
            "event": err.event,
            "allowed": err.allowed,
        }
    )


def replay_receipt(db: Database, text: str, model: Any) -> Snapshot:
    """The recorded result of an idempotent resend: the same snapshot, or the same error."""
    data = json.loads(text)
    if data["outcome"] == "rejected":
        cls = getattr(errors, data["error"])
        raise cls(data["instance"], data["state"], data["event"], data["allowed"])
    s = data["snapshot"]
    return Snapshot(
        s["id"],
        s["machine"],
        s["state"],
        s["status"],
        s["context"],
        s["version"],
        db.from_ts(s["created_at"]),
        db.from_ts(s["updated_at"]),
        model,
        definition_version=s.get("definition_version"),
    )


def _snapshot_fields(snap: Snapshot) -> dict[str, Any]:
    return {
        "id": snap.id,
        "machine": snap.machine,
        "state": snap.state,
        "status": snap.status,
        "context": snap.context_json,
        "version": snap.version,
        "definition_version": snap.definition_version,
        "created_at": snap.created_at.isoformat(),
        "updated_at": snap.updated_at.isoformat(),
    }
