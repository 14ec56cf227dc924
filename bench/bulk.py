"""Bulk-load synthetic instances and history straight into the engine's tables (for `bench.scale`).

Sending millions of events through `Engine.send` would take hours; the scale benchmark needs the
*rows*, not the path that wrote them. So the engine creates its schema (migrations) and
registers the machine, then this module writes `sm_instances` and `sm_history` rows with
`executemany` (SQLite) or `COPY` (PostgreSQL), with every index in place, in key order.

The data follows the order lifecycle of `bench.workload`: instance ``i`` is in the state
``STATE_MIX[i % 20]`` (60% completed, 20% processing, 10% backorder, 5% pending, 5% shipped),
with ``per_instance`` history records (start, payment, then back-orders and restocks; the last
record enters the instance's state), plus one instance, ``HOT_ID``, with ``hot_records``.
Timestamps grow with insertion order, as they do in production.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import workload

STATE_MIX = ("completed",) * 12 + ("processing",) * 4 + ("backorder",) * 2 + ("pending", "shipped")
HOT_ID = "hot-history"
_LAST_EVENT = {
    "completed": workload.DELIVERED,
    "processing": workload.RESTOCKED,
    "backorder": workload.OUT_OF_STOCK,
    "pending": "NOTE",
    "shipped": workload.SHIPPED,
}
INSTANCE_COLS = (
    "id, machine, definition_version, state, context, status, version, entered_seq, last_seq,"
    " created_at, updated_at"
)
HISTORY_COLS = (
    "instance_id, seq, machine, event, source, target, payload, context, actor, at, outcome, reason"
)
STEP = timedelta(milliseconds=100)


@dataclass(frozen=True)
class Plan:
    instances: int
    per_instance: int
    hot_records: int = 1000

    @property
    def history_rows(self) -> int:
        return self.instances * self.per_instance + self.hot_records


def instance_id(i: int) -> str:
    return f"o{i:08d}"


def state_of(i: int) -> str:
    return STATE_MIX[i % len(STATE_MIX)]


def _steps(n: int, final: str) -> Iterator[tuple[str, str | None, str]]:
    """(event, source, target) of `n` records ending in `final`."""
    source: str | None = None
    for seq in range(1, n + 1):
        if seq == 1:
            event, target = "start", "pending"
        elif seq == 2:
            event, target = workload.PAY, "processing"
        elif source == "processing":
            event, target = workload.OUT_OF_STOCK, "backorder"
        else:
            event, target = workload.RESTOCKED, "processing"
        if seq == n and seq > 1:
            event, target = _LAST_EVENT[final], final
        yield event, source, target
        source = target


def _specs(plan: Plan) -> Iterator[tuple[str, str, int, int]]:
    """(instance id, final state, number of records, first tick): the hot instance first."""
    yield HOT_ID, "processing", plan.hot_records, 0
    for i in range(plan.instances):
        yield instance_id(i), state_of(i), plan.per_instance, plan.hot_records + i * plan.per_instance


def _context(iid: str) -> str:
    return f'{{"order_id":"{iid}","total":42.0,"paid":42.0}}'


def instance_rows(plan: Plan, t0: datetime, dv: str) -> Iterator[tuple[Any, ...]]:
    for iid, final, n, tick in _specs(plan):
        status = "completed" if final in workload.FINAL else "active"
        created, updated = t0 + tick * STEP, t0 + (tick + n - 1) * STEP
        yield (iid, workload.MACHINE, dv, final, _context(iid), status, n, n, n, created, updated)


def history_rows(plan: Plan, t0: datetime) -> Iterator[tuple[Any, ...]]:
    for iid, final, n, tick in _specs(plan):
        context = _context(iid)
        for seq, (event, source, target) in enumerate(_steps(n, final), start=1):
            payload = '{"amount":42.0}' if event == workload.PAY else "{}"
            at = t0 + (tick + seq - 1) * STEP
            yield (
                iid, seq, workload.MACHINE, event, source, target, payload, context, None, at, "applied", None
            )  # fmt: skip


def start_time(plan: Plan) -> datetime:
    """Early enough that every synthetic timestamp is in the past."""
    return datetime.now(UTC) - STEP * (plan.history_rows + 1000)


# SQLite ----------------------------------------------------------------------------------------
def load_sqlite(path: str, plan: Plan, definition_version: str) -> None:
    """Append the plan's rows to an engine database file that no process has open."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-400000")
        ins_i = f"INSERT INTO sm_instances ({INSTANCE_COLS}) VALUES ({', '.join('?' * 11)})"
        ins_h = f"INSERT INTO sm_history ({HISTORY_COLS}) VALUES ({', '.join('?' * 12)})"
        conn.execute("BEGIN")
        t0 = start_time(plan)
        conn.executemany(ins_i, (_sqlite_ts(r, (9, 10)) for r in instance_rows(plan, t0, definition_version)))
        conn.executemany(ins_h, (_sqlite_ts(r, (9,)) for r in history_rows(plan, t0)))
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")  # no ANALYZE: the engine never runs it either
    finally:
        conn.close()


def _sqlite_ts(row: tuple[Any, ...], ts_cols: tuple[int, ...]) -> tuple[Any, ...]:
    out = list(row)
    for c in ts_cols:
        out[c] = out[c].strftime("%Y-%m-%d %H:%M:%S.%f")
    return tuple(out)


# PostgreSQL ------------------------------------------------------------------------------------
def load_postgres(pg_url: str, schema: str, plan: Plan, definition_version: str) -> None:
    """COPY the plan's rows into `schema` (text format, one buffer per chunk).

    The tables (still empty) are truncated in the same transaction so that `COPY ... FREEZE`
    writes the rows frozen and all-visible: otherwise autovacuum would start on 10M fresh rows
    in the middle of the measurement. Then ANALYZE, as autovacuum would.
    """
    import psycopg

    with psycopg.connect(pg_url, options=f"-c search_path={schema}") as conn:
        conn.execute("SET synchronous_commit = off")
        t0 = start_time(plan)
        with conn.cursor() as cur:
            cur.execute("TRUNCATE sm_instances, sm_history")
            for table, cols, rows in (
                ("sm_instances", INSTANCE_COLS, instance_rows(plan, t0, definition_version)),
                ("sm_history", HISTORY_COLS, history_rows(plan, t0)),
            ):
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FREEZE)") as copy:
                    chunk: list[str] = []
                    for row in rows:
                        chunk.append(_pg_line(row))
                        if len(chunk) >= 20_000:
                            copy.write("".join(chunk))
                            chunk.clear()
                    copy.write("".join(chunk))
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE sm_instances")
        conn.execute("ANALYZE sm_history")


def _pg_line(row: tuple[Any, ...]) -> str:
    cells = []
    for v in row:
        if v is None:
            cells.append("\\N")
        elif isinstance(v, datetime):
            cells.append(v.isoformat())
        else:
            cells.append(str(v))
    return "\t".join(cells) + "\n"
