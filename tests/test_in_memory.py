"""In-memory engines (`Engine.in_memory()`, `Engine("sqlite://")`, `Engine(":memory:")`): a file's
semantics without the file, private to the engine, gone when it is closed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from statemachines import Engine, ManualClock, StorageError
from statemachines.examples.orders import orders

SECRET = "in-memory-secret-0123456789"
ORDER = {"order_id": "A1", "total": 40}


@pytest.fixture
def memory(clock: ManualClock):
    eng = Engine.in_memory(clock, secret=SECRET)
    eng.register(orders)
    yield eng
    eng.close()


@pytest.mark.parametrize("url", ["sqlite://", ":memory:", "sqlite:///:memory:"])
def test_every_in_memory_spelling_opens_an_engine_without_a_file(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    eng = Engine(url)
    try:
        eng.register(orders)
        assert eng.start("order-lifecycle", ORDER, instance_id="a").state == "pending"
    finally:
        eng.close()
    assert list(tmp_path.iterdir()) == []


def test_start_send_and_history_work_in_memory(memory: Engine) -> None:
    memory.start("order-lifecycle", ORDER, instance_id="a")
    assert memory.send("a", "PAYMENT_RECEIVED", {"amount": 40}).state == "processing"
    assert [r.event for r in memory.history("a")] == ["start", "PAYMENT_RECEIVED"]


def test_a_refused_event_rolls_back_in_memory(memory: Engine) -> None:
    from statemachines import GuardRejected

    memory.start("order-lifecycle", ORDER, instance_id="a")
    with pytest.raises(GuardRejected):
        memory.send("a", "PAYMENT_RECEIVED", {"amount": 1})
    assert memory.get("a").state == "pending" and memory.get("a").version == 1


def test_timers_fire_in_memory(memory: Engine, clock: ManualClock) -> None:
    memory.start("order-lifecycle", ORDER, instance_id="a")
    clock.advance("7d")
    assert memory.run_due() == 1
    assert memory.get("a").state == "cancelled"


def test_effects_run_in_memory(memory: Engine) -> None:
    memory.start("order-lifecycle", ORDER, instance_id="a")
    memory.send("a", "PAYMENT_RECEIVED", {"amount": 40})
    memory.send("a", "SHIPPED", {"carrier": "ups", "tracking": "1Z"})
    memory.run_due()
    assert memory.get("a").context.log[-1] == "tracking mail sent"


def test_callback_tokens_work_in_memory(memory: Engine) -> None:
    memory.start("order-lifecycle", ORDER, instance_id="a")
    token = memory.token("a", "CANCEL")
    assert memory.send_token(token).state == "cancelled"


def test_two_in_memory_engines_do_not_share_data(memory: Engine) -> None:
    memory.start("order-lifecycle", ORDER, instance_id="a")
    other = Engine.in_memory()
    try:
        other.register(orders)
        assert other.instances() == []
    finally:
        other.close()


def test_an_in_memory_engine_serves_several_threads_one_transaction_at_a_time(memory: Engine) -> None:
    ids = [f"o{i}" for i in range(8)]
    for iid in ids:
        memory.start("order-lifecycle", ORDER, instance_id=iid)
    failures: list[BaseException] = []

    def pay(iid: str) -> None:
        try:
            for _ in range(5):
                memory.get(iid)
            memory.send(iid, "PAYMENT_RECEIVED", {"amount": 40})
            memory.send(iid, "OUT_OF_STOCK")
        except BaseException as exc:  # reported below: an assertion in a thread is lost
            failures.append(exc)

    threads = [threading.Thread(target=pay, args=(iid,)) for iid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert {s.state for s in memory.instances()} == {"backorder"}


def test_a_closed_in_memory_engine_says_its_data_is_gone() -> None:
    eng = Engine.in_memory()
    eng.register(orders)
    eng.close()
    with pytest.raises(StorageError, match="closed"):
        eng.instances()


@pytest.mark.parametrize("url", ["sqlite://", ":memory:"])
def test_the_cli_refuses_an_in_memory_database_it_would_lose(
    url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from statemachines.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["--db", url, "instances"]) == 1
    assert "in-memory database" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
