"""Read-only queries for operator screens: sorted keyset pages of instances (any column, an id
prefix), every stored definition version, why instances failed, and what changes an instance.

Kept apart from `Store` (the engine's per-event statements) because nothing on the hot path
uses them and their SQL depends on the sort a person picked. Pages are keyset pages, never
OFFSET: the page after a cursor is `WHERE (column, id) > (last value, last id)`, so a deep page
costs what the first one does and rows inserted meanwhile neither repeat nor vanish.
Like `Store`, this knows rows and text, never what a state machine is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from persistence.database import Database
from persistence.store import INSTANCE_COLUMNS

#: Columns a page may be sorted by (the names operators see) -> the column in sm_instances.
SORTABLE = {
    "id": "id",
    "machine": "machine",
    "state": "state",
    "status": "status",
    "version": "version",
    "updated": "updated_at",
}


@dataclass(frozen=True)
class InstanceFilter:
    """What a page is restricted to; None means any. `id_prefix` matches ids starting with it
    (LIKE's wildcards in it are taken literally)."""

    machine: str | None = None
    state: str | None = None
    status: str | None = None
    id_prefix: str | None = None


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class Listing:
    """The statements, built per shape (filter present or not, sort, direction) and cached."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[tuple[Any, ...], str] = {}

    def page(
        self,
        cur: Any,
        where: InstanceFilter,
        sort: str,
        descending: bool,
        after: tuple[Any, str] | None,
        limit: int,
    ) -> list[tuple[Any, ...]]:
        """Up to `limit` instance rows (INSTANCE_COLUMNS) in (sort column, id) order, strictly
        after the key `after` = (sort value as stored, id). A state matches at any depth of a
        statechart (sm_chart_states), like `Engine.instances`."""
        column = SORTABLE[sort]
        shape = (
            where.machine is not None,
            where.state is not None,
            where.status is not None,
            where.id_prefix is not None,
            column,
            descending,
            after is not None,
        )
        sql = self._cache.get(shape)
        if sql is None:
            sql = self._cache[shape] = self.db.sql(self._page_sql(shape))
        params: dict[str, Any] = {
            "machine": where.machine,
            "state": where.state,
            "status": where.status,
            "prefix": _like_prefix(where.id_prefix) if where.id_prefix is not None else None,
            "limit": limit,
            "after_value": after[0] if after else None,
            "after_id": after[1] if after else None,
        }
        cur.execute(sql, params)
        return list(cur.fetchall())

    @staticmethod
    def _page_sql(shape: tuple[Any, ...]) -> str:
        machine, state, status, prefix, column, descending, has_after = shape
        conditions = []
        if machine:
            conditions.append("machine = :machine")
        if state:
            in_machine = " AND machine = :machine" if machine else ""
            conditions.append(
                "id IN (SELECT id FROM sm_instances WHERE state = :state AND chart IS NULL"
                f"{in_machine} UNION ALL SELECT instance_id FROM sm_chart_states"
                f" WHERE state = :state{in_machine})"
            )
        if status:
            conditions.append("status = :status")
        if prefix:
            conditions.append("id LIKE :prefix ESCAPE '\\'")
        op, order = ("<", "DESC") if descending else (">", "ASC")
        if has_after:
            if column == "id":
                conditions.append(f"id {op} :after_id")
            else:
                conditions.append(
                    f"({column} {op} :after_value OR ({column} = :after_value AND id {op} :after_id))"
                )
        text = f"SELECT {INSTANCE_COLUMNS} FROM sm_instances"
        if conditions:
            text += " WHERE " + " AND ".join(conditions)
        tie = "" if column == "id" else f", id {order}"
        return text + f" ORDER BY {column} {order}{tie} LIMIT :limit"

    def machines(self, cur: Any) -> list[tuple[str, str, Any, int]]:
        """Every stored definition version: (name, version, created_at, revision), newest first
        within a name."""
        sql = self._cache.get(("machines",))
        if sql is None:
            sql = self._cache[("machines",)] = self.db.sql(
                "SELECT name, version, created_at, revision FROM sm_definitions ORDER BY name, revision DESC"
            )
        cur.execute(sql)
        return list(cur.fetchall())

    def failure_reasons(self, cur: Any, ids: list[str]) -> list[tuple[str, str | None]]:
        """(instance id, reason) of the `failed` history records of these instances, oldest
        first, so the last one per instance is its latest failure."""
        marks = ", ".join(f":id{i}" for i in range(len(ids)))
        cur.execute(
            self.db.sql(
                "SELECT instance_id, reason FROM sm_history WHERE outcome = 'failed'"
                f" AND instance_id IN ({marks}) ORDER BY instance_id, seq"
            ),
            {f"id{i}": instance_id for i, instance_id in enumerate(ids)},
        )
        return list(cur.fetchall())

    def fingerprint(self, cur: Any, instance_id: str) -> tuple[Any, ...] | None:
        """What changes when anything about one instance changes: its last history seq, version,
        status, its timers, its effects' attempts and statuses. None: no such instance."""
        sql = self._cache.get(("fingerprint",))
        if sql is None:
            sql = self._cache[("fingerprint",)] = self.db.sql(
                "SELECT i.last_seq, i.version, i.status,"
                " (SELECT COUNT(*) FROM sm_timers t WHERE t.instance_id = i.id),"
                " (SELECT COUNT(*) FROM sm_effect_attempts a WHERE a.instance_id = i.id),"
                " (SELECT COUNT(*) FROM sm_effects e WHERE e.instance_id = i.id"
                " AND e.status IN ('pending', 'running'))"
                " FROM sm_instances i WHERE i.id = :id"
            )
        cur.execute(sql, {"id": instance_id})
        row = cur.fetchone()
        return tuple(row) if row is not None else None
