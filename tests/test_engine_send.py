"""`start`, `send` and `cancel`: one event, one transaction, against SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from statemachines import (
    ActionFailed,
    ContextInvalid,
    Engine,
    EventNotAllowed,
    GuardRejected,
    InstanceClosed,
    InstanceExists,
    InstanceNotFound,
    InvalidArgument,
    ManualClock,
    PayloadInvalid,
    StateMachineError,
    UnknownMachine,
    machine,
    state,
    transition,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Order(BaseModel):
    total: float
    paid: float = 0
    notes: list[str] = []
    log: list[str] = []


class Payment(BaseModel):
    amount: float


class Boom(RuntimeError):
    pass


def paid_enough(ctx: Order, event) -> bool:
    return event.payload.amount >= ctx.total


def record_payment(ctx: Order, event) -> None:
    ctx.paid = event.payload.amount
    ctx.log.append("action record_payment")


def add_note(ctx: Order, event) -> None:
    ctx.notes.append(event.payload["text"])
    ctx.log.append("action add_note")


def log_reset(ctx: Order, event) -> None:
    ctx.log.append("action reset")


def enter_pending(ctx: Order, event) -> None:
    ctx.log.append("enter pending")


def exit_pending(ctx: Order, event) -> None:
    ctx.log.append("exit pending")


def enter_paid(ctx: Order, event) -> None:
    ctx.log.append("enter paid")


def explode(ctx: Order, event) -> None:
    ctx.paid = 999  # a change that must never reach the database
    raise Boom("kaboom")


def exploding_guard(ctx: Order, event) -> bool:
    raise Boom("guard kaboom")


def break_context(ctx: Order, event) -> None:
    ctx.total = "a lot"  # type: ignore[assignment]


def is_big(ctx: Order, event) -> bool:
    return ctx.total >= 100


def has_a_total(ctx: Order, event) -> bool:
    return ctx.total > 0  # also true for every big order: the guards overlap, so order matters


ORDER = machine(
    "order",
    context=Order,
    events={"PAY": Payment},
    initial="pending",
    states={
        "pending": state(
            on_enter=enter_pending,
            on_exit=exit_pending,
            on={
                "PAY": transition("paid", guard=paid_enough, action=record_payment),
                "NOTE": transition(None, action=add_note),
                "RESET": transition("pending", action=log_reset),
                "CANCEL": "cancelled",
                "ROUTE": [transition("big", guard=is_big), transition("small", guard=has_a_total)],
            },
            after={"1h": "cancelled"},
        ),
        "paid": state(
            on_enter=enter_paid,
            on={
                "SHIP": "shipped",
                "FAIL_ENTER": "broken",
                "BOOM": transition(None, action=explode),
                "GUARD_BOOM": transition("shipped", guard=exploding_guard),
                "BREAK_CONTEXT": transition(None, action=break_context),
                "FRAGILE": "fragile",
            },
        ),
        "fragile": state(on_exit=explode, on={"LEAVE": "shipped"}),
        "broken": state(on_enter=explode, final=True),
        "big": state(final=True),
        "small": state(final=True),
        "shipped": state(on={"DELIVERED": "completed"}),
        "completed": state(final=True),
        "cancelled": state(final=True),
    },
)


def count_step(ctx: dict, event) -> None:
    ctx["count"] = ctx.get("count", 0) + 1


PLAIN = machine(
    "plain",
    initial="open",
    states={
        "open": state(on={"COUNT": transition(None, action=count_step), "CLOSE": "closed"}),
        "closed": state(final=True),
    },
)


def fail_on_start(ctx: dict, event) -> None:
    raise Boom("cannot start")


STARTS_BADLY = machine(
    "starts-badly",
    initial="first",
    states={"first": state(on_enter=fail_on_start, on={"GO": "done"}), "done": state(final=True)},
)

INSTANT = machine("instant", initial="done", states={"done": state(final=True)})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    eng = Engine(db_url, clock=clock)
    for definition in (ORDER, PLAIN, STARTS_BADLY, INSTANT):
        eng.register(definition)
    yield eng
    eng.close()


def start_order(engine: Engine, iid: str = "A1", total: float = 40) -> Any:
    return engine.start("order", {"total": total}, instance_id=iid)


def pay(engine: Engine, iid: str = "A1", amount: float = 40, **kwargs: Any) -> Any:
    return engine.send(iid, "PAY", {"amount": amount}, **kwargs)


# Raw SQL, independent of the engine's own connection ------------------------------------------------

TABLES = ("sm_instances", "sm_history", "sm_receipts", "sm_timers", "sm_effects")


def raw_query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run `sql` (with `?` placeholders) on a connection of its own."""
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return conn.execute(sql, params).fetchall()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute(sql.replace("?", "%s"), params).fetchall()


def dump_tables(url: str) -> dict[str, list[Any]]:
    """Every row of the engine's tables, exactly as stored (PostgreSQL: each row's text form)."""
    if url.startswith("sqlite"):
        return {t: raw_query(url, f"SELECT * FROM {t} ORDER BY 1, 2") for t in TABLES}
    return {t: raw_query(url, f"SELECT x::text FROM {t} x ORDER BY 1") for t in TABLES}


def as_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def timers(url: str, iid: str) -> list[tuple[str, datetime]]:
    rows = raw_query(url, "SELECT event, fire_at FROM sm_timers WHERE instance_id = ? ORDER BY id", (iid,))
    return [(event, as_utc(at)) for event, at in rows]


# start ---------------------------------------------------------------------------------------------


def test_start_enters_the_initial_state_with_version_1(engine: Engine) -> None:
    snap = start_order(engine)
    assert (snap.id, snap.machine, snap.state, snap.status, snap.version) == (
        "A1",
        "order",
        "pending",
        "active",
        1,
    )
    assert snap.created_at == snap.updated_at == T0


def test_start_writes_history_record_1_with_event_start_and_no_source(engine: Engine) -> None:
    start_order(engine)
    [record] = engine.history("A1")
    assert (record.seq, record.event, record.source, record.target, record.outcome) == (
        1,
        "start",
        None,
        "pending",
        "applied",
    )
    assert record.at == T0


def test_start_runs_the_initial_state_entry_actions(engine: Engine) -> None:
    snap = start_order(engine)
    assert snap.context.log == ["enter pending"]
    assert engine.get("A1").context.log == ["enter pending"]
    assert engine.history("A1")[0].context["log"] == ["enter pending"]


def test_start_arms_the_initial_state_timers(engine: Engine, db_url: str) -> None:
    start_order(engine)
    assert timers(db_url, "A1") == [("after.1h", T0 + timedelta(hours=1))]


def test_start_returns_the_context_as_a_model_instance(engine: Engine) -> None:
    snap = start_order(engine, total=12.5)
    assert isinstance(snap.context, Order)
    assert snap.context.total == 12.5


def test_start_accepts_a_context_model_instance(engine: Engine) -> None:
    snap = engine.start("order", Order(total=7), instance_id="A1")
    assert snap.context.total == 7


def test_start_without_an_id_generates_a_unique_one(engine: Engine) -> None:
    one = engine.start("order", {"total": 1})
    two = engine.start("order", {"total": 1})
    assert one.id != two.id
    assert engine.get(one.id).state == "pending"


def test_start_with_a_taken_id_raises_instance_exists(engine: Engine) -> None:
    start_order(engine, total=40)
    with pytest.raises(InstanceExists):
        start_order(engine, total=99)


def test_start_with_a_taken_id_leaves_the_existing_instance_untouched(engine: Engine, db_url: str) -> None:
    start_order(engine, total=40)
    pay(engine)
    before = dump_tables(db_url)
    with pytest.raises(InstanceExists):
        start_order(engine, total=99)
    assert dump_tables(db_url) == before


def test_start_of_an_unknown_machine_raises_unknown_machine(engine: Engine) -> None:
    with pytest.raises(UnknownMachine, match="no-such-machine"):
        engine.start("no-such-machine", {}, instance_id="A1")


def test_start_with_an_invalid_context_raises_context_invalid_and_writes_nothing(
    engine: Engine, db_url: str
) -> None:
    with pytest.raises(ContextInvalid, match="total"):
        engine.start("order", {"paid": 3}, instance_id="A1")
    assert all(rows == [] for rows in dump_tables(db_url).values())


def test_start_with_a_failing_entry_action_raises_action_failed_and_creates_nothing(
    engine: Engine, db_url: str
) -> None:
    with pytest.raises(ActionFailed) as info:
        engine.start("starts-badly", instance_id="S1")
    assert isinstance(info.value.__cause__, Boom)
    assert all(rows == [] for rows in dump_tables(db_url).values())
    with pytest.raises(InstanceNotFound):
        engine.get("S1")


def test_start_in_a_final_initial_state_completes_the_instance(engine: Engine) -> None:
    snap = engine.start("instant", instance_id="I1")
    assert (snap.state, snap.status) == ("done", "completed")
    assert engine.get("I1").status == "completed"


def test_an_empty_instance_id_is_an_invalid_argument(engine: Engine) -> None:
    with pytest.raises(InvalidArgument):
        engine.start("order", {"total": 1}, instance_id="")


# send: applied ---------------------------------------------------------------------------------------


def test_send_moves_the_instance_and_bumps_the_version(engine: Engine) -> None:
    start_order(engine)
    snap = pay(engine)
    assert (snap.state, snap.status, snap.version) == ("paid", "active", 2)
    assert snap.context.paid == 40


def test_send_returns_the_snapshot_that_get_reads_back(engine: Engine, clock: ManualClock) -> None:
    start_order(engine)
    clock.advance("5m")
    snap = pay(engine)
    assert engine.get("A1") == snap
    assert snap.updated_at == T0 + timedelta(minutes=5)
    assert snap.created_at == T0


def test_send_writes_one_history_record_with_the_context_after(engine: Engine) -> None:
    start_order(engine)
    pay(engine)
    record = engine.history("A1")[-1]
    assert (record.seq, record.event, record.source, record.target, record.outcome) == (
        2,
        "PAY",
        "pending",
        "paid",
        "applied",
    )
    assert record.payload == {"amount": 40.0}
    assert record.context["paid"] == 40
    assert record.reason is None


def test_the_actor_is_recorded_in_history(engine: Engine) -> None:
    engine.start("order", {"total": 40}, instance_id="A1", actor="shop")
    pay(engine, actor="stripe")
    assert [r.actor for r in engine.history("A1")] == ["shop", "stripe"]


def test_a_missing_actor_is_recorded_as_none(engine: Engine) -> None:
    start_order(engine)
    pay(engine)
    assert [r.actor for r in engine.history("A1")] == [None, None]


def test_exit_then_transition_then_entry_actions_run_in_that_order(engine: Engine) -> None:
    start_order(engine)
    snap = pay(engine)
    assert snap.context.log == ["enter pending", "exit pending", "action record_payment", "enter paid"]


def test_self_transition_is_external_and_runs_exit_and_entry_again(engine: Engine) -> None:
    start_order(engine)
    snap = engine.send("A1", "RESET")
    assert snap.state == "pending"
    assert snap.context.log == ["enter pending", "exit pending", "action reset", "enter pending"]


def test_self_transition_re_arms_the_state_timers(engine: Engine, clock: ManualClock, db_url: str) -> None:
    start_order(engine)
    clock.advance("10m")
    engine.send("A1", "RESET")
    assert timers(db_url, "A1") == [("after.1h", T0 + timedelta(minutes=70))]


def test_internal_transition_runs_only_its_action(engine: Engine) -> None:
    start_order(engine)
    snap = engine.send("A1", "NOTE", {"text": "gift wrap"})
    assert snap.state == "pending"
    assert snap.context.notes == ["gift wrap"]
    assert snap.context.log == ["enter pending", "action add_note"]


def test_internal_transition_leaves_the_timers_untouched(
    engine: Engine, clock: ManualClock, db_url: str
) -> None:
    start_order(engine)
    before = raw_query(db_url, "SELECT * FROM sm_timers")
    clock.advance("10m")
    engine.send("A1", "NOTE", {"text": "gift wrap"})
    assert raw_query(db_url, "SELECT * FROM sm_timers") == before


def test_internal_transition_counts_as_an_applied_transition(engine: Engine) -> None:
    start_order(engine)
    snap = engine.send("A1", "NOTE", {"text": "x"})
    assert snap.version == 2
    record = engine.history("A1")[-1]
    assert (record.source, record.target, record.outcome) == ("pending", "pending", "applied")


def test_guards_are_tried_in_order_and_the_first_true_one_wins(engine: Engine) -> None:
    engine.start("order", {"total": 500}, instance_id="B1")  # both guards true
    engine.start("order", {"total": 5}, instance_id="S1")  # only the second guard true
    assert engine.send("B1", "ROUTE").state == "big"
    assert engine.send("S1", "ROUTE").state == "small"


def test_reaching_a_final_state_completes_the_instance(engine: Engine) -> None:
    start_order(engine)
    pay(engine)
    engine.send("A1", "SHIP")
    snap = engine.send("A1", "DELIVERED")
    assert (snap.state, snap.status, snap.version) == ("completed", "completed", 4)
    assert engine.get("A1").status == "completed"


def test_leaving_a_state_deletes_its_timers(engine: Engine, db_url: str) -> None:
    start_order(engine)
    pay(engine)
    assert timers(db_url, "A1") == []


def test_a_payload_without_a_schema_is_passed_and_recorded_as_given(engine: Engine) -> None:
    start_order(engine)
    engine.send("A1", "NOTE", {"text": "fragile", "nested": {"n": [1, 2]}})
    assert engine.history("A1")[-1].payload == {"text": "fragile", "nested": {"n": [1, 2]}}


def test_a_payload_schema_gives_guards_and_actions_a_validated_model(engine: Engine) -> None:
    start_order(engine)
    snap = pay(engine, amount="40")  # type: ignore[arg-type]  # coerced by the schema
    assert snap.context.paid == 40.0
    assert engine.history("A1")[-1].payload == {"amount": 40.0}


def test_a_payload_model_instance_is_accepted(engine: Engine) -> None:
    start_order(engine)
    assert engine.send("A1", "PAY", Payment(amount=40)).state == "paid"


# send: errors that write nothing -----------------------------------------------------------------------


def test_a_payload_failing_its_schema_raises_payload_invalid(engine: Engine) -> None:
    start_order(engine)
    with pytest.raises(PayloadInvalid, match="amount"):
        engine.send("A1", "PAY", {"amount": "lots"})


def test_a_payload_failing_its_schema_writes_nothing(engine: Engine, db_url: str) -> None:
    start_order(engine)
    before = dump_tables(db_url)
    with pytest.raises(PayloadInvalid):
        engine.send("A1", "PAY", {"amount": "lots"}, idempotency_key="k1")
    assert dump_tables(db_url) == before


def test_a_payload_that_is_not_json_raises_payload_invalid(engine: Engine, db_url: str) -> None:
    start_order(engine)
    before = dump_tables(db_url)
    with pytest.raises(PayloadInvalid):
        engine.send("A1", "NOTE", {"text": object()})
    assert dump_tables(db_url) == before


def test_an_exception_in_an_entry_action_rolls_everything_back(engine: Engine, db_url: str) -> None:
    start_order(engine)
    pay(engine, idempotency_key="k1")
    before = dump_tables(db_url)
    assert before["sm_receipts"]  # a receipt exists and must survive unchanged
    with pytest.raises(ActionFailed):
        engine.send("A1", "FAIL_ENTER", idempotency_key="k2")
    assert dump_tables(db_url) == before


def test_an_exception_in_an_entry_action_carries_the_original_as_its_cause(engine: Engine) -> None:
    start_order(engine)
    pay(engine)
    with pytest.raises(ActionFailed) as info:
        engine.send("A1", "FAIL_ENTER")
    assert isinstance(info.value.__cause__, Boom)
    assert str(info.value.__cause__) == "kaboom"
    assert isinstance(info.value, StateMachineError)
    assert "explode" in str(info.value)


def test_an_exception_in_a_transition_action_rolls_everything_back(engine: Engine, db_url: str) -> None:
    start_order(engine)
    pay(engine)
    before = dump_tables(db_url)
    with pytest.raises(ActionFailed) as info:
        engine.send("A1", "BOOM")
    assert isinstance(info.value.__cause__, Boom)
    assert dump_tables(db_url) == before


def test_an_exception_in_a_guard_rolls_everything_back(engine: Engine, db_url: str) -> None:
    start_order(engine)
    pay(engine)
    before = dump_tables(db_url)
    with pytest.raises(ActionFailed) as info:
        engine.send("A1", "GUARD_BOOM")
    assert isinstance(info.value.__cause__, Boom)
    assert dump_tables(db_url) == before


def test_an_exception_in_an_exit_action_rolls_everything_back(engine: Engine, db_url: str) -> None:
    start_order(engine)
    pay(engine)
    engine.send("A1", "FRAGILE")
    before = dump_tables(db_url)
    with pytest.raises(ActionFailed) as info:
        engine.send("A1", "LEAVE")
    assert isinstance(info.value.__cause__, Boom)
    assert dump_tables(db_url) == before


def test_a_failed_action_takes_no_history_seq(engine: Engine) -> None:
    start_order(engine)
    pay(engine)
    with pytest.raises(ActionFailed):
        engine.send("A1", "BOOM")
    engine.send("A1", "SHIP")
    assert [r.seq for r in engine.history("A1")] == [1, 2, 3]


def test_a_failed_action_leaves_no_receipt_so_the_key_can_be_used_again(engine: Engine) -> None:
    start_order(engine)
    pay(engine)
    with pytest.raises(ActionFailed):
        engine.send("A1", "BOOM", idempotency_key="k1")
    assert engine.send("A1", "SHIP", idempotency_key="k1").state == "shipped"


def test_a_context_the_actions_make_invalid_raises_context_invalid(engine: Engine) -> None:
    start_order(engine)
    pay(engine)
    with pytest.raises(ContextInvalid, match="total"):
        engine.send("A1", "BREAK_CONTEXT")


def test_a_context_the_actions_make_invalid_writes_nothing(engine: Engine, db_url: str) -> None:
    start_order(engine)
    pay(engine)
    before = dump_tables(db_url)
    with pytest.raises(ContextInvalid):
        engine.send("A1", "BREAK_CONTEXT", idempotency_key="k1")
    assert dump_tables(db_url) == before


def test_sending_to_an_unknown_instance_raises_instance_not_found(engine: Engine) -> None:
    with pytest.raises(InstanceNotFound, match="'nope'"):
        engine.send("nope", "PAY", {"amount": 1})


def test_an_empty_event_name_is_an_invalid_argument(engine: Engine) -> None:
    start_order(engine)
    with pytest.raises(InvalidArgument):
        engine.send("A1", "")


# send: rejected events ---------------------------------------------------------------------------------


def test_an_event_the_state_has_no_transition_for_raises_event_not_allowed(engine: Engine) -> None:
    start_order(engine)
    with pytest.raises(EventNotAllowed) as info:
        engine.send("A1", "SHIP")
    err = info.value
    assert (err.instance_id, err.state, err.event) == ("A1", "pending", "SHIP")
    assert err.allowed == ["CANCEL", "NOTE", "PAY", "RESET", "ROUTE"]
    assert "'SHIP'" in str(err) and "'pending'" in str(err) and "PAY" in str(err)


def test_an_event_every_guard_refuses_raises_guard_rejected(engine: Engine) -> None:
    start_order(engine)
    with pytest.raises(GuardRejected) as info:
        pay(engine, amount=10)
    err = info.value
    assert (err.state, err.event) == ("pending", "PAY")
    assert "PAY" in err.allowed


def test_a_rejected_event_is_recorded_with_outcome_rejected_and_its_reason(engine: Engine) -> None:
    start_order(engine)
    with pytest.raises(GuardRejected):
        pay(engine, amount=10, actor="stripe")
    record = engine.history("A1")[-1]
    assert (record.seq, record.event, record.source, record.target, record.outcome) == (
        2,
        "PAY",
        "pending",
        "pending",
        "rejected",
    )
    assert record.actor == "stripe"
    assert record.payload == {"amount": 10.0}
    assert "GuardRejected" in record.reason
    assert "refused by every guard" in record.reason


def test_an_event_not_allowed_is_recorded_with_its_reason(engine: Engine) -> None:
    start_order(engine)
    with pytest.raises(EventNotAllowed):
        engine.send("A1", "SHIP")
    record = engine.history("A1")[-1]
    assert record.outcome == "rejected"
    assert "EventNotAllowed" in record.reason
    assert "not allowed" in record.reason


def test_a_rejected_event_leaves_the_instance_unchanged(engine: Engine, clock: ManualClock) -> None:
    before = start_order(engine)
    clock.advance("1m")
    with pytest.raises(EventNotAllowed):
        engine.send("A1", "SHIP")
    with pytest.raises(GuardRejected):
        pay(engine, amount=1)
    assert engine.get("A1") == before


def test_a_rejected_event_leaves_the_timers_untouched(engine: Engine, db_url: str) -> None:
    start_order(engine)
    before = raw_query(db_url, "SELECT * FROM sm_timers")
    with pytest.raises(EventNotAllowed):
        engine.send("A1", "SHIP")
    assert raw_query(db_url, "SELECT * FROM sm_timers") == before


def test_version_counts_applied_transitions_only(engine: Engine) -> None:
    start_order(engine)
    with pytest.raises(GuardRejected):
        pay(engine, amount=1)
    with pytest.raises(EventNotAllowed):
        engine.send("A1", "SHIP")
    snap = pay(engine)
    assert snap.version == 2


def test_history_seq_is_gap_free_across_applied_rejected_and_cancelled(engine: Engine) -> None:
    start_order(engine)
    with pytest.raises(GuardRejected):
        pay(engine, amount=1)
    pay(engine)
    with pytest.raises(EventNotAllowed):
        engine.send("A1", "PAY", {"amount": 40})
    engine.cancel("A1", reason="changed my mind")
    history = engine.history("A1")
    assert [r.seq for r in history] == [1, 2, 3, 4, 5]
    assert [r.outcome for r in history] == ["applied", "rejected", "applied", "rejected", "cancelled"]


# idempotency -----------------------------------------------------------------------------------------


def test_a_resend_with_the_same_key_returns_the_same_snapshot(engine: Engine, clock: ManualClock) -> None:
    start_order(engine)
    first = pay(engine, idempotency_key="stripe-evt-1")
    clock.advance("1m")
    again = pay(engine, idempotency_key="stripe-evt-1")
    assert again == first
    assert again.version == 2
    assert again.context.paid == 40


def test_a_resend_with_the_same_key_writes_nothing(engine: Engine, db_url: str) -> None:
    start_order(engine)
    pay(engine, idempotency_key="stripe-evt-1")
    before = dump_tables(db_url)
    pay(engine, idempotency_key="stripe-evt-1")
    assert dump_tables(db_url) == before
    assert len(engine.history("A1")) == 2


def test_a_resend_after_later_events_returns_the_recorded_snapshot(engine: Engine) -> None:
    start_order(engine)
    first = pay(engine, idempotency_key="k1")
    engine.send("A1", "SHIP")
    again = pay(engine, idempotency_key="k1")
    assert again == first
    assert engine.get("A1").state == "shipped"


def test_a_resend_to_an_instance_it_completed_returns_the_recorded_snapshot(engine: Engine) -> None:
    start_order(engine)
    pay(engine)
    engine.send("A1", "SHIP")
    done = engine.send("A1", "DELIVERED", idempotency_key="k1")
    assert engine.send("A1", "DELIVERED", idempotency_key="k1") == done


def test_a_rejected_event_with_a_key_is_rejected_again_on_resend(engine: Engine) -> None:
    start_order(engine)
    with pytest.raises(GuardRejected) as first:
        pay(engine, amount=1, idempotency_key="k1")
    with pytest.raises(GuardRejected) as again:
        pay(engine, amount=1, idempotency_key="k1")
    assert str(again.value) == str(first.value)


def test_a_rejected_event_resent_with_its_key_writes_no_new_history(engine: Engine, db_url: str) -> None:
    start_order(engine)
    with pytest.raises(EventNotAllowed):
        engine.send("A1", "SHIP", idempotency_key="k1")
    before = dump_tables(db_url)
    with pytest.raises(EventNotAllowed):
        engine.send("A1", "SHIP", idempotency_key="k1")
    assert dump_tables(db_url) == before


def test_a_rejected_key_stays_rejected_after_the_state_changes(engine: Engine) -> None:
    start_order(engine)
    with pytest.raises(EventNotAllowed):
        engine.send("A1", "SHIP", idempotency_key="k1")
    pay(engine)
    with pytest.raises(EventNotAllowed):
        engine.send("A1", "SHIP", idempotency_key="k1")
    assert engine.get("A1").state == "paid"


def test_idempotency_keys_are_per_instance(engine: Engine) -> None:
    start_order(engine, "A1")
    start_order(engine, "A2")
    assert pay(engine, "A1", idempotency_key="same").state == "paid"
    assert pay(engine, "A2", idempotency_key="same").state == "paid"
    assert engine.get("A2").version == 2


def test_a_different_key_applies_the_event_again(engine: Engine) -> None:
    start_order(engine)
    engine.send("A1", "NOTE", {"text": "a"}, idempotency_key="k1")
    snap = engine.send("A1", "NOTE", {"text": "a"}, idempotency_key="k2")
    assert snap.context.notes == ["a", "a"]
    assert snap.version == 3


# closed instances and cancel -----------------------------------------------------------------------------


def test_an_event_to_a_completed_instance_raises_instance_closed(engine: Engine) -> None:
    engine.start("instant", instance_id="I1")
    with pytest.raises(InstanceClosed) as info:
        engine.send("I1", "GO")
    assert (info.value.status, info.value.state) == ("completed", "done")


def test_an_event_to_a_closed_instance_writes_nothing(engine: Engine, db_url: str) -> None:
    engine.start("instant", instance_id="I1")
    before = dump_tables(db_url)
    with pytest.raises(InstanceClosed):
        engine.send("I1", "GO", idempotency_key="k1")
    assert dump_tables(db_url) == before


def test_cancel_sets_status_cancelled_and_keeps_the_state(engine: Engine) -> None:
    start_order(engine)
    pay(engine)
    snap = engine.cancel("A1", reason="customer asked")
    assert (snap.state, snap.status) == ("paid", "cancelled")
    got = engine.get("A1")
    assert (got.state, got.status) == ("paid", "cancelled")


def test_cancel_does_not_bump_the_version(engine: Engine) -> None:
    start_order(engine)
    pay(engine)
    assert engine.cancel("A1").version == 2
    assert engine.get("A1").version == 2


def test_cancel_is_recorded_in_history_with_its_reason_and_actor(engine: Engine) -> None:
    start_order(engine)
    engine.cancel("A1", reason="customer asked", actor="support")
    record = engine.history("A1")[-1]
    assert (record.seq, record.event, record.source, record.target, record.outcome) == (
        2,
        "cancel",
        "pending",
        "pending",
        "cancelled",
    )
    assert record.reason == "customer asked"
    assert record.actor == "support"


def test_cancel_drops_the_instance_timers(engine: Engine, db_url: str) -> None:
    start_order(engine)
    engine.cancel("A1")
    assert timers(db_url, "A1") == []


def test_an_event_to_a_cancelled_instance_raises_instance_closed(engine: Engine) -> None:
    start_order(engine)
    engine.cancel("A1")
    with pytest.raises(InstanceClosed) as info:
        pay(engine)
    assert info.value.status == "cancelled"


def test_cancelling_a_closed_instance_raises_instance_closed(engine: Engine) -> None:
    start_order(engine)
    engine.cancel("A1")
    with pytest.raises(InstanceClosed):
        engine.cancel("A1")


def test_cancelling_an_unknown_instance_raises_instance_not_found(engine: Engine) -> None:
    with pytest.raises(InstanceNotFound):
        engine.cancel("nope")


# machines without a context model ---------------------------------------------------------------------


def test_a_machine_without_a_context_model_keeps_a_plain_dict(engine: Engine) -> None:
    snap = engine.start("plain", {"owner": "ann"}, instance_id="P1")
    assert snap.context == {"owner": "ann"}
    assert engine.get("P1").context == {"owner": "ann"}


def test_a_machine_without_a_context_model_starts_with_an_empty_dict(engine: Engine) -> None:
    assert engine.start("plain", instance_id="P1").context == {}


def test_actions_mutate_a_plain_dict_context(engine: Engine) -> None:
    engine.start("plain", instance_id="P1")
    engine.send("P1", "COUNT")
    snap = engine.send("P1", "COUNT")
    assert snap.context == {"count": 2}
    assert engine.get("P1").context == {"count": 2}
    assert engine.history("P1")[-1].context == {"count": 2}


def test_a_context_that_is_not_a_mapping_is_context_invalid_without_a_model(
    engine: Engine, db_url: str
) -> None:
    with pytest.raises(ContextInvalid, match="takes a dict"):
        engine.start("plain", [1, 2], instance_id="P1")
    assert all(rows == [] for rows in dump_tables(db_url).values())


def test_a_plain_dict_context_that_is_not_json_is_context_invalid(engine: Engine) -> None:
    with pytest.raises(ContextInvalid, match="JSON"):
        engine.start("plain", {"when": object()}, instance_id="P1")
