"""Plain-text and JSON rendering for the command line: aligned tables, snapshots, status."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

MAX_CELL = 60


def when(value: datetime | None) -> str:
    """A timestamp as UTC text to the second: `2024-05-01 12:00:00Z`."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def compact(value: Any, limit: int = MAX_CELL) -> str:
    """One-line JSON (or text), cut to `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=_default, separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    cells = [[str(h) for h in headers], *[["-" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def history_table(records: Iterable[Any]) -> str:
    rows = []
    for r in records:
        moved = r.outcome in ("applied", "migrated", "rewound")
        move = f"{r.source or ''} -> {r.target}".strip() if moved else r.target
        detail = "" if r.payload in ({}, None) else compact(r.payload)
        if r.outcome == "migrated":  # the versions, the map in --json; the reason the operator gave
            detail = f"version {r.payload.get('from_version')} -> {r.payload.get('to_version')}: {r.reason}"
        if r.reason:  # "GuardRejected: event ... allowed events: [...]": the kind fits, --json has it all
            kind, _, text = r.reason.partition(":")
            if r.outcome == "rejected":
                detail = f"{kind if text else r.reason} {detail}".strip()
            elif r.outcome != "migrated":
                detail = r.reason
        rows.append((r.seq, when(r.at), r.event, move, r.outcome, r.actor, detail))
    return table(("SEQ", "AT (UTC)", "EVENT", "STATE", "OUTCOME", "ACTOR", "PAYLOAD / REASON"), rows)


def instances_table(snaps: Iterable[Any]) -> str:
    rows = [(s.id, s.machine, s.state, s.status, s.version, when(s.updated_at)) for s in snaps]
    return table(("ID", "MACHINE", "STATE", "STATUS", "VERSION", "UPDATED (UTC)"), rows)


def snapshot_text(data: dict[str, Any]) -> str:
    """A snapshot's `as_dict()` as aligned `key value` lines."""
    rows = [
        ("instance", data["id"]),
        ("machine", data["machine"]),
        ("state", data["state"]),
        ("status", data["status"]),
        ("version", data["version"]),
        *([("definition", data["definition_version"])] if data.get("definition_version") else []),
        ("created", when(datetime.fromisoformat(data["created_at"]))),
        ("updated", when(datetime.fromisoformat(data["updated_at"]))),
        ("context", json.dumps(data["context"], default=_default, ensure_ascii=False)),
    ]
    return "\n".join(f"{k:<10} {v}" for k, v in rows)


def status_text(data: dict[str, Any]) -> str:
    """`status_dict(...)` as text: the snapshot, then what it waits on (events, timers, effects)."""
    lines = [snapshot_text(data)]
    waiting = data.get("waiting_on")
    if waiting is None:
        return lines[0]
    events = waiting.get("events") or []
    lines.append(f"{'events':<10} {', '.join(events) if events else '-'}")
    for t in waiting.get("timers") or []:
        lines.append(f"{'timer':<10} {_get(t, 'event')} at {when(_get(t, 'fire_at'))}")
    for e in waiting.get("effects") or []:
        line = f"{_get(e, 'name')} ({_get(e, 'status')}, attempt {_get(e, 'attempt')}"
        if _get(e, "next_at"):
            line += f", next {when(_get(e, 'next_at'))}"
        if _get(e, "last_error"):
            line += f", last error: {compact(_get(e, 'last_error'))}"
        lines.append(f"{'effect':<10} {line})")
    return "\n".join(lines)


def waiting_on(status: Any) -> dict[str, Any] | None:
    waiting = getattr(type(status), "waiting_on", None) and status.waiting_on
    return dict(waiting) if isinstance(waiting, dict) else None


def status_dict(status: Any) -> dict[str, Any]:
    """The snapshot's fields plus `waiting_on` (when the engine reports it)."""
    snap = getattr(status, "snapshot", status)
    data: dict[str, Any] = snap.as_dict()
    waiting = waiting_on(status)
    if waiting is not None:
        data["waiting_on"] = waiting
    return data


def to_json(value: Any) -> str:
    return json.dumps(value, default=_default, indent=2, ensure_ascii=False)


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return str(value)
