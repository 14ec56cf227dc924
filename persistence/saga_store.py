"""Statements of compensation and the effect audit: succeeded effects, compensation rows, and
every effect of an instance with its attempts (`statemachines effects ID`).

Like `Store`, this knows rows, ids and JSON text only; what a compensation or a rewind means is
in `statemachines/compensation.py` and `statemachines/rewind.py`.
"""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import Any

from persistence.database import Database
from persistence.schedule import LIVE_ENTRY

_SQL = {
    # Succeeded effects of an instance that no succeeded compensation undid yet, newest success
    # first (rows from before `done_seq` existed count as the oldest).
    "uncompensated": "SELECT e.id, e.state, e.name, e.key FROM sm_effects e"
    " WHERE e.instance_id = :id AND e.status = 'done' AND e.compensates IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM sm_effects c WHERE c.instance_id = e.instance_id"
    " AND c.compensates = e.id AND c.status = 'done')"
    " ORDER BY COALESCE(e.done_seq, 0) DESC, e.id DESC",
    "insert_compensation": "INSERT INTO sm_effects (instance_id, machine, entered_seq, state, name,"
    " key, status, attempt, round_start, next_at, updated_at, compensates) VALUES (:id, :machine,"
    " :entered_seq, :state, :name, :key, :status, 0, 0, :now, :now, :compensates)",
    "set_done_seq": "UPDATE sm_effects SET done_seq = :seq WHERE id = :effect_id",
    # Compensations not done of the state entries the instance is in (a chain under way), in
    # run order per entry.
    "live_compensations": "SELECT e.id, e.state, e.entered_seq FROM sm_effects e"
    " JOIN sm_instances i ON i.id = e.instance_id WHERE e.instance_id = :id"
    f" AND e.compensates IS NOT NULL AND e.status <> 'done' AND {LIVE_ENTRY.format(t='e')} ORDER BY e.id",
    # The compensation rows armed by one state entry (or one cancel), in the order they run.
    "entry_compensations": "SELECT id, name, status FROM sm_effects WHERE instance_id = :id"
    " AND state = :state AND entered_seq = :entered_seq AND compensates IS NOT NULL ORDER BY id",
    "promote": "UPDATE sm_effects SET status = 'pending', next_at = :now, updated_at = :now"
    " WHERE id = :effect_id AND status = 'waiting'",
    # A compensation of the entry a `cancel(compensate=True)` closes, queued again (a new round
    # of attempts, the same key): due now (`pending`) or `waiting` for the one before it.
    "requeue": "UPDATE sm_effects SET status = :status, next_at = :now, round_start = attempt,"
    " lease_until = NULL, updated_at = :now WHERE id = :effect_id",
    # Every effect and compensation row of an instance, with the original's name for the latter.
    "effects": "SELECT e.id, e.name, e.state, e.entered_seq, e.key, e.status, e.attempt, e.last_error,"
    " e.result, e.compensates, e.done_seq, e.updated_at FROM sm_effects e WHERE e.instance_id = :id"
    " ORDER BY e.id",
    "attempts": "SELECT effect_id, attempt, started_at, duration_ms, ok, error FROM sm_effect_attempts"
    " WHERE instance_id = :id ORDER BY effect_id, attempt",
}


class SagaStore:
    """Prepared once per database (see `for_database`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sql = {name: db.sql(text) for name, text in _SQL.items()}

    def uncompensated(self, cur: Any, instance_id: str) -> list[tuple[Any, ...]]:
        """(id, state, name, key) of succeeded, not yet compensated effects, newest first."""
        cur.execute(self.sql["uncompensated"], {"id": instance_id})
        return cur.fetchall()

    def insert_compensation(
        self,
        cur: Any,
        instance_id: str,
        machine: str,
        entered_seq: int,
        state: str,
        name: str,
        key: str,
        compensates: int,
        waiting: bool,
        now: datetime,
    ) -> None:
        """A compensation row: due now (`pending`), or `waiting` for the one before it."""
        cur.execute(
            self.sql["insert_compensation"],
            {"id": instance_id, "machine": machine, "entered_seq": entered_seq, "state": state,
             "name": name, "key": key, "status": "waiting" if waiting else "pending",
             "now": self.db.ts(now), "compensates": compensates},
        )  # fmt: skip

    def set_done_seq(self, cur: Any, effect_id: int, seq: int) -> None:
        cur.execute(self.sql["set_done_seq"], {"effect_id": effect_id, "seq": seq})

    def entry_compensations(
        self, cur: Any, instance_id: str, state: str, entered_seq: int
    ) -> list[tuple[Any, ...]]:
        """(id, name, status) of the compensations armed for one state entry, in run order."""
        cur.execute(
            self.sql["entry_compensations"], {"id": instance_id, "state": state, "entered_seq": entered_seq}
        )
        return cur.fetchall()

    def promote(self, cur: Any, effect_id: int, now: datetime) -> None:
        """Make a `waiting` compensation due now (the one before it succeeded)."""
        cur.execute(self.sql["promote"], {"effect_id": effect_id, "now": self.db.ts(now)})

    def live_compensations(self, cur: Any, instance_id: str) -> list[tuple[Any, ...]]:
        """(id, state, entered_seq) of the compensations not done of the entries the instance
        is in, in run order."""
        cur.execute(self.sql["live_compensations"], {"id": instance_id})
        return cur.fetchall()

    def requeue(self, cur: Any, effect_id: int, waiting: bool, now: datetime) -> None:
        status = "waiting" if waiting else "pending"
        cur.execute(self.sql["requeue"], {"effect_id": effect_id, "status": status, "now": self.db.ts(now)})

    def effects(self, cur: Any, instance_id: str) -> list[tuple[Any, ...]]:
        """Every effect row of an instance (compensations included), oldest first."""
        cur.execute(self.sql["effects"], {"id": instance_id})
        return cur.fetchall()

    def attempts(self, cur: Any, instance_id: str) -> list[tuple[Any, ...]]:
        """(effect id, attempt, started_at, duration_ms, ok, error) of every attempt."""
        cur.execute(self.sql["attempts"], {"id": instance_id})
        return cur.fetchall()


_STORES: weakref.WeakKeyDictionary[Database, SagaStore] = weakref.WeakKeyDictionary()


def for_database(db: Database) -> SagaStore:
    """The store of `db`, prepared on first use: its statements are converted once per database,
    and it goes with the database (callers such as `arm_state` hold a `Schedule`, not a runtime)."""
    store = _STORES.get(db)
    if store is None:
        store = _STORES[db] = SagaStore(db)
    return store
