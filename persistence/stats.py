"""Aggregate reads for dashboards and the web API: instances per state, stored versions.

Not on any hot path: a GROUP BY over one machine's instances (the `ix_sm_instances_machine`
index narrows it), run when a person or a monitor asks.
"""

from __future__ import annotations

from typing import Any

from persistence.database import Database


def state_counts(db: Database, cur: Any, machine: str) -> dict[str, dict[str, int]]:
    """{state: {status: count}} for one machine. A statechart instance counts in each state
    that is active in it at any depth (its compound and parallel states included), so a state
    drawn on a diagram can show how many instances are inside it."""
    counts: dict[str, dict[str, int]] = {}
    cur.execute(
        db.sql(
            "SELECT state, status, count(*) FROM sm_instances WHERE machine = :m AND chart IS NULL"
            " GROUP BY state, status"
        ),
        {"m": machine},
    )
    for state, status, n in cur.fetchall():
        counts.setdefault(state, {})[status] = int(n)
    cur.execute(
        db.sql(
            "SELECT c.state, i.status, count(*) FROM sm_chart_states c"
            " JOIN sm_instances i ON i.id = c.instance_id"
            " WHERE c.machine = :m GROUP BY c.state, i.status"
        ),
        {"m": machine},
    )
    for state, status, n in cur.fetchall():
        counts.setdefault(state, {})[status] = int(n)
    return counts


def definition_versions(db: Database, cur: Any, machine: str) -> list[str]:
    """The stored versions of a definition, the latest registered first."""
    cur.execute(
        db.sql("SELECT version FROM sm_definitions WHERE name = :m ORDER BY revision DESC"), {"m": machine}
    )
    return [row[0] for row in cur.fetchall()]
