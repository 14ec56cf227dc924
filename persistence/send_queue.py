"""Statements of the send queue (`sm_sends`): events instances sent themselves with `<send>`.

Rows and JSON text only; `statemachines.sends` decides what they mean. Claims lock the send and
its instance (PostgreSQL: `FOR UPDATE ... SKIP LOCKED`, as timers do), so one send is delivered
once however many workers run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from persistence.database import Database
from persistence.schedule import served_condition, served_params

_SQL = {
    "insert": "INSERT INTO sm_sends (instance_id, machine, send_id, event, payload, fire_at)"
    " VALUES (:id, :machine, :send_id, :event, :payload, :fire_at)",
    "cancel": "DELETE FROM sm_sends WHERE instance_id = :id AND send_id = :send_id",
    "drop_all": "DELETE FROM sm_sends WHERE instance_id = :id",
    "delete": "DELETE FROM sm_sends WHERE id = :send_row",
    "pending_of": "SELECT send_id, event, payload, fire_at FROM sm_sends WHERE instance_id = :id"
    " ORDER BY fire_at, id",
    "due_of": "SELECT id, instance_id, send_id, event, payload, fire_at FROM sm_sends"
    " WHERE instance_id = :id AND fire_at <= :now ORDER BY fire_at, id",
}
_CLAIM = (
    "SELECT s.id, s.instance_id, s.send_id, s.event, s.payload, s.fire_at FROM sm_sends s"
    " JOIN sm_instances i ON i.id = s.instance_id"
    " WHERE s.fire_at <= :now AND i.status = 'active' AND ({served})"
    " ORDER BY s.fire_at, s.id LIMIT :limit"
)
NEXT_DUE = (
    "SELECT MIN(s.fire_at) FROM sm_sends s JOIN sm_instances i ON i.id = s.instance_id"
    " WHERE i.status = 'active' AND ({served})"
)


class SendQueue:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.sql = {name: db.sql(text) for name, text in _SQL.items()}
        self._claims: dict[int, str] = {}

    def insert(
        self, cur: Any, instance_id: str, machine: str, send_id: str, event: str, payload: str,
        fire_at: datetime,
    ) -> None:  # fmt: skip
        cur.execute(
            self.sql["insert"],
            {"id": instance_id, "machine": machine, "send_id": send_id, "event": event,
             "payload": payload, "fire_at": self.db.ts(fire_at)},
        )  # fmt: skip

    def write(
        self,
        cur: Any,
        instance_id: str,
        machine: str,
        ops: Sequence[tuple[str, str, str | None, str | None, float]],
        now: datetime,
    ) -> None:
        """Store one step's sends and cancels in the order they ran: ("send", send id, event,
        payload JSON, delay seconds) inserts a row due `now` + delay; ("cancel", send id, ...)
        deletes the instance's undelivered rows with that id (those of this step included)."""
        for op, send_id, event, payload, delay in ops:
            if op == "cancel":
                self.cancel(cur, instance_id, send_id)
            else:
                assert event is not None and payload is not None
                fire_at = now + timedelta(seconds=delay)
                self.insert(cur, instance_id, machine, send_id, event, payload, fire_at)

    def cancel(self, cur: Any, instance_id: str, send_id: str) -> int:
        cur.execute(self.sql["cancel"], {"id": instance_id, "send_id": send_id})
        return cur.rowcount

    def drop_all(self, cur: Any, instance_id: str) -> None:
        cur.execute(self.sql["drop_all"], {"id": instance_id})

    def delete(self, cur: Any, row_id: int) -> None:
        cur.execute(self.sql["delete"], {"send_row": row_id})

    def pending_of(self, cur: Any, instance_id: str) -> list[tuple[Any, ...]]:
        """(send_id, event, payload JSON, fire_at) of an instance, in delivery order."""
        cur.execute(self.sql["pending_of"], {"id": instance_id})
        return cur.fetchall()

    def due_of(self, cur: Any, instance_id: str, now: datetime) -> list[tuple[Any, ...]]:
        """The sends of one instance due at `now`, as `claim` returns them, in delivery order. The
        caller holds the instance's lock, which a claim takes too: no worker delivers them meanwhile."""
        cur.execute(self.sql["due_of"], {"id": instance_id, "now": self.db.ts(now)})
        return cur.fetchall()

    def claim(
        self, cur: Any, now: datetime, limit: int, served: Sequence[tuple[str, str]]
    ) -> list[tuple[Any, ...]]:
        """Due sends of active instances of the `served` (machine, version) pairs: (id,
        instance_id, send_id, event, payload, fire_at), in delivery order."""
        if not served:
            return []
        sql = self._claims.get(len(served))
        if sql is None:
            text = _CLAIM.format(served=served_condition(len(served)))
            if self.db.dialect == "postgresql":
                text += " FOR UPDATE OF s, i SKIP LOCKED"
            sql = self._claims[len(served)] = self.db.sql(text)
        params = {"now": self.db.ts(now), "limit": limit, **served_params(served)}
        cur.execute(sql, params)
        return cur.fetchall()
