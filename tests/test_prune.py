"""Retention: `prune` deletes closed instances past a cutoff with every row of theirs, in batches,
never a live one, safely while senders run; `statemachines prune`. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from statemachines import (
    Effect,
    Engine,
    InstanceClosed,
    InstanceNotFound,
    InvalidArgument,
    ManualClock,
    Retry,
    machine,
    state,
    transition,
)
from statemachines.cli import main

END = state(final=True)


def ping(ctx: dict, call: Any) -> str:
    return "pong"


def order() -> Any:
    return machine(
        "order",
        initial="open",
        states={
            "open": state(
                effect=Effect(ping), after={"30d": "expired"}, on={"PAY": "paid", "NOTE": transition(None)}
            ),
            "paid": state(final=True),
            "expired": state(final=True),
        },
    )


@pytest.fixture
def shop(engine):
    engine.register(order())
    return engine


def closed(engine: Engine, iid: str, how: str = "PAY") -> None:
    engine.start("order", instance_id=iid)
    engine.run_due()
    engine.send(iid, "NOTE", idempotency_key=f"{iid}-note")
    if how == "PAY":
        engine.send(iid, "PAY")
    else:
        engine.cancel(iid)


def count(engine: Engine, table: str, iid: str) -> int:
    with engine.runtime.read() as cur:
        cur.execute(engine.db.sql(f"SELECT count(*) FROM {table} WHERE instance_id = :id"), {"id": iid})
        return int(cur.fetchone()[0])


def test_prune_deletes_closed_instances_older_than_the_cutoff_with_all_their_rows(shop, clock):
    closed(shop, "old-paid")
    closed(shop, "old-cancelled", how="cancel")
    clock.advance("100d")
    report = shop.prune(before="90d")
    assert report.instances == 2
    for iid in ("old-paid", "old-cancelled"):
        with pytest.raises(InstanceNotFound):
            shop.get(iid)
        for table in ("sm_history", "sm_receipts", "sm_timers", "sm_effects", "sm_effect_attempts"):
            assert count(shop, table, iid) == 0, table
    assert report.counts["receipts"] == 2 and report.counts["attempts"] == 2


def test_prune_keeps_instances_changed_after_the_cutoff(shop, clock):
    closed(shop, "old")
    clock.advance("100d")
    closed(shop, "recent")
    assert shop.prune(before="90d").instances == 1
    assert shop.get("recent").status == "completed"


def test_prune_never_deletes_an_active_or_failed_instance(shop, clock):
    shop.start("order", instance_id="live")
    clock.advance("100d")
    shop.start("order", instance_id="later")
    assert shop.prune(before=clock.now() + timedelta(days=1)).instances == 0
    assert shop.get("live").status == "active"


def test_prune_refuses_statuses_of_live_instances(shop):
    with pytest.raises(InvalidArgument, match="closed instances only"):
        shop.prune(before="1d", status=("active",))
    with pytest.raises(InvalidArgument, match="closed instances only"):
        shop.prune(before="1d", status="failed")


def test_prune_only_the_given_status(shop, clock):
    closed(shop, "paid")
    closed(shop, "cancelled", how="cancel")
    clock.advance("2d")
    assert shop.prune(before="1d", status=["cancelled"]).instances == 1
    assert shop.get("paid").status == "completed"


def test_a_dry_run_counts_and_deletes_nothing(shop, clock):
    closed(shop, "a")
    clock.advance("2d")
    report = shop.prune(before="1d", dry_run=True)
    assert (report.dry_run, report.instances, report.counts["history"]) == (True, 1, 4)
    assert shop.get("a").status == "completed"


def test_prune_works_in_batches(shop, clock):
    for i in range(7):
        closed(shop, f"o{i}")
    clock.advance("2d")
    report = shop.prune(before="1d", batch=3)
    assert (report.instances, report.batches) == (7, 3)


def test_prune_refuses_a_bad_cutoff_or_batch(shop):
    with pytest.raises(InvalidArgument):
        shop.prune(before="soon")
    with pytest.raises(InvalidArgument, match="timezone"):
        shop.prune(before=datetime(2030, 1, 1))
    with pytest.raises(InvalidArgument, match="batch"):
        shop.prune(before="1d", batch=0)


@pytest.mark.parametrize("status", [123, None, [], "nonsense", ["completed", "active"], [None]])
def test_prune_refuses_a_nonsense_status_naming_it(shop, status):
    with pytest.raises(InvalidArgument, match="status"):
        shop.prune(before="1d", status=status)


@pytest.mark.parametrize(
    ("before", "message"),
    [
        ("999999999999d", "longer than the maximum"),
        (10**400, "longer than the maximum"),
        (timedelta.max, "longer than the maximum"),
        ("-5d", "positive"),
        (datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))), "outside the years"),
        (datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), "outside the years"),
    ],
)
def test_prune_refuses_a_cutoff_out_of_range_without_overflowing(shop, before, message):
    with pytest.raises(InvalidArgument, match=message):
        shop.prune(before=before, dry_run=True)


def test_prune_takes_a_cutoff_in_any_time_zone(shop, clock):
    closed(shop, "o1")
    later = clock.now() + timedelta(minutes=30)
    assert shop.prune(before=later.astimezone(timezone(timedelta(hours=-5)))).instances == 1


def test_a_cancelled_instance_still_compensating_is_not_pruned(engine, clock):
    def book(ctx, call):
        return "booked"

    def undo(ctx, call):
        raise RuntimeError("the provider is down")

    booking = Effect(book, compensate=undo, retry=Retry(max_attempts=5))
    engine.register(
        machine("trip", initial="a", states={"a": state(effect=booking, on={"X": "b"}), "b": END})
    )
    engine.start("trip", instance_id="t1")
    engine.run_due()
    engine.cancel("t1", compensate=True)
    engine.run_due()  # the compensation fails once and waits for its next attempt
    clock.advance("2d")
    assert engine.prune(before="1d").instances == 0


def test_prune_removes_the_active_states_of_a_closed_statechart(engine, clock):
    from chart_machines import kyc

    engine.register(kyc())
    engine.start("kyc", instance_id="k1")
    engine.send("k1", "SUBMITTED")
    engine.send("k1", "WITHDRAW")
    clock.advance("2d")
    report = engine.prune(before="1d")
    assert report.instances == 1 and report.counts["chart_states"] >= 1
    assert engine.instances(state="withdrawn") == []


def instance_rows(engine: Engine, iid: str) -> dict[str, int]:
    """Rows of the instance in every table that has an instance column (the schema's tables)."""
    from sqlmodel import SQLModel

    import persistence.tables  # noqa: F401  (the tables' definitions)

    counts = {}
    with engine.runtime.read() as cur:
        for name, table in SQLModel.metadata.tables.items():
            column = "id" if name == "sm_instances" else "instance_id"
            if column in table.columns:
                cur.execute(engine.db.sql(f"SELECT count(*) FROM {name} WHERE {column} = :id"), {"id": iid})
                counts[name] = int(cur.fetchone()[0])
    return counts


def test_prune_leaves_no_row_of_a_pruned_instance_in_any_table(db_url, clock):
    from chart_machines import kyc

    from statemachines.testing import run_until_idle

    engine = Engine(db_url, clock=clock, secret="prune-tests-secret-0123456789")
    engine.register(kyc())
    engine.start("kyc", instance_id="k1")
    engine.send("k1", "SUBMITTED", idempotency_key="submitted")
    run_until_idle(engine, until=clock.now() + timedelta(hours=1))  # effects and their attempts
    engine.send_token(engine.token("k1", "PAUSE"))  # a spent token
    engine.cancel("k1")
    with engine.runtime.transaction() as cur:  # a send the instance queued for itself, left over
        cur.execute(engine.db.sql("INSERT INTO sm_sends (instance_id, machine, send_id, event, payload,"
                                  " fire_at) VALUES ('k1', 'kyc', 's1', 'PING', '{}', :at)"),
                    {"at": engine.db.ts(clock.now())})  # fmt: skip
    before = instance_rows(engine, "k1")
    assert [t for t, n in before.items() if n == 0] == ["sm_timers"]  # every other kind is there
    clock.advance("2d")
    dry = engine.prune(before="1d", dry_run=True)
    report = engine.prune(before="1d")
    assert report.counts == dry.counts
    assert instance_rows(engine, "k1") == dict.fromkeys(before, 0)
    engine.close()


def test_prune_while_senders_run_deletes_only_closed_instances_and_senders_carry_on(db_url):
    clock = ManualClock()
    setup = Engine(db_url, clock=clock)
    setup.register(order())
    old = [f"old{i}" for i in range(40)]
    for iid in old:
        setup.start("order", instance_id=iid)
        setup.send(iid, "PAY")
    live = [f"live{i}" for i in range(4)]
    for iid in live:
        setup.start("order", instance_id=iid)
    clock.advance("100d")
    errors: list[BaseException] = []
    sent: dict[str, int] = dict.fromkeys(live, 0)
    refused: list[str] = []
    stop = threading.Event()

    def late_sender() -> None:
        """Sends to the closed instances being pruned: refused as closed, or not found once gone."""
        engine = Engine(db_url, clock=clock)
        engine.register(order())
        try:
            while not stop.is_set():
                for iid in old:
                    try:
                        engine.send(iid, "NOTE")
                    except (InstanceClosed, InstanceNotFound) as exc:
                        refused.append(type(exc).__name__)
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.close()

    def sender(iid: str) -> None:
        engine = Engine(db_url, clock=clock)
        engine.register(order())
        try:
            while not stop.is_set():
                engine.send(iid, "NOTE")
                sent[iid] += 1
        except BaseException as exc:  # any error fails the test below
            errors.append(exc)
        finally:
            engine.close()

    threads = [threading.Thread(target=sender, args=(iid,)) for iid in live]
    threads.append(threading.Thread(target=late_sender))
    for t in threads:
        t.start()
    try:
        report = setup.prune(before="90d", batch=7)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    # (PostgreSQL skips an instance a late send holds at that moment: the next run takes it)
    assert report.instances + setup.prune(before="90d").instances == len(old)
    assert set(refused) <= {"InstanceClosed", "InstanceNotFound"}
    for iid in live:
        history = setup.history(iid)
        assert len(history) == 1 + sent[iid]  # every send kept, gap-free
        assert [r.seq for r in history] == list(range(1, len(history) + 1))
    assert len(setup.instances(limit=1000)) == len(live)
    setup.close()


def test_cli_prune_prints_what_it_removed_and_dry_run_removes_nothing(db_url, capsys):
    engine = Engine(db_url)
    engine.register(order())
    engine.start("order", instance_id="c1")
    engine.send("c1", "PAY")
    engine.close()
    app = ["--db", db_url, "--app", "tests.test_prune:CLI_APP"]
    assert main([*app, "prune", "--before", "2999-01-01T00:00Z", "--dry-run"]) == 0
    assert "would remove 1 instance(s)" in capsys.readouterr().out
    assert main([*app, "prune", "--before", "2999-01-01T00:00Z", "--json"]) == 0
    assert '"instances": 1' in capsys.readouterr().out
    assert main([*app, "prune", "--before", "90d"]) == 0
    assert "removed 0 instance(s)" in capsys.readouterr().out
    assert main([*app, "prune", "--before", "someday"]) == 2


@pytest.mark.parametrize(
    ("before", "message"),
    [
        ("999999999999d", "longer than the maximum of 36525d"),
        ("-5d", "must be positive"),
        ("9999-12-31T23:00-05:00", "outside the years 1-9999"),
        ("2025-01-01", "no time zone"),
        ("someday", "neither a duration"),
    ],
)
def test_cli_prune_names_what_is_wrong_with_a_bad_before(sqlite_url, capsys, before, message):
    assert main(["--db", sqlite_url, "prune", f"--before={before}", "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_cli_prune_refuses_a_nonsense_status(sqlite_url, capsys):
    assert main(["--db", sqlite_url, "prune", "--before", "1d", "--status", "active"]) == 2
    assert "invalid choice: 'active'" in capsys.readouterr().err


CLI_APP = order()
