"""The `armed` flag lets a flat transition skip the disarm statement when the state entry it
leaves armed nothing. Everything that arms rows outside a transition must keep the flag honest,
or the rows would outlive their state (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from statemachines import Effect, Engine, ManualClock, machine, state


def doc(version: str, review: str, *, timer: bool) -> Any:
    """v1: `review` arms nothing; v2: renamed, with a timer."""
    expiry = {"after": {"1h": "expired"}} if timer else {}
    on = {"BACK": "draft", "APPROVE": "approved", "EXPIRE": "expired"}
    return machine(
        "doc",
        initial="draft",
        version=version,
        states={
            "draft": state(on={"SUBMIT": review}),
            review: state(on=on, **expiry),
            "approved": state(final=True),
            "expired": state(final=True),
        },
    )


def test_a_timer_armed_by_a_migration_is_dropped_when_its_state_is_left(
    db_url: str, clock: ManualClock
) -> None:
    engine = Engine(db_url, clock=clock)
    try:
        engine.register(doc("1", "review", timer=False))
        engine.start("doc", instance_id="d1")
        engine.send("d1", "SUBMIT")  # `review` of v1 arms nothing: the flag says so
        engine.register(doc("2", "in_review", timer=True))
        engine.migrate(["d1"], state_map={"review": "in_review"})
        assert len(engine.status("d1").timers) == 1  # the new state's timer, armed by the migration
        engine.send("d1", "BACK")
        with engine.runtime.read() as cur:  # the row itself, not only what status() shows
            cur.execute("SELECT count(*) FROM sm_timers WHERE instance_id = 'd1'")
            assert cur.fetchone()[0] == 0
        clock.advance("2h")
        engine.run_due()
        assert engine.get("d1").state == "draft"
    finally:
        engine.close()


def book(ctx: Any, call: Any) -> str:
    return "booked"


def unbook(ctx: Any, call: Any) -> None:
    return None


def live_effects(engine: Engine, iid: str) -> int:
    with engine.runtime.read() as cur:
        cur.execute(
            engine.db.sql(
                "SELECT count(*) FROM sm_effects WHERE instance_id = :id"
                " AND status IN ('pending', 'running', 'waiting')"
            ),
            {"id": iid},
        )
        return int(cur.fetchone()[0])


SAGA = machine(
    "saga",
    initial="booking",
    states={
        "booking": state(effect=Effect(book, compensate=unbook), on={"done.book": "booked"}),
        "booked": state(on={"UNDO": "compensating"}),
        "compensating": state(compensate=True, on={"done.compensation": "undone", "ABORT": "given_up"}),
        "undone": state(final=True),
        "given_up": state(final=True),
    },
)


def test_compensations_armed_on_entering_a_compensating_state_are_cancelled_when_it_is_left(
    db_url: str, clock: ManualClock
) -> None:
    engine = Engine(db_url, clock=clock)
    try:
        engine.register(SAGA)
        engine.start("saga", instance_id="s1")
        engine.run_due()
        engine.send("s1", "UNDO")
        assert live_effects(engine, "s1") == 1  # the compensation of `book`
        engine.send("s1", "ABORT")
        assert live_effects(engine, "s1") == 0
    finally:
        engine.close()
