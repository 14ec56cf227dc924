"""The statements of definition versions and migrations: which versions are stored, which live
instances run on each, and the writes that move one instance to another version.

Like `Store`, this knows rows and JSON text only: what a version *means* is decided in
`statemachines.versions` and `statemachines.migration`. Nothing here runs on the `send` path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from persistence.database import Database
from persistence.schedule import LIVE_ENTRY

#: Instances a migration or a compatibility check cares about: those that may still move.
LIVE = "('active', 'failed')"

_SQL = {
    "definitions": "SELECT version, revision, created_at, spec FROM sm_definitions WHERE name = :machine"
    " ORDER BY revision",
    # Live instances per (version, state): flat ones by their state, statecharts by every active
    # state (compound and parallel ones included) from `sm_chart_states`.
    "flat_states": "SELECT definition_version, state, count(*) FROM sm_instances"
    f" WHERE machine = :machine AND status IN {LIVE} AND chart IS NULL"
    " GROUP BY definition_version, state",
    "chart_states": "SELECT i.definition_version, c.state, count(*) FROM sm_chart_states c"
    " JOIN sm_instances i ON i.id = c.instance_id"
    f" WHERE i.machine = :machine AND i.status IN {LIVE} GROUP BY i.definition_version, c.state",
    "active_versions": "SELECT machine, definition_version, count(*) FROM sm_instances"
    " WHERE status = 'active' GROUP BY machine, definition_version",
    # A page of a bulk migration, in the order of the machine's index (machine, created_at, id):
    # keyset paging, so each page starts where the last ended, whatever moved meanwhile.
    "page_version": "SELECT id, created_at FROM sm_instances WHERE machine = :machine"
    f" AND definition_version = :version AND status IN {LIVE}"
    " AND (created_at > :after_at OR (created_at = :after_at AND id > :after_id))"
    " ORDER BY created_at, id LIMIT :limit",
    "page_other": "SELECT id, created_at FROM sm_instances WHERE machine = :machine"
    f" AND definition_version <> :version AND status IN {LIVE}"
    " AND (created_at > :after_at OR (created_at = :after_at AND id > :after_id))"
    " ORDER BY created_at, id LIMIT :limit",
    "sample_contexts": "SELECT id, context FROM sm_instances WHERE machine = :machine"
    f" AND definition_version = :version AND status IN {LIVE} ORDER BY created_at, id LIMIT :limit",
    "timers": "SELECT id, state, entered_seq, event FROM sm_timers WHERE instance_id = :id ORDER BY id",
    # Failed rows count only in the entries the instance is still in (those of states left stay
    # `failed` for the record and are never redriven).
    "effects": "SELECT e.id, e.state, e.entered_seq, e.name, e.status FROM sm_effects e"
    " JOIN sm_instances i ON i.id = e.instance_id WHERE e.instance_id = :id"
    " AND (e.status IN ('pending', 'running', 'held', 'waiting')"
    f" OR (e.status = 'failed' AND {LIVE_ENTRY.format(t='e')})) ORDER BY e.id",
    "delete_timer": "DELETE FROM sm_timers WHERE id = :timer_id AND instance_id = :id",
    "cancel_effect": "UPDATE sm_effects SET status = 'cancelled', lease_until = NULL, updated_at = :now"
    " WHERE id = :effect_id AND instance_id = :id",
    "move_instance": "UPDATE sm_instances SET definition_version = :dv, state = :state, context = :context,"
    " status = :status, version = :version, entered_seq = :entered_seq, last_seq = :seq, chart = :chart,"
    # `armed` NULL ("maybe"): the migration may arm rows for the new state, so the next transition
    # must look for rows to disarm (persistence.store, `armed`).
    " armed = NULL, updated_at = :now WHERE id = :id",
}


class VersionStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.sql = {name: db.sql(text) for name, text in _SQL.items()}

    def definitions(self, cur: Any, machine: str) -> list[tuple[str, int, datetime, str]]:
        """(version, revision, registered at, spec JSON) of each stored version, oldest first."""
        cur.execute(self.sql["definitions"], {"machine": machine})
        return [(v, r, self.db.from_ts(at), spec) for v, r, at, spec in cur.fetchall()]

    def live_states(self, cur: Any, machine: str) -> list[tuple[str, str, int]]:
        """(version, state, live instances) for every state a live instance of `machine` is in."""
        out: list[tuple[str, str, int]] = []
        for name in ("flat_states", "chart_states"):
            cur.execute(self.sql[name], {"machine": machine})
            out.extend((v, s, int(n)) for v, s, n in cur.fetchall())
        return out

    def active_versions(self, cur: Any) -> list[tuple[str, str, int]]:
        """(machine, version, active instances) over the whole database."""
        cur.execute(self.sql["active_versions"])
        return [(m, v, int(n)) for m, v, n in cur.fetchall()]

    def page(
        self, cur: Any, machine: str, version: str, same: bool, after: tuple[Any, str], limit: int
    ) -> list[tuple[str, Any]]:
        """Up to `limit` live instances of `machine` on `version` (`same`) or on any other version,
        after the (created_at, id) key `after` (raw column values, as returned here)."""
        params = {"machine": machine, "version": version, "after_at": after[0], "after_id": after[1],
                  "limit": limit}  # fmt: skip
        cur.execute(self.sql["page_version" if same else "page_other"], params)
        return [(iid, at) for iid, at in cur.fetchall()]

    def first_key(self) -> tuple[Any, str]:
        """A (created_at, id) key before every row."""
        return self.db.ts(datetime(1, 1, 2, tzinfo=UTC)), ""

    def sample_contexts(self, cur: Any, machine: str, version: str, limit: int) -> list[tuple[str, str]]:
        cur.execute(self.sql["sample_contexts"], {"machine": machine, "version": version, "limit": limit})
        return [(iid, ctx) for iid, ctx in cur.fetchall()]

    def armed(self, cur: Any, instance_id: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The instance's timer rows (id, state, entered_seq, event) and live effect rows
        (id, state, entered_seq, name, status), whichever version armed them."""
        cur.execute(self.sql["timers"], {"id": instance_id})
        timers = cur.fetchall()
        cur.execute(self.sql["effects"], {"id": instance_id})
        return timers, cur.fetchall()

    def drop(
        self, cur: Any, instance_id: str, timer_ids: Sequence[int], effect_ids: Sequence[int], now: datetime
    ) -> None:
        """Delete these timers and cancel these effects of the instance."""
        if timer_ids:
            cur.executemany(self.sql["delete_timer"], [{"timer_id": t, "id": instance_id} for t in timer_ids])
        if effect_ids:
            ts = self.db.ts(now)
            cur.executemany(
                self.sql["cancel_effect"],
                [{"effect_id": e, "id": instance_id, "now": ts} for e in effect_ids],
            )

    def move_instance(
        self,
        cur: Any,
        instance_id: str,
        dv: str,
        state: str,
        context: str,
        status: str,
        version: int,
        entered_seq: int,
        seq: int,
        chart: str | None,
        now: datetime,
    ) -> None:
        """Write a migrated instance: every column a migration may change, at once."""
        cur.execute(
            self.sql["move_instance"],
            {"id": instance_id, "dv": dv, "state": state, "context": context, "status": status,
             "version": version, "entered_seq": entered_seq, "seq": seq, "chart": chart,
             "now": self.db.ts(now)},
        )  # fmt: skip
