"""Two processes registering two versions of one machine at once (a rolling deploy): the one
registered last is the latest, on both databases."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from statemachines import Engine, ManualClock, machine, state

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LIGHT_V1 = machine("light", initial="off", states={"off": state(on={"ON": "on"}), "on": state()})
LIGHT_V2 = machine("light", initial="off", states={"off": state(on={"ON": "on", "X": "off"}), "on": state()})


def wait_until_blocked_on(db_url: str, holder_pid: int | None) -> None:
    """PostgreSQL: until some backend waits for a lock `holder_pid` holds (watched from a
    connection of its own: this thread has a transaction open on the database). SQLite cannot
    show a writer waiting for BEGIN IMMEDIATE, and serialises the two registrations wholly."""
    if holder_pid is None:
        time.sleep(0.2)
        return
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sql = "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
            if conn.execute(sql, (holder_pid,)).fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the second registration did not wait for the first")


def test_of_two_concurrent_registrations_the_later_one_is_the_latest(db_url: str) -> None:
    first, second = (Engine(db_url, clock=ManualClock(T0)) for _ in range(2))
    try:
        with ThreadPoolExecutor(1) as pool:
            with first.db.transaction() as cur:  # the first registration, not yet committed
                first.store.save_definition(cur, "light", LIGHT_V1.version, LIGHT_V1.to_json(), T0)
                pid = cur.connection.info.backend_pid if first.db.dialect == "postgresql" else None
                registering = pool.submit(second.register, LIGHT_V2)
                wait_until_blocked_on(db_url, pid)
            registering.result(timeout=30)
        assert first.stored_spec("light") == first.stored_spec("light", LIGHT_V2.version)
        assert first.stored_spec("light") != first.stored_spec("light", LIGHT_V1.version)
    finally:
        first.close()
        second.close()
