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
    CHART,  # statecharts: JSON of the active states (with their entry seqs) and history memory
    # Added by `Store.lock_instance`: the receipt of the idempotency key, if one was given.
    RECEIPT,
    FINGERPRINT,
    # Flat instances: whether the current state entry armed timer or effect rows (0/1; NULL for
    # rows written before schema step 7: maybe). Added by `Store.lock_instance`, after the receipt.
    ARMED,
) = range(15)


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
        configuration=configuration_of(row),
    )


def chart_of(row: tuple[Any, ...]) -> dict[str, Any] | None:
    """The parsed chart column of an instance row: {"active": {path: entry seq}, "history":
    {history path: [paths]}}; None for a flat instance."""
    text = row[CHART]
    return json.loads(text) if text is not None else None


def atomic_states(active: Any) -> tuple[str, ...]:
    """The atomic states among active state paths in document order (as the `chart` column
    keeps them): those with no active descendant. A state's descendants follow it directly in
    document order, and a compound or parallel state in a configuration always has an active
    child, so a path is atomic unless the next one lies inside it; no definition needed."""
    paths = list(active)
    last = len(paths) - 1
    return tuple(p for i, p in enumerate(paths) if i == last or not paths[i + 1].startswith(p + "."))


def configuration_of(row: tuple[Any, ...]) -> tuple[str, ...] | None:
    """The configuration of a chart instance row; None for a flat one."""
    chart = chart_of(row)
    return atomic_states(chart["active"]) if chart is not None else None


def holds_entry(row: tuple[Any, ...], state: str, entered_seq: int) -> bool:
    """Whether `state` is active in the entry `entered_seq` (the one a timer, effect or token
    was made for): for a flat instance its own state entry, for a chart the state's, at any depth."""
    chart = chart_of(row)
    if chart is None:
        return row[ENTERED_SEQ] == entered_seq and row[STATE] == state
    return chart["active"].get(state) == entered_seq


def record_from_row(db: Database, row: tuple[Any, ...]) -> Record:
    seq, event, source, target, payload, context, actor, at, outcome, reason, configuration = row
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
        tuple(json.loads(configuration)) if configuration is not None else (target,),
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
        configuration=tuple(s["configuration"]) if "configuration" in s else None,
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
        **({"configuration": list(snap.configuration)} if snap.is_chart else {}),
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
