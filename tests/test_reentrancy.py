"""Calling the engine from inside an action or a guard is refused before anything is written.

An action runs inside its event's transaction: a nested engine call would end that transaction
(SQLite), commit in the middle of it (PostgreSQL), or wait for its own row lock forever. The
nested call raises `ReentrantCall`; the outer event fails as a whole (`ActionFailed`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import statemachines
from persistence import Database
from persistence.errors import ReentrantTransaction
from statemachines import (
    ActionFailed,
    Effect,
    Engine,
    ManualClock,
    ReentrantCall,
    Retry,
    StateMachineError,
    machine,
    state,
    transition,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SECRET = "s3cret-for-the-reentrancy-tests"
#: What the action under test does with the engine; set by each test.
NESTED: dict[str, Callable[[], Any]] = {}


def call_engine(ctx: dict, event: Any) -> None:
    ctx["before"] = True
    NESTED["call"]()


def guard_calling_engine(ctx: dict, event: Any) -> bool:
    NESTED["call"]()
    return True


def swallow(ctx: dict, event: Any) -> None:
    try:
        NESTED["call"]()
    except ReentrantCall as exc:
        ctx["refused"] = type(exc).__name__


def send_from_effect(ctx: dict, call: Any) -> dict:
    NESTED["effect_engine"]().send("other", "BUMP")
    return {}


def fail_always(ctx: dict, call: Any) -> None:
    raise RuntimeError("down")


def bump(ctx: dict, event: Any) -> None:
    ctx["n"] = ctx.get("n", 0) + 1


NESTING = machine(
    "nesting",
    initial="idle",
    states={
        "idle": state(
            on={
                "CALL": transition("called", action=call_engine),
                "GUARDED": transition("called", guard=guard_calling_engine),
                "SWALLOW": transition(None, action=swallow),
                "BUMP": transition(None, action=bump),
                "FAIL": "failing",
                "EFFECT": "effecting",
            },
            after={"1h": transition(None, action=call_engine)},
        ),
        "called": state(on={"BUMP": transition(None, action=bump)}),
        "failing": state(effect=Effect(fail_always, retry=Retry(max_attempts=1)), on={"BACK": "idle"}),
        "effecting": state(effect=Effect(send_from_effect), on={"done.send_from_effect": "idle"}),
    },
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    eng = Engine(db_url, clock=clock, secret=SECRET)
    eng.register(NESTING)
    eng.start("nesting", instance_id="outer")
    eng.start("nesting", instance_id="other")
    NESTED.clear()
    yield eng
    eng.close()


def everything(engine: Engine) -> Any:
    """Both instances and their histories, and the list of all instances."""
    return (
        [engine.get(i) for i in ("outer", "other")],
        [engine.history(i) for i in ("outer", "other")],
        engine.instances(),
    )


def failed_other(engine: Engine) -> Engine:
    engine.send("other", "FAIL")
    engine.run_due()
    assert engine.get("other").status == "failed"
    return engine


NESTED_CALLS: dict[str, Callable[[Engine], Callable[[], Any]]] = {
    "send to itself": lambda e: lambda: e.send("outer", "BUMP"),
    "send to another instance": lambda e: lambda: e.send("other", "BUMP"),
    "send with a key": lambda e: lambda: e.send("other", "BUMP", idempotency_key="k"),
    "start": lambda e: lambda: e.start("nesting", instance_id="new"),
    "cancel": lambda e: lambda: e.cancel("other"),
    "retry": lambda e: (failed_other(e), lambda: e.retry("other"))[1],
    "token": lambda e: lambda: e.token("other", "BUMP"),
    "send_token": lambda e: (lambda t: lambda: e.send_token(t))(e.token("other", "BUMP")),
    "run_due": lambda e: lambda: e.run_due(),
    "get": lambda e: lambda: e.get("other"),
    "history": lambda e: lambda: e.history("other"),
    "instances": lambda e: lambda: e.instances(),
    "status": lambda e: lambda: e.status("other"),
    "register": lambda e: lambda: e.register(NESTING),
}


def test_reentrant_call_is_exported_and_typed() -> None:
    assert statemachines.ReentrantCall is ReentrantCall
    assert issubclass(ReentrantCall, StateMachineError)


@pytest.mark.parametrize("nested", sorted(NESTED_CALLS))
def test_an_engine_call_from_an_action_fails_the_event_writing_nothing(engine: Engine, nested: str) -> None:
    NESTED["call"] = NESTED_CALLS[nested](engine)
    before = everything(engine)
    with pytest.raises(ActionFailed) as err:
        engine.send("outer", "CALL")
    assert isinstance(err.value.__cause__, ReentrantCall)
    assert "inside an action or a guard" in str(err.value.__cause__)
    assert everything(engine) == before


def test_an_engine_call_from_a_guard_fails_the_event_and_writes_nothing(engine: Engine) -> None:
    NESTED["call"] = lambda: engine.send("other", "BUMP")
    before = everything(engine)
    with pytest.raises(ActionFailed) as err:
        engine.send("outer", "GUARDED")
    assert isinstance(err.value.__cause__, ReentrantCall)
    assert everything(engine) == before


def test_a_second_engine_on_the_same_database_is_refused_too(engine: Engine, db_url: str) -> None:
    second = Engine(db_url, clock=ManualClock(T0))
    second.register(NESTING)
    try:
        NESTED["call"] = lambda: second.send("other", "BUMP")
        before = everything(engine)
        with pytest.raises(ActionFailed) as err:
            engine.send("outer", "CALL")
        assert isinstance(err.value.__cause__, ReentrantCall)
        assert everything(engine) == before
    finally:
        second.close()


def test_the_engine_works_normally_after_a_refused_nested_call(engine: Engine) -> None:
    NESTED["call"] = lambda: engine.send("other", "BUMP")
    with pytest.raises(ActionFailed):
        engine.send("outer", "CALL")
    assert engine.send("outer", "BUMP").context == {"n": 1}
    assert engine.send("other", "BUMP").context == {"n": 1}
    assert [r.event for r in engine.history("outer")] == ["start", "BUMP"]


def test_an_action_that_swallows_the_refusal_commits_only_its_own_event(engine: Engine) -> None:
    NESTED["call"] = lambda: engine.send("other", "BUMP")
    snap = engine.send("outer", "SWALLOW")
    assert snap.context == {"refused": "ReentrantCall"}
    assert engine.get("other").version == 1
    assert [r.event for r in engine.history("other")] == ["start"]


def test_a_timer_whose_action_calls_the_engine_fails_the_instance(engine: Engine, clock: ManualClock) -> None:
    NESTED["call"] = lambda: engine.send("other", "BUMP")
    engine.cancel("other")
    clock.advance("1h")
    engine.run_due()
    snap = engine.get("outer")
    assert (snap.status, snap.state, snap.context) == ("failed", "idle", {})
    assert "ReentrantCall" in (engine.history("outer")[-1].reason or "")


def test_an_effect_may_call_the_engine_it_runs_outside_any_transaction(engine: Engine) -> None:
    NESTED["effect_engine"] = lambda: engine
    engine.send("outer", "EFFECT")
    engine.run_due()
    assert engine.get("outer").state == "idle"
    assert engine.get("other").context == {"n": 1}


# the rule at the storage layer -----------------------------------------------------------------


def test_storage_refuses_any_transaction_inside_a_write_transaction(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.transaction():
            with pytest.raises(ReentrantTransaction), db.read():
                pass
            with pytest.raises(ReentrantTransaction), db.transaction():
                pass
    finally:
        db.close()


def test_storage_refuses_a_write_inside_a_read_but_allows_a_read(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.read():
            with db.read() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone()[0] == 1
            with pytest.raises(ReentrantTransaction), db.transaction():
                pass
        with db.transaction() as cur:  # all closed again
            cur.execute("SELECT 1")
    finally:
        db.close()
