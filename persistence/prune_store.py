"""Statements of retention: find closed instances past a cutoff, delete them with their rows.

Knows rows and ids only; which statuses may go and the batching are `statemachines/prune.py`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from persistence.database import Database

# An instance is prunable when it is closed (one of the statuses given), was last changed before
# the cutoff, and nothing of it may still run: no effect pending, running or queued (a
# `cancel(compensate=True)` keeps compensating a cancelled instance).
_PRUNABLE = (
    "status IN ({statuses}) AND updated_at < :before AND NOT EXISTS (SELECT 1 FROM sm_effects e"
    " WHERE e.instance_id = sm_instances.id AND e.status IN ('pending', 'running', 'waiting'))"
)

#: The tables deleted from, child rows first, keyed by the name the report uses.
CHILD_TABLES = {
    "history": "sm_history",
    "receipts": "sm_receipts",
    "timers": "sm_timers",
    "attempts": "sm_effect_attempts",
    "effects": "sm_effects",
    "tokens": "sm_token_uses",
    "sends": "sm_sends",
}


class PruneStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _where(self, statuses: Sequence[str]) -> tuple[str, dict[str, Any]]:
        names = ", ".join(f":s{i}" for i in range(len(statuses)))
        return _PRUNABLE.format(statuses=names), {f"s{i}": s for i, s in enumerate(statuses)}

    def claim_batch(
        self, cur: Any, statuses: Sequence[str], before: datetime, limit: int
    ) -> list[tuple[str, str | None]]:
        """(id, chart) of up to `limit` prunable instances, locked (PostgreSQL: `SKIP LOCKED`, so
        an instance a sender or a worker holds right now is left for the next run; SQLite: the
        transaction holds the write lock)."""
        where, params = self._where(statuses)
        text = f"SELECT id, chart FROM sm_instances WHERE {where} ORDER BY updated_at, id LIMIT :limit"
        if self.db.dialect == "postgresql":
            text += " FOR UPDATE SKIP LOCKED"
        cur.execute(self.db.sql(text), {**params, "before": self.db.ts(before), "limit": limit})
        return [(r[0], r[1]) for r in cur.fetchall()]

    def delete(self, cur: Any, ids: Sequence[str], chart_states: Sequence[tuple[str, str]]) -> dict[str, int]:
        """Delete the instances `ids` and every row of theirs; returns the rows deleted per table.
        `chart_states`: the (state, instance id) keys of their `sm_chart_states` rows (that table
        is keyed by state first, so it is deleted by key rather than scanned by instance)."""
        marks = ", ".join(f":i{i}" for i in range(len(ids)))
        params = {f"i{i}": v for i, v in enumerate(ids)}
        counts: dict[str, int] = {}
        for label, table in CHILD_TABLES.items():
            cur.execute(self.db.sql(f"DELETE FROM {table} WHERE instance_id IN ({marks})"), params)
            counts[label] = max(cur.rowcount, 0)
        deleted_states = 0
        sql = self.db.sql("DELETE FROM sm_chart_states WHERE state = :state AND instance_id = :id")
        for state, iid in chart_states:
            cur.execute(sql, {"state": state, "id": iid})
            deleted_states += max(cur.rowcount, 0)
        counts["chart_states"] = deleted_states
        cur.execute(self.db.sql(f"DELETE FROM sm_instances WHERE id IN ({marks})"), params)
        counts["instances"] = max(cur.rowcount, 0)
        return counts

    def count(self, cur: Any, statuses: Sequence[str], before: datetime) -> dict[str, int]:
        """What `delete` would remove now (a dry run), per table."""
        where, params = self._where(statuses)
        params = {**params, "before": self.db.ts(before)}
        ids = f"SELECT id FROM sm_instances WHERE {where}"
        counts: dict[str, int] = {}
        for label, table in CHILD_TABLES.items():
            cur.execute(self.db.sql(f"SELECT count(*) FROM {table} WHERE instance_id IN ({ids})"), params)
            counts[label] = int(cur.fetchone()[0])
        text = f"SELECT count(*) FROM sm_chart_states WHERE instance_id IN ({ids})"
        cur.execute(self.db.sql(text), params)
        counts["chart_states"] = int(cur.fetchone()[0])
        cur.execute(self.db.sql(f"SELECT count(*) FROM sm_instances WHERE {where}"), params)
        counts["instances"] = int(cur.fetchone()[0])
        return counts
