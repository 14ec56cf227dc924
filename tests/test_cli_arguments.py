"""The command line's arguments, worker start-up and messages.

Every number and duration is checked by argparse (a bad value is a usage mistake: exit 2 and
argparse's message, never an "internal error" or a busy loop); a worker says which machines it
serves and refuses to start with none; a broken definition lists its problems one per line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from statemachines import Engine, InvalidArgument, worker
from statemachines.cli import main

APP = ["--app", "statemachines.examples.orders"]
CTX = '{"order_id": "A1", "total": 40}'
SECRET = "cli-arguments-secret-0123456789"
Cap = pytest.CaptureFixture[str]


def run(capsys: Cap, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys: Cap, *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, ""), err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.fixture
def started(capsys: Cap, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("STATEMACHINES_SECRET", SECRET)
    db = ["--db", sqlite_url, *APP]
    assert main([*db, "start", "order-lifecycle", "--id", "A1", "--context", CTX]) == 0
    capsys.readouterr()
    return db


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["token", "A1", "CANCEL", "--ttl", "10000000d"], "--ttl: duration '10000000d' is longer than"),
        (["token", "A1", "CANCEL", "--ttl", "36526d"], "--ttl: duration '36526d' is longer than"),
        (["token", "A1", "CANCEL", "--ttl", "banana"], "argument --ttl: bad duration 'banana'"),
        (["token", "A1", "CANCEL", "--ttl", "0s"], "argument --ttl: duration must be positive"),
        (["instances", "--limit", "-1"], "argument --limit: '-1' is out of range"),
        (["instances", "--offset", "-1"], "argument --offset: '-1' is out of range"),
        (["instances", "--offset", str(2**64)], "argument --offset"),
        (["instances", "--limit", "1e3"], "argument --limit: invalid int value"),
        (["worker", "--batch", "99999999999999999999"], "argument --batch"),
        (["worker", "--batch", "0"], "argument --batch: '0' is out of range"),
        (["worker", "--idle", "inf"], "argument --idle: 'inf' is out of range"),
        (["worker", "--idle", "nan"], "argument --idle: 'nan' is out of range"),
        (["worker", "--idle", "-1"], "argument --idle"),
        (["worker", "--idle", "soon"], "argument --idle: invalid number of seconds"),
        (["worker", "--max-idle", "nan"], "argument --max-idle"),
        (["worker", "--max-idle", "1e9"], "argument --max-idle"),
        (["worker", "--idle", "5", "--max-idle", "1"], "--max-idle 1 is shorter than --idle 5"),
    ],
)
def test_bad_number_or_duration_is_a_usage_error(
    capsys: Cap, started: list[str], argv: list[str], needle: str
) -> None:
    assert needle in usage_error(capsys, *started, *argv)


def test_largest_ttl_is_accepted(capsys: Cap, started: list[str]) -> None:
    code, out, err = run(capsys, *started, "token", "A1", "CANCEL", "--ttl", "3650d")
    assert (code, err) == (0, "") and out.strip().startswith("smt1.")


def test_token_json(capsys: Cap, started: list[str]) -> None:
    code, out, err = run(capsys, *started, "token", "A1", "CANCEL", "--ttl", "1h", "--json")
    assert (code, err) == (0, ""), err
    data = json.loads(out)
    assert (data["instance"], data["event"], data["ttl"]) == ("A1", "CANCEL", "1h")
    code, out, err = run(capsys, *started, "send-token", data["token"], "--json")
    assert (code, json.loads(out)["state"]) == (0, "cancelled"), err


def test_idle_longer_than_the_default_max_idle_is_fine(capsys: Cap, started: list[str]) -> None:
    code, _, err = run(capsys, *started, "worker", "--idle", "10", "--once")
    assert code == 0, err


def test_worker_without_definitions_refuses_to_start(capsys: Cap, sqlite_url: str) -> None:
    for extra in ([], ["--once"]):
        err = usage_error(capsys, "--db", sqlite_url, "worker", *extra)
        assert "no machines to serve" in err and "--app" in err and "--definition" in err


def test_worker_logs_the_machines_it_serves(
    capsys: Cap, started: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="statemachines.worker")
    code, _, err = run(capsys, *started, "worker", "--once")
    assert code == 0, err
    assert "serving machines: order-lifecycle" in caplog.messages


@pytest.mark.parametrize(
    "settings",
    [
        {"idle": math.nan},
        {"idle": math.inf},
        {"max_idle": math.nan},
        {"idle": 0},
        {"idle": 5, "max_idle": 1},
        {"batch": 0},
        {"batch": 1.5},
        {"batch": True},
    ],
)
def test_worker_refuses_settings_that_would_spin_or_crash(
    sqlite_url: str, settings: dict[str, float]
) -> None:
    engine = Engine(sqlite_url)
    try:
        with pytest.raises(InvalidArgument):
            worker.Worker(engine, **settings)  # type: ignore[arg-type]
    finally:
        engine.close()


def test_worker_logging_keeps_the_transitions_library_quiet() -> None:
    worker.configure_logging()
    assert logging.getLogger("transitions").getEffectiveLevel() == logging.WARNING


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STATEMACHINES_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "statemachines.cli", "--db", str(tmp_path / "w.db"), *APP, *argv],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_worker_log_has_no_callback_debug_lines(tmp_path: Path) -> None:
    """A real worker process runs an effect whose `done` transition has an action."""
    for argv in (
        ["start", "order-lifecycle", "--id", "W1", "--context", CTX],
        ["send", "W1", "PAYMENT_RECEIVED", "--payload", '{"amount": 40}'],
        ["send", "W1", "SHIPPED", "--payload", '{"carrier": "c", "tracking": "t"}'],
    ):
        assert _cli(tmp_path, *argv).returncode == 0
    proc = _cli(tmp_path, "worker", "--once")
    assert proc.returncode == 0, proc.stderr
    assert "serving machines: order-lifecycle" in proc.stderr
    assert "send_tracking_mail attempt 1 on W1: ok" in proc.stderr
    assert "Executed callback" not in proc.stderr and "transitions" not in proc.stderr


def test_importing_the_packages_leaves_the_root_logger_alone() -> None:
    code = (
        "import logging, statemachines, statemachines.cli, statemachines.worker, diagrams\n"
        "root = logging.getLogger()\n"
        "print(root.level, len(root.handlers))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == [str(logging.WARNING), "0"], proc.stderr


# Messages -----------------------------------------------------------------------------------------
def test_definition_problems_are_printed_one_per_line(capsys: Cap, sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("name: x\ninitial: a\nstates:\n  a: {'on': {GO: b, STOP: c}}\n")
    code, out, err = run(capsys, "--db", sqlite_url, "--definition", str(path), "instances")
    assert (code, out) == (1, "")
    head, *problems = err.splitlines()
    assert head.startswith("error: machine 'x' is invalid")
    assert len(problems) >= 2 and all(p.startswith("  - ") for p in problems), err
    assert any("unknown state 'b'" in p for p in problems) and any("unknown state 'c'" in p for p in problems)


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("bad.yaml", "name: x\ninitial: a\nstates:\n  a: {'on': [unclosed\n", "bad.yaml:5:1: not valid YAML"),
        ("bad.yaml", "name: x\n  initial: a\n", "bad.yaml:2:10: not valid YAML: mapping values"),
        ("bad.json", '{"name": "x",\n "initial": }', "bad.json:2:13: not valid JSON"),
    ],
)
def test_syntax_error_names_the_file_line_and_column(
    capsys: Cap, sqlite_url: str, tmp_path: Path, name: str, text: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    code, _, err = run(capsys, "--db", sqlite_url, "--definition", str(path), "instances")
    assert code == 1
    assert f"{tmp_path / where}" in err, err
