"""`statemachines worker --log-format json`: one JSON object per line, one line per action."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from statemachines import Engine, ManualClock
from statemachines.examples.orders import orders

ROOT = Path(__file__).resolve().parents[1]
APP = ("--app", "statemachines.examples.orders")


@pytest.fixture
def db_with_due_work(tmp_path: Path) -> Path:
    """A SQLite file where a timer (order `late`, 7 days unpaid) and an effect (order `sent`,
    the tracking mail) are due now: the instances were started in 2001."""
    db = tmp_path / "w.db"
    engine = Engine(str(db), clock=ManualClock(datetime(2001, 1, 1, tzinfo=UTC)))
    try:
        engine.register(orders)
        engine.start("order-lifecycle", {"order_id": "L", "total": 5}, instance_id="late")
        engine.start("order-lifecycle", {"order_id": "S", "total": 5}, instance_id="sent")
        engine.send("sent", "PAYMENT_RECEIVED", {"amount": 5})
        engine.send("sent", "SHIPPED", {"carrier": "ups", "tracking": "1Z"})
    finally:
        engine.close()
    return db


def run_worker(db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEMACHINES_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "statemachines.cli", "--db", str(db), *APP, "worker", "--once", *extra],
        capture_output=True, text=True, env=env, timeout=120, cwd=db.parent,
    )  # fmt: skip


def test_every_log_line_is_a_json_object(db_with_due_work: Path) -> None:
    proc = run_worker(db_with_due_work, "--log-format", "json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert lines and all({"timestamp", "level", "message"} <= set(line) for line in lines)
    datetime.fromisoformat(lines[0]["timestamp"])


def test_each_action_has_its_machine_instance_event_outcome_and_duration(db_with_due_work: Path) -> None:
    proc = run_worker(db_with_due_work, "--log-format", "json")
    actions = [a for a in map(json.loads, proc.stderr.splitlines()) if "action" in a]
    timer = next(a for a in actions if a["action"] == "timer")
    effect = next(a for a in actions if a["action"] == "effect")
    assert {k: timer[k] for k in ("machine", "instance", "event", "outcome", "level")} == {
        "machine": "order-lifecycle", "instance": "late", "event": "after.7d", "outcome": "fired",
        "level": "info",
    }  # fmt: skip
    assert timer["target"] == "cancelled"
    assert {k: effect[k] for k in ("machine", "instance", "event", "outcome", "attempt")} == {
        "machine": "order-lifecycle", "instance": "sent", "event": "send_tracking_mail", "outcome": "ok",
        "attempt": 1,
    }  # fmt: skip
    assert all(isinstance(a["duration_ms"], float) and a["duration_ms"] >= 0 for a in (timer, effect))


def test_text_stays_the_default(db_with_due_work: Path) -> None:
    proc = run_worker(db_with_due_work)
    assert proc.returncode == 0, proc.stderr
    assert "timer after.7d fired on late in pending: now in cancelled" in proc.stderr
    assert not proc.stderr.lstrip().startswith("{")


def test_an_unknown_log_format_is_a_usage_error(db_with_due_work: Path) -> None:
    proc = run_worker(db_with_due_work, "--log-format", "xml")
    assert proc.returncode == 2 and "--log-format" in proc.stderr


def test_the_transitions_library_stays_quiet_in_json_too() -> None:
    import logging

    from statemachines.logs import configure_logging

    configure_logging("json")
    assert logging.getLogger("transitions").getEffectiveLevel() == logging.WARNING
