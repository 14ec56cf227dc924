"""What the console's lists read: sorted, filtered keyset pages of instances, counts per state,
machines with their versions, and a cheap fingerprint of one instance for self-refresh.

A cursor is the sort, its direction and the last row's (value, id), base64url JSON: opaque to a
person, checked on the way in (a cursor made for another sort is refused, not misread).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from persistence.listing import SORTABLE, InstanceFilter, Listing
from statemachines import errors
from statemachines.arguments import check_name
from statemachines.records import ACTIVE, CANCELLED, COMPLETED, FAILED, Snapshot
from statemachines.rows import ID, UPDATED, VERSION, snapshot_from_row

STATUSES = (ACTIVE, COMPLETED, CANCELLED, FAILED)
PAGE_SIZE = 50
MAX_PREFIX = 200


@dataclass(frozen=True)
class Query:
    """A list request as the console reads it from the URL, checked."""

    machine: str | None = None
    state: str | None = None
    status: str | None = None
    id_prefix: str | None = None
    sort: str = "updated"
    descending: bool = True
    cursor: str | None = None

    @classmethod
    def parse(cls, params: Any) -> Query:
        """From query parameters; empty values mean "any". Bad values raise `InvalidArgument`."""

        def text(name: str) -> str | None:
            value = params.get(name)
            return value.strip() or None if isinstance(value, str) else None

        machine, state, status, prefix = text("machine"), text("state"), text("status"), text("id")
        if machine is not None:
            check_name(machine, "machine")
        if state is not None:
            check_name(state, "state")
        if status is not None and status not in STATUSES:
            raise errors.InvalidArgument(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        if prefix is not None and len(prefix) > MAX_PREFIX:
            raise errors.InvalidArgument(f"the id prefix is longer than {MAX_PREFIX} characters")
        sort = text("sort") or "updated"
        if sort not in SORTABLE:
            raise errors.InvalidArgument(f"sort must be one of {', '.join(SORTABLE)}, got {sort!r}")
        direction = text("dir") or ("desc" if sort == "updated" else "asc")
        if direction not in ("asc", "desc"):
            raise errors.InvalidArgument(f"dir must be asc or desc, got {direction!r}")
        return cls(machine, state, status, prefix, sort, direction == "desc", text("cursor"))

    def params(self, **changes: Any) -> dict[str, str]:
        """The query parameters of this list with `changes` applied (None drops one)."""
        out = {
            "machine": self.machine,
            "state": self.state,
            "status": self.status,
            "id": self.id_prefix,
            "sort": self.sort,
            "dir": "desc" if self.descending else "asc",
        }
        out.update(changes)
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class Page:
    rows: list[Snapshot]
    next_cursor: str | None
    reasons: dict[str, str] = field(default_factory=dict)  # failed instances: why


def encode_cursor(query: Query, value: Any, instance_id: str) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([query.sort, query.descending, value, instance_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(query: Query, db: Any) -> tuple[Any, str] | None:
    """The (stored value, id) a page starts after, or `InvalidArgument` for a cursor that is not
    one of ours or was made for another sort."""
    if query.cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(query.cursor + "=" * (-len(query.cursor) % 4))
        sort, descending, value, instance_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise errors.InvalidArgument("the page cursor is not valid: start from the first page") from None
    if sort != query.sort or descending != query.descending or not isinstance(instance_id, str):
        raise errors.InvalidArgument("the page cursor belongs to another sort: start from the first page")
    if query.sort == "updated":
        try:
            value = db.ts(datetime.fromisoformat(value))
        except (TypeError, ValueError):
            raise errors.InvalidArgument("the page cursor is not valid: start from the first page") from None
    elif query.sort == "version":
        if not isinstance(value, int) or isinstance(value, bool):
            raise errors.InvalidArgument("the page cursor is not valid: start from the first page")
    elif not isinstance(value, str):
        raise errors.InvalidArgument("the page cursor is not valid: start from the first page")
    return value, instance_id


class ConsoleQueries:
    """The console's reads on one engine (its database and registered models)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.db = engine.db
        self.listing = Listing(engine.db)

    def page(self, query: Query, limit: int = PAGE_SIZE) -> Page:
        after = decode_cursor(query, self.db)
        where = InstanceFilter(query.machine, query.state, query.status, query.id_prefix)
        with self.db.read() as cur:
            rows = self.listing.page(cur, where, query.sort, query.descending, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        # No context model: a list shows no context, and rows of old versions parse as plain JSON.
        snapshots = [snapshot_from_row(self.db, r, None) for r in rows]
        cursor = None
        if more:
            last = rows[-1]
            value = {"updated": self.db.from_ts(last[UPDATED]), "version": last[VERSION]}.get(
                query.sort, getattr(snapshots[-1], query.sort, None)
            )
            cursor = encode_cursor(query, value, last[ID])
        reasons = self.failure_reasons([s.id for s in snapshots if s.status == FAILED])
        return Page(snapshots, cursor, reasons)

    def failure_reasons(self, ids: list[str]) -> dict[str, str]:
        """Why each failed instance failed: the reason of its latest `failed` history record."""
        if not ids:
            return {}
        with self.db.read() as cur:
            found = self.listing.failure_reasons(cur, ids)
        return {instance_id: reason for instance_id, reason in found if reason}

    def machines(self) -> list[dict[str, Any]]:
        """Every stored machine: name, its versions (newest first, with their time)."""
        with self.db.read() as cur:
            rows = self.listing.machines(cur)
        out: dict[str, dict[str, Any]] = {}
        for name, version, created, _revision in rows:
            entry = out.setdefault(name, {"name": name, "versions": []})
            entry["versions"].append({"version": version, "created_at": self.db.from_ts(created)})
        return list(out.values())

    def counts(self, machine: str) -> list[tuple[str, str, int]]:
        """(state, status, n) of one machine, from `Engine.state_counts`."""
        found = self.engine.state_counts(machine)
        return [(state, status, n) for state, per in found.items() for status, n in per.items()]

    def fingerprint(self, instance_id: str) -> str | None:
        """A short text that changes whenever anything the instance page shows changes (state,
        history, timers, effects and their attempts); None for an unknown instance."""
        with self.db.read() as cur:
            row = self.listing.fingerprint(cur, instance_id)
        if row is None:
            return None
        return ":".join(str(part) for part in row)
