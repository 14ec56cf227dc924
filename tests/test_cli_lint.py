"""`statemachines lint` and `statemachines schema`: definitions only, no database touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statemachines.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "statemachines" / "examples"
BROKEN = """
from statemachines import machine, state

def noop(ctx, event):
    return None

loop = machine("loop", initial="start", states={
    "start": state(on={"LOOP": "ping", "END": "done"}),
    "ping": state(on={"NEXT": "pong"}),
    "pong": state(on={"NEXT": "ping"}),
    "done": state(final=True),
})
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STATEMACHINES_DATABASE_URL", raising=False)
    return tmp_path


def test_lint_of_a_sound_app_exits_0(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    assert main(["lint", "--app", "statemachines.examples.orders"]) == 0
    out = capsys.readouterr().out
    assert "machine 'order-lifecycle'" in out and "no problems found" in out
    assert list(in_tmp.iterdir()) == []  # no database created


def test_lint_reports_problems_and_exits_1(
    capsys: pytest.CaptureFixture[str], in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / "loopy.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(in_tmp))
    assert main(["lint", "--app", "loopy"]) == 1
    out = capsys.readouterr().out
    assert "no final state reachable from: ping" in out
    assert "no final state reachable from: pong" in out


def test_lint_reads_a_definition_file_without_its_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--definition", str(EXAMPLES / "orders.yaml")]) == 0
    assert "guards not evaluated" in capsys.readouterr().out


def test_lint_with_a_context_evaluates_guards(capsys: pytest.CaptureFixture[str]) -> None:
    context = json.dumps({"order_id": "A", "total": 40})
    payloads = json.dumps({"PAYMENT_RECEIVED": {"amount": 5}})
    code = main(
        ["lint", "--app", "statemachines.examples.orders", "--context", context, "--payloads", payloads]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "transition never taken: pending --PAYMENT_RECEIVED--> processing" in out


def test_lint_with_nothing_loaded_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint"]) == 2
    assert "nothing to check" in capsys.readouterr().err


def test_lint_of_an_unknown_machine_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "nope", "--app", "statemachines.examples.orders"]) == 2
    assert "'nope'" in capsys.readouterr().err


def test_lint_payloads_must_be_an_object(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["lint", "--app", "statemachines.examples.orders", "--context", "{}", "--payloads", "[1]"]
    assert main(args) == 2
    assert "--payloads must be a JSON object" in capsys.readouterr().err


def test_schema_prints_the_definition_json_schema(capsys: pytest.CaptureFixture[str], in_tmp: Path) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "statemachines definition"
    assert list(in_tmp.iterdir()) == []
