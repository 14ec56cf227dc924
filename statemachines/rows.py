"""Turning database rows into records, and records into receipts: one place for each shape."""

from __future__ import annotations

import hashlib
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
    # Added by `Store.lock_instance`: the receipt of the idempotency key, if one was given.
    RECEIPT,
    FINGERPRINT,
) = range(13)


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


def request_fingerprint(event: str, payload_json: str) -> str:
    """What an idempotency key is bound to: the event, and a hash of the payload as stored
    (canonical JSON: keys sorted, so `{"a": 1, "b": 2}` and `{"b": 2, "a": 1}` are one request).

    The event is kept in clear so that a mismatch can name the first request."""
    canonical = json.dumps(json.loads(payload_json), sort_keys=True, separators=(",", ":"))
    return f"{event} sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


def check_fingerprint(iid: str, key: str, recorded: str | None, event: str, payload_json: str) -> None:
    """Refuse a key sent with another request than the one it was first used for.

    Receipts written before fingerprints were recorded (`recorded` is None) replay unchecked."""
    if recorded is None or recorded == request_fingerprint(event, payload_json):
        return
    first_event = recorded.rpartition(" sha256:")[0]
    raise errors.IdempotencyKeyReused(iid, key, first_event, event)
