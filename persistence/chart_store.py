"""The statements of statechart instances: their own, so a flat event never names a chart column.

A chart instance is an `sm_instances` row whose `chart` column holds its active states (with the
history seq of their entry) and history memory, plus one `sm_chart_states` row per active state;
its history rows carry `configuration`. Like `Store`, this knows rows and JSON text only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from persistence.database import Database
from persistence.store import HISTORY_COLUMNS, INSTANCE_COLUMNS, history_params, update_statements

_SQL = {
    "insert_chart_instance": f"INSERT INTO sm_instances ({INSTANCE_COLUMNS}) VALUES (:id, :machine,"
    " :dv, :state, :context, :status, 1, 0, :now, :now, 1, :chart)",
    "insert_chart_history": f"INSERT INTO sm_history (instance_id, machine, {HISTORY_COLUMNS},"
    " configuration) VALUES (:id, :machine, :seq, :event, :source, :target, :payload, :context,"
    " :actor, :now, :outcome, :reason, :configuration)",
    "delete_chart_state": "DELETE FROM sm_chart_states WHERE instance_id = :id AND state = :state",
    "insert_chart_state": "INSERT INTO sm_chart_states (instance_id, state, machine, entered_seq)"
    " VALUES (:id, :state, :machine, :entered_seq)",
}


class ChartStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.sql = {name: db.sql(text) for name, text in _SQL.items()}
        self._updates = update_statements(db, "chart = :chart, ")

    def insert_chart_instance(
        self,
        cur: Any,
        instance_id: str,
        machine: str,
        dv: str,
        state: str,
        context: str,
        status: str,
        chart: str,
        now: datetime,
    ) -> None:
        """A chart instance: `state` is the summary, `chart` the active states and history
        memory, `entered_seq` 0 (entries are per state, in `chart` and `sm_chart_states`)."""
        cur.execute(
            self.sql["insert_chart_instance"],
            {"id": instance_id, "machine": machine, "dv": dv, "state": state, "context": context,
             "status": status, "chart": chart, "now": self.db.ts(now)},
        )  # fmt: skip

    def update_chart_instance(
        self,
        cur: Any,
        instance_id: str,
        dv: str,
        state: str | None,
        context: str,
        status: str | None,
        chart: str,
        version: int,
        seq: int,
        now: datetime,
    ) -> None:
        """Write an applied chart step; `state`/`status` None mean unchanged."""
        cur.execute(
            self._updates[state is not None, status is not None],
            {"id": instance_id, "dv": dv, "state": state, "context": context, "status": status,
             "chart": chart, "version": version, "entered_seq": 0, "seq": seq,
             "now": self.db.ts(now)},
        )  # fmt: skip

    def insert_chart_history(
        self,
        cur: Any,
        instance_id: str,
        machine: str,
        seq: int,
        event: str,
        source: str | None,
        target: str,
        payload: str,
        context: str,
        actor: str | None,
        now: datetime,
        outcome: str,
        reason: str | None,
        configuration: str,
    ) -> None:
        """A history record of a chart instance: `configuration` is the JSON list of its active
        atomic states after the event."""
        cur.execute(
            self.sql["insert_chart_history"],
            {**history_params(self.db, instance_id, machine, seq, event, source, target, payload,
                              context, actor, now, outcome, reason),
             "configuration": configuration},
        )  # fmt: skip

    def move_chart_states(
        self,
        cur: Any,
        instance_id: str,
        machine: str,
        exited: list[str],
        entered: list[str],
        entered_seq: int,
    ) -> None:
        """Keep `sm_chart_states` in step: delete the states exited, insert those entered."""
        if exited:
            cur.executemany(self.sql["delete_chart_state"], [{"id": instance_id, "state": s} for s in exited])
        if entered:
            cur.executemany(
                self.sql["insert_chart_state"],
                [{"id": instance_id, "state": s, "machine": machine, "entered_seq": entered_seq}
                 for s in entered],
            )  # fmt: skip
