"""Every SQL statement the engine runs, written once and converted once per dialect.

Methods take an open cursor so the caller decides the transaction; nothing here knows what a
state machine is: ids, names, JSON text and timestamps go in and come out.
"""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from typing import Any

from persistence.database import Database
from persistence.history_context import CONTEXT_AT, first_whole_seq, is_whole, recorded, resolve

# Written by a flat instance's insert; `chart` (statecharts only) is read with them.
_FLAT_COLUMNS = (
    "id, machine, definition_version, state, context, status, version, entered_seq,"
    " created_at, updated_at, last_seq"
)
INSTANCE_COLUMNS = f"{_FLAT_COLUMNS}, chart"  # `chart`: statecharts, see persistence.chart_store
#: The statuses of a closed instance (the engine's, statemachines.records): an unfiltered page
#: merges one index range per status.
CLOSED_STATUSES = ("completed", "cancelled", "failed")
_KNOWN = sorted(("active", *CLOSED_STATUSES))
#: Any status not in the known set, as index ranges between the known values (each a range of
#: `ix_sm_instances_closed`, normally empty), not as a scan of every closed row.
_OTHERS = (
    [f"status < '{_KNOWN[0]}'"]
    + [f"status > '{a}' AND status < '{b}'" for a, b in pairwise(_KNOWN)]
    + [f"status > '{_KNOWN[-1]}'"]
)
HISTORY_COLUMNS = "seq, event, source, target, payload, context, actor, at, outcome, reason"

# The instance row locked for update, plus the receipt recorded for `:key` (result, fingerprint).
# Used as is on SQLite only, where BEGIN IMMEDIATE has taken the write lock before this statement
# starts, so its receipt subqueries see every committed receipt. On PostgreSQL (READ COMMITTED) a
# statement that waits for the row lock re-reads the locked row once granted, but evaluates its
# subqueries on the snapshot taken before it waited: a receipt committed meanwhile by the very
# send it waited for would be missed. There the receipt is read by a statement of its own, after
# the lock (see `Store.lock_instance`).
_RECEIPT = "(SELECT r.{column} FROM sm_receipts r WHERE r.instance_id = i.id AND r.key = :key)"
_LOCK = (
    f"SELECT {INSTANCE_COLUMNS}, {_RECEIPT.format(column='result')},"
    f" {_RECEIPT.format(column='fingerprint')}, i.armed FROM sm_instances i WHERE i.id = :id"
)
_LOCK_NO_KEY = f"SELECT {INSTANCE_COLUMNS}, NULL, NULL, i.armed FROM sm_instances i WHERE i.id = :id"

# An indexed column named in SET rewrites its index entries even when the value is the same, so
# `update_instance` names `state` and `status` only when they change (four variants, built once).
UPDATE_INSTANCE = (
    "UPDATE sm_instances SET {changed}context = :context, version = :version,"
    " entered_seq = :entered_seq, last_seq = :seq, definition_version = :dv, updated_at = :now"
    " WHERE id = :id"
)

_SQL = {
    "insert_definition": "INSERT INTO sm_definitions (name, version, spec, revision, created_at)"
    " VALUES (:name, :version, :spec,"
    " (SELECT coalesce(max(revision), 0) + 1 FROM sm_definitions WHERE name = :same_name), :now)"
    " ON CONFLICT (name, version) DO UPDATE SET revision = excluded.revision"
    # Already the latest (excluded.revision is max + 1): nothing to write, so a process that
    # starts and registers what is current changes nothing.
    " WHERE sm_definitions.revision < excluded.revision - 1",
    # Two-key form: a lock space of its own, apart from the migrations' one-key advisory lock.
    "lock_definitions": f"SELECT pg_advisory_xact_lock({0x5354_4D44}, hashtext(:name))",
    "get_definition": "SELECT spec FROM sm_definitions WHERE name = :name AND version = :version",
    "latest_definition": "SELECT spec FROM sm_definitions WHERE name = :name ORDER BY revision DESC LIMIT 1",
    "insert_instance": f"INSERT INTO sm_instances ({_FLAT_COLUMNS}, armed) VALUES (:id, :machine,"
    " :dv, :state, :context, :status, 1, 1, :now, :now, 1, :armed)",
    "bump_seq": "UPDATE sm_instances SET last_seq = :seq WHERE id = :id",
    "set_status": "UPDATE sm_instances SET status = :status, last_seq = :seq, updated_at = :now"
    " WHERE id = :id",
    "get_instance": f"SELECT {INSTANCE_COLUMNS} FROM sm_instances WHERE id = :id",
    "insert_history": f"INSERT INTO sm_history (instance_id, machine, {HISTORY_COLUMNS})"
    " VALUES (:id, :machine, :seq, :event, :source, :target, :payload, :context, :actor, :now,"
    " :outcome, :reason)",
    "history": f"SELECT {HISTORY_COLUMNS}, configuration FROM sm_history WHERE instance_id = :id"
    " ORDER BY seq",
    # One page of the history (keyset: the records after a seq), for the web API.
    "history_page": f"SELECT {HISTORY_COLUMNS}, configuration FROM sm_history WHERE instance_id = :id"
    " AND seq > :after ORDER BY seq LIMIT :limit",
    # The stored contexts from :first to :seq, to resolve the context as of :seq for a page whose
    # first row does not store it whole (persistence.history_context).
    "contexts": "SELECT context FROM sm_history WHERE instance_id = :id AND seq >= :first"
    " AND seq <= :seq ORDER BY seq",
    "insert_receipt": "INSERT INTO sm_receipts (instance_id, key, seq, result, created_at, fingerprint)"
    " VALUES (:id, :key, :seq, :result, :now, :fingerprint)",
    "receipt": "SELECT result, fingerprint FROM sm_receipts WHERE instance_id = :id AND key = :key",
}


def update_statements(db: Database, changed: str = "") -> dict[tuple[bool, bool], str]:
    """The four `UPDATE_INSTANCE` variants keyed by (state changes, status changes), each naming
    `changed` (e.g. `"chart = :chart, "`) and only the indexed columns that change."""
    return {
        (new_state, new_status): db.sql(
            UPDATE_INSTANCE.format(
                changed=changed
                + ("state = :state, " if new_state else "")
                + ("status = :status, " if new_status else "")
            )
        )
        for new_state in (False, True)
        for new_status in (False, True)
    }


def history_params(
    db: Database,
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
) -> dict[str, Any]:
    """The parameters of a history insert (`HISTORY_COLUMNS`), flat or chart alike."""
    return {
        "id": instance_id,
        "machine": machine,
        "seq": seq,
        "event": event,
        "source": source,
        "target": target,
        "payload": payload,
        "context": context,
        "actor": actor,
        "now": db.ts(now),
        "outcome": outcome,
        "reason": reason,
    }


class Store:
    """The engine's statements for one database, prepared as text at construction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        pg = db.dialect == "postgresql"
        self.sql = {name: db.sql(text) for name, text in _SQL.items()}
        # Flat instances record whether the state entry armed anything (`armed`), so that
        # leaving a state that armed nothing skips the disarm statement.
        self._updates = update_statements(db, "armed = :armed, ")
        self.sql["lock"] = db.sql(_LOCK)
        # Without a key there is no receipt to look for: a cheaper statement, same columns.
        self.sql["lock_no_key"] = db.sql(_LOCK_NO_KEY + (" FOR UPDATE" if pg else ""))
        self._receipt_after_lock = pg
        self._list_cache: dict[tuple[bool, bool, bool, bool, bool], str] = {}

    # definitions -----------------------------------------------------------------------------
    def save_definition(self, cur: Any, name: str, version: str, spec: str, now: datetime) -> None:
        """Store a definition version as the latest of its machine (revision = max + 1).

        PostgreSQL: the insert computes max + 1 on its statement's snapshot, so two processes
        registering two versions at once (a rolling deploy) would both get the same revision and
        "the latest" would be either. A transaction-scoped advisory lock on the machine name
        makes the second insert start after the first commits, so it sees the first's row.
        (SQLite: BEGIN IMMEDIATE already serialises writers.)"""
        if self.db.dialect == "postgresql":
            cur.execute(self.sql["lock_definitions"], {"name": name})
        cur.execute(
            self.sql["insert_definition"],
            {"name": name, "same_name": name, "version": version, "spec": spec, "now": self.db.ts(now)},
        )

    def definition_spec(self, cur: Any, name: str, version: str | None = None) -> str | None:
        if version is None:
            cur.execute(self.sql["latest_definition"], {"name": name})
        else:
            cur.execute(self.sql["get_definition"], {"name": name, "version": version})
        row = cur.fetchone()
        return row[0] if row else None

    # instances -------------------------------------------------------------------------------
    def lock_instance(self, cur: Any, instance_id: str, key: str | None) -> tuple[Any, ...] | None:
        """The instance row locked for update, then the receipt recorded for `key` (its result
        and fingerprint, or None, None): the receipt is read after the lock is granted, so a send
        that waited for a concurrent one with the same key finds that one's receipt."""
        if key is None:
            cur.execute(self.sql["lock_no_key"], {"id": instance_id})
            return cur.fetchone()
        if not self._receipt_after_lock:
            cur.execute(self.sql["lock"], {"id": instance_id, "key": key})
            return cur.fetchone()
        # PostgreSQL: a statement of its own, so a snapshot taken after the lock was granted.
        # Paid only by sends with a key.
        cur.execute(self.sql["lock_no_key"], {"id": instance_id})
        row = cur.fetchone()
        if row is None:
            return None
        cur.execute(self.sql["receipt"], {"id": instance_id, "key": key})
        receipt = cur.fetchone()
        return row if receipt is None else (*row[:-3], *receipt, row[-1])

    def get_instance(self, cur: Any, instance_id: str) -> tuple[Any, ...] | None:
        cur.execute(self.sql["get_instance"], {"id": instance_id})
        return cur.fetchone()

    def insert_instance(
        self,
        cur: Any,
        instance_id: str,
        machine: str,
        dv: str,
        state: str,
        context: str,
        status: str,
        now: datetime,
        armed: bool = True,
    ) -> None:
        """A new flat instance; `armed`: its initial state entry armed timers or effects."""
        cur.execute(
            self.sql["insert_instance"],
            {
                "id": instance_id,
                "machine": machine,
                "dv": dv,
                "state": state,
                "context": context,
                "status": status,
                "now": self.db.ts(now),
                "armed": int(armed),
            },
        )

    def update_instance(
        self,
        cur: Any,
        instance_id: str,
        dv: str,
        state: str | None,
        context: str,
        status: str | None,
        version: int,
        entered_seq: int,
        seq: int,
        now: datetime,
        armed: bool = True,
    ) -> None:
        """Write an applied event; `state`/`status` None mean unchanged; `armed`: the state entry
        the instance is in armed timer or effect rows."""
        cur.execute(
            self._updates[state is not None, status is not None],
            {
                "armed": int(armed),
                "id": instance_id,
                "dv": dv,
                "state": state,
                "context": context,
                "status": status,
                "version": version,
                "entered_seq": entered_seq,
                "seq": seq,
                "now": self.db.ts(now),
            },
        )

    def bump_seq(self, cur: Any, instance_id: str, seq: int) -> None:
        """Take a history seq without touching the instance (a rejected event)."""
        cur.execute(self.sql["bump_seq"], {"id": instance_id, "seq": seq})

    def set_status(self, cur: Any, instance_id: str, status: str, seq: int, now: datetime) -> None:
        cur.execute(
            self.sql["set_status"],
            {"id": instance_id, "status": status, "seq": seq, "now": self.db.ts(now)},
        )

    def list_instances(
        self,
        cur: Any,
        machine: str | None,
        state: str | None,
        status: str | None,
        limit: int,
        offset: int,
        charts: bool = True,
        after: tuple[Any, str] | None = None,
    ) -> list[tuple[Any, ...]]:
        """A page of instances in (created_at, id) order. With `state` and `charts`, an instance
        matches when that state is active at any depth: a flat row whose state it is, or a chart
        instance with it among its active states (`sm_chart_states`, indexed by state). `charts`
        False (a machine known to be flat) keeps the single-index query. `after` (a stored
        created_at and an id) starts the page after that row: keyset paging, an index range."""
        cur.execute(
            self.list_statement(machine, state, status, charts, after is not None),
            {
                "machine": machine,
                "state": state,
                "status": status,
                "limit": limit,
                "offset": offset,
                "after_at": after[0] if after else None,
                "after_id": after[1] if after else None,
            },
        )
        return cur.fetchall()

    def list_statement(
        self, machine: str | None, state: str | None, status: str | None, charts: bool, keyset: bool = False
    ) -> str:
        """The statement `list_instances` runs for this filter (built once per shape)."""
        live = status == "active"
        shape = (machine is not None, state is not None, status is not None, charts and state is not None)
        shape += (live, keyset)
        sql = self._list_cache.get(shape)
        if sql is None:
            # Literal predicates of the partial indexes (persistence.tables), so both planners
            # can use them whatever the parameter's value.
            by_status = "status = 'active'" if live else "status = :status AND status <> 'active'"
            conditions = ("machine = :machine", "state = :state", by_status)
            if shape[3]:  # state matched at any depth: the state condition becomes an id set
                in_machine = " AND machine = :machine" if machine is not None else ""
                conditions = (
                    conditions[0],
                    "id IN (SELECT id FROM sm_instances WHERE state = :state AND chart IS NULL"
                    f"{in_machine} UNION ALL SELECT instance_id FROM sm_chart_states"
                    f" WHERE state = :state{in_machine})",
                    conditions[2],
                )
            where = [c for c, on in zip(conditions, shape[:3], strict=True) if on]
            after = " AND (created_at, id) > (:after_at, :after_id)" if keyset else ""
            text = f"SELECT {INSTANCE_COLUMNS} FROM sm_instances"
            if where:
                text += " WHERE " + " AND ".join(where) + after
            else:
                # Every instance: one ordered index range per status (the live one, then each
                # closed status of `ix_sm_instances_closed`), merged; any other status sorted.
                # A keyset page starts each range after the cursor.
                closed = [f"status = '{s}'" for s in CLOSED_STATUSES] + _OTHERS
                arms = [f"{text} WHERE {c} AND status <> 'active'{after}" for c in closed]
                text = " UNION ALL ".join([f"{text} WHERE status = 'active'{after}", *arms])
            text += " ORDER BY created_at, id LIMIT :limit OFFSET :offset"
            sql = self._list_cache[shape] = self.db.sql(text)
        return sql

    # history and receipts --------------------------------------------------------------------
    def insert_history(
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
        reason: str | None = None,
        previous: str | None = None,
    ) -> None:
        """One history row; `context` is the context after the event and `previous` the one
        before it, when the caller knows it: the row then stores only what changed
        (persistence.history_context)."""
        cur.execute(
            self.sql["insert_history"],
            history_params(
                self.db, instance_id, machine, seq, event, source, target, payload,
                recorded(context, previous, seq), actor, now, outcome, reason,
            ),
        )  # fmt: skip

    def history(self, cur: Any, instance_id: str) -> list[tuple[Any, ...]]:
        """Every history row of the instance in seq order, each with its full context."""
        cur.execute(self.sql["history"], {"id": instance_id})
        return resolve(cur.fetchall())

    def history_page(self, cur: Any, instance_id: str, after: int, limit: int) -> list[tuple[Any, ...]]:
        """Up to `limit` history rows with seq > `after`, in seq order, with full contexts."""
        cur.execute(self.sql["history_page"], {"id": instance_id, "after": after, "limit": limit})
        rows = cur.fetchall()
        if not rows or is_whole(rows[0][CONTEXT_AT]):
            return resolve(rows)
        return resolve(rows, self._context_as_of(cur, instance_id, after))

    def _context_as_of(self, cur: Any, instance_id: str, seq: int) -> str | None:
        """The whole context as of history row `seq`, resolved from the last row at or before it
        that stores it whole (a multiple of `FULL_EVERY`; the first row if a gap left that out)."""
        for first in dict.fromkeys((first_whole_seq(seq), 1)):
            cur.execute(self.sql["contexts"], {"id": instance_id, "first": first, "seq": seq})
            stored = [(None,) * CONTEXT_AT + (r[0],) for r in cur.fetchall()]
            if stored and is_whole(stored[0][CONTEXT_AT]):
                return resolve(stored)[-1][CONTEXT_AT]
        return None

    def insert_receipt(
        self,
        cur: Any,
        instance_id: str,
        key: str,
        seq: int,
        result: str,
        now: datetime,
        fingerprint: str | None = None,
    ) -> None:
        cur.execute(
            self.sql["insert_receipt"],
            {"id": instance_id, "key": key, "seq": seq, "result": result, "now": self.db.ts(now),
             "fingerprint": fingerprint},
        )  # fmt: skip
