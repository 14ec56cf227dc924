"""Keyset (cursor) paging of instances and history: a page starts after the last row of the
previous one, so a deep page costs what the first does (an index range), and rows inserted
meanwhile neither repeat nor vanish, which OFFSET cannot promise.

A cursor is opaque to callers: URL-safe base64 of the last row's key. Instances page in
(created_at, id) order, history in seq order. Functions of the `Runtime`; `Engine.instances_page`
and `Engine.history_page` delegate here after checking arguments.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from statemachines import errors
from statemachines.records import Record, Snapshot
from statemachines.rows import CREATED, ID, MACHINE, record_from_row, snapshot_from_row
from statemachines.runtime import Runtime

T = TypeVar("T")
MAX_PAGE = 1000
MAX_CURSOR = 1024


@dataclass(frozen=True)
class Page(Generic[T]):
    """Some rows, and the cursor of the page after them (None on the last page)."""

    items: list[T]
    next_cursor: str | None


def _encode(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: object) -> Any:
    if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR:
        raise errors.InvalidArgument(f"malformed cursor {cursor!r}: pass a next_cursor from a page")
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.InvalidArgument(f"malformed cursor {cursor!r}: pass a next_cursor from a page") from None


def check_limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise errors.InvalidArgument(f"limit must be an integer from 1 to {MAX_PAGE}, got {limit!r}")
    return limit


def instance_after(rt: Runtime, cursor: str) -> tuple[Any, str]:
    """The stored (created_at, id) key a cursor from `instances_page` points after."""
    value = _decode(cursor)
    try:
        kind, at, iid = value
        if kind != "i" or not isinstance(iid, str):
            raise ValueError(kind)
        return rt.db.ts(datetime.fromisoformat(at)), iid
    except (ValueError, TypeError):
        raise errors.InvalidArgument(f"cursor {cursor!r} is not a cursor of instances") from None


def instances_page(
    rt: Runtime,
    machine: str | None,
    state: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page[Snapshot]:
    after = instance_after(rt, cursor) if cursor is not None else None
    known = rt.machines.get(machine) if machine is not None else None
    charts = known is None or known.is_chart
    with rt.read() as cur:  # one row more than asked: whether a next page exists
        rows = rt.store.list_instances(cur, machine, state, status, limit + 1, 0, charts, after)
    items = [snapshot_from_row(rt.db, r, rt.model_of(r[MACHINE])) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    token = _encode(["i", rt.db.from_ts(last[CREATED]).isoformat(), last[ID]]) if last else None
    return Page(items, token)


def history_page(rt: Runtime, instance_id: str, limit: int, cursor: str | None) -> Page[Record]:
    after = 0
    if cursor is not None:
        value = _decode(cursor)
        if not (isinstance(value, list) and len(value) == 2 and value[0] == "h" and type(value[1]) is int):
            raise errors.InvalidArgument(f"cursor {cursor!r} is not a cursor of history records")
        after = value[1]
    with rt.read() as cur:
        rows = rt.store.history_page(cur, instance_id, after, limit + 1)
        if not rows and rt.store.get_instance(cur, instance_id) is None:
            raise errors.InstanceNotFound(instance_id)
    items = [record_from_row(rt.db, r) for r in rows[:limit]]
    token = _encode(["h", items[-1].seq]) if len(rows) > limit else None
    return Page(items, token)
