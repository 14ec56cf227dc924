"""Idempotency keys: a key names one request, and a known key returns its recorded result
whatever the timing (a duplicate that waited for the first send's row lock included)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

import statemachines
from persistence import migrations
from statemachines import (
    Engine,
    GuardRejected,
    IdempotencyKeyReused,
    InstanceClosed,
    ManualClock,
    StateMachineError,
    machine,
    state,
    transition,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Payment(BaseModel):
    amount: float


class Gate:
    """Holds the first send that passes through it inside its transaction (its action waits)
    until the test lets it go; later sends pass straight through."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self.holder_pid: int | None = None

    def pass_through(self, engine: Engine) -> None:
        if not self.armed:
            return
        self.armed = False
        if engine.db.dialect == "postgresql":  # the backend holding the instance's row lock
            self.holder_pid = engine.db.connection().info.backend_pid
        self.entered.set()
        assert self.release.wait(10), "the test never released the gate"


GATE = Gate()
ENGINES: dict[str, Engine] = {}


def held_close(ctx: dict, event: Any) -> None:
    GATE.pass_through(ENGINES["current"])


def held_step(ctx: dict, event: Any) -> None:
    GATE.pass_through(ENGINES["current"])


def explode(ctx: dict, event: Any) -> None:
    raise RuntimeError("GO is not valid a second time")


def enough(ctx: dict, event: Any) -> bool:
    return event.payload.amount >= 10


TICKET = machine(
    "ticket",
    initial="open",
    states={
        "open": state(
            on={
                "CLOSE": transition("closed", action=held_close),
                "GO": transition("second", action=held_step),
                "PAY": transition("open", guard=enough),
                "NOTE": transition(None),
            }
        ),
        # GO once more fails: a duplicate GO that missed the first one's receipt would raise.
        "second": state(on={"GO": transition("closed", action=explode)}),
        "closed": state(final=True),
    },
    events={"PAY": Payment},
)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = Engine(db_url, clock=ManualClock(T0))
    eng.register(TICKET)
    ENGINES["current"] = eng
    GATE.__init__()  # type: ignore[misc]
    yield eng
    GATE.release.set()
    eng.close()


def raw_query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run `sql` (with `?` placeholders) on a connection of its own."""
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.isolation_level = None
            return conn.execute(sql, params).fetchall()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql.replace("?", "%s"), params)
        return cur.fetchall() if cur.description else []


# a key names one request ----------------------------------------------------------------------


def test_idempotency_key_reused_is_exported_and_typed() -> None:
    assert statemachines.IdempotencyKeyReused is IdempotencyKeyReused
    assert issubclass(IdempotencyKeyReused, StateMachineError)


def test_a_key_sent_again_with_another_event_raises_naming_both_events(engine: Engine) -> None:
    engine.start("ticket", instance_id="T1")
    engine.send("T1", "NOTE", idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused) as err:
        engine.send("T1", "CLOSE", idempotency_key="k1")
    assert (err.value.first_event, err.value.event, err.value.key) == ("NOTE", "CLOSE", "k1")
    assert "'NOTE'" in str(err.value) and "'CLOSE'" in str(err.value)


def test_a_key_sent_again_with_another_payload_raises_saying_the_payload_differs(engine: Engine) -> None:
    engine.start("ticket", instance_id="T1")
    engine.send("T1", "PAY", {"amount": 10}, idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused, match="'PAY' with a different payload"):
        engine.send("T1", "PAY", {"amount": 11}, idempotency_key="k1")


def test_a_reused_key_writes_nothing(engine: Engine) -> None:
    engine.start("ticket", instance_id="T1")
    engine.send("T1", "NOTE", {"n": 1}, idempotency_key="k1")
    before = (engine.get("T1"), engine.history("T1"))
    with pytest.raises(IdempotencyKeyReused):
        engine.send("T1", "NOTE", {"n": 2}, idempotency_key="k1")
    assert (engine.get("T1"), engine.history("T1")) == before


def test_a_key_whose_event_was_rejected_is_refused_with_another_payload(engine: Engine) -> None:
    engine.start("ticket", instance_id="T1")
    with pytest.raises(GuardRejected):
        engine.send("T1", "PAY", {"amount": 1}, idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused):
        engine.send("T1", "PAY", {"amount": 50}, idempotency_key="k1")
    with pytest.raises(GuardRejected):  # the same request still gets its recorded rejection
        engine.send("T1", "PAY", {"amount": 1}, idempotency_key="k1")


def test_the_same_payload_with_its_keys_in_another_order_is_the_same_request(engine: Engine) -> None:
    engine.start("ticket", instance_id="T1")
    first = engine.send("T1", "NOTE", {"a": 1, "b": [1, 2]}, idempotency_key="k1")
    assert engine.send("T1", "NOTE", {"b": [1, 2], "a": 1}, idempotency_key="k1") == first
    assert len(engine.history("T1")) == 2


def test_a_payload_given_as_a_model_or_as_a_dict_is_the_same_request(engine: Engine) -> None:
    engine.start("ticket", instance_id="T1")
    first = engine.send("T1", "PAY", Payment(amount=10), idempotency_key="k1")
    assert engine.send("T1", "PAY", {"amount": 10}, idempotency_key="k1") == first


def test_receipts_written_before_fingerprints_replay_after_the_upgrade(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.start("ticket", instance_id="T1")
    first = engine.send("T1", "NOTE", {"n": 1}, idempotency_key="old-key")
    engine.close()
    # The database as schema version 1 left it: receipts without a fingerprint column.
    raw_query(db_url, "ALTER TABLE sm_receipts DROP COLUMN fingerprint")
    raw_query(db_url, "UPDATE sm_schema SET version = 1")

    upgraded = Engine(db_url, clock=ManualClock(T0))
    try:
        upgraded.register(TICKET)
        assert raw_query(db_url, "SELECT version FROM sm_schema") == [(len(migrations.MIGRATIONS),)]
        assert raw_query(db_url, "SELECT key, fingerprint FROM sm_receipts") == [("old-key", None)]
        # Nothing to compare with: the old receipt replays as before, whatever is sent with it.
        assert upgraded.send("T1", "NOTE", {"n": 1}, idempotency_key="old-key") == first
        assert upgraded.send("T1", "NOTE", {"n": 2}, idempotency_key="old-key") == first
        # New receipts are bound to their request.
        upgraded.send("T1", "NOTE", {"n": 3}, idempotency_key="new-key")
        with pytest.raises(IdempotencyKeyReused):
            upgraded.send("T1", "NOTE", {"n": 4}, idempotency_key="new-key")
    finally:
        upgraded.close()


# a known key returns its recorded result whatever the timing -----------------------------------


def test_a_duplicate_sent_after_the_first_closed_the_instance_returns_the_recorded_result(
    engine: Engine,
) -> None:
    engine.start("ticket", instance_id="T1")
    first = engine.send("T1", "CLOSE", idempotency_key="k1")
    assert first.status == "completed"
    assert engine.send("T1", "CLOSE", idempotency_key="k1") == first
    with pytest.raises(InstanceClosed):  # without the key it is a new event
        engine.send("T1", "CLOSE")


def wait_until_blocked_on(engine: Engine, db_url: str) -> None:
    """PostgreSQL: until a backend waits for the lock the gate's holder has. SQLite has no way
    to observe a writer waiting for BEGIN IMMEDIATE; there the write lock serialises the two
    sends wholly (the duplicate's statements all run after the first commits), so the timing
    cannot matter and a short pause is enough to usually have it waiting."""
    if engine.db.dialect != "postgresql":
        time.sleep(0.2)
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = raw_query(
            db_url,
            "SELECT count(*) FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))",
            (GATE.holder_pid,),
        )
        if rows[0][0] >= 1:
            return
        time.sleep(0.01)
    raise AssertionError("the duplicate send never waited for the first one's row lock")


def send_duplicate_while_the_first_holds_the_lock(engine: Engine, db_url: str, event: str) -> tuple[Any, Any]:
    """Send `event` with key k1 twice: the first holds the row lock (in its action) until the
    second is waiting for it, then commits. Returns (first result, duplicate result or error)."""
    GATE.armed = True
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(engine.send, "T1", event, idempotency_key="k1")
        assert GATE.entered.wait(10), "the first send never reached its action"
        duplicate = pool.submit(engine.send, "T1", event, idempotency_key="k1")
        wait_until_blocked_on(engine, db_url)
        GATE.release.set()
        first_result = first.result(timeout=10)
        try:
            return first_result, duplicate.result(timeout=10)
        except StateMachineError as exc:
            return first_result, exc


def test_a_duplicate_that_waited_for_the_send_that_closed_the_instance_returns_its_result(
    engine: Engine, db_url: str
) -> None:
    engine.start("ticket", instance_id="T1")
    first, duplicate = send_duplicate_while_the_first_holds_the_lock(engine, db_url, "CLOSE")
    assert first.status == "completed"
    assert duplicate == first  # not InstanceClosed
    assert [r.event for r in engine.history("T1")] == ["start", "CLOSE"]


def test_a_duplicate_that_waited_for_the_first_returns_its_result_not_a_new_attempt(
    engine: Engine, db_url: str
) -> None:
    engine.start("ticket", instance_id="T1")
    first, duplicate = send_duplicate_while_the_first_holds_the_lock(engine, db_url, "GO")
    assert first.state == "second"
    assert duplicate == first  # not ActionFailed from GO's action in state `second`
    assert [r.event for r in engine.history("T1")] == ["start", "GO"]
