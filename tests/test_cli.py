"""The `statemachines` command line: in-process through `main([...])`, and one real subprocess.

Every error path must print exactly one line (`error: ...`) on stderr, no traceback, and exit
non-zero: 2 for usage mistakes, 1 for what the engine refuses or cannot do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from statemachines.cli import main
from statemachines.examples.orders import YAML_PATH

APP = ["--app", "statemachines.examples.orders"]
ROOT = Path(__file__).resolve().parent.parent
CTX = '{"order_id": "A1", "total": 40}'
Cap = pytest.CaptureFixture[str]


def run(capsys: Cap, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: Cap, *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, ""), err
    return out


def assert_one_line_error(code: int, out: str, err: str, expected_code: int) -> str:
    assert code == expected_code, (code, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def assert_error(code: int, out: str, err: str, expected_code: int) -> list[str]:
    """`error: headline` then the problems, one per line (`  - ...`); no traceback."""
    assert code == expected_code, (code, err)
    assert out == "" and "Traceback" not in err
    head, *rest = err.splitlines()
    assert head.startswith("error: ") and all(line.startswith("  - ") for line in rest), err
    return [head, *rest]


# The happy path on both databases ---------------------------------------------------------------
def test_order_lifecycle_through_the_cli(capsys: Cap, db_url: str) -> None:
    db = ["--db", db_url]
    out = ok(capsys, *db, *APP, "start", "order-lifecycle", "--id", "A1", "--context", CTX)
    assert re.search(r"^state\s+pending$", out, re.M)
    out = ok(capsys, *db, *APP, "send", "A1", "PAYMENT_RECEIVED", "--payload", '{"amount": 40}',
             "--key", "evt-1", "--actor", "stripe", "--json")  # fmt: skip
    snap = json.loads(out)
    assert (snap["state"], snap["version"], snap["context"]["paid"]) == ("processing", 2, 40.0)
    assert snap["context"]["log"][-1].startswith("warehouse asked")
    again = json.loads(ok(capsys, *db, *APP, "send", "A1", "PAYMENT_RECEIVED", "--payload", '{"amount": 40}',
                          "--key", "evt-1", "--json"))  # fmt: skip
    assert again["version"] == 2  # idempotent resend: nothing changed
    # options after the subcommand work too
    ok(capsys, "send", "A1", "OUT_OF_STOCK", *db, *APP)

    status = json.loads(ok(capsys, *db, "status", "A1", "--json"))
    assert status["state"] == "backorder"
    assert status["waiting_on"]["events"] == ["CANCEL", "RESTOCKED"]  # from the stored spec
    text = ok(capsys, *db, "status", "A1")
    assert re.search(r"^events\s+CANCEL, RESTOCKED$", text, re.M)

    history = json.loads(ok(capsys, *db, "history", "A1", "--json"))
    assert [r["seq"] for r in history] == [1, 2, 3]
    assert [r["event"] for r in history] == ["start", "PAYMENT_RECEIVED", "OUT_OF_STOCK"]
    assert history[1]["actor"] == "stripe" and history[2]["context"]["log"][-1].startswith("out of stock")

    table = ok(capsys, *db, "history", "A1").splitlines()
    assert table[0].split()[:3] == ["SEQ", "AT", "(UTC)"]
    assert "pending -> processing" in table[2] and "applied" in table[2]
    col = table[0].index("EVENT")  # aligned: every row's event starts under the header
    assert [line[col:].split()[0] for line in table[1:]] == ["start", "PAYMENT_RECEIVED", "OUT_OF_STOCK"]

    listed = json.loads(ok(capsys, *db, "instances", "--machine", "order-lifecycle", "--json"))
    assert [(s["id"], s["state"]) for s in listed] == [("A1", "backorder")]
    assert "A1" in ok(capsys, *db, "instances", "--state", "backorder", "--status", "active")
    assert ok(capsys, *db, "instances", "--state", "pending").strip().startswith("ID")

    out = ok(capsys, *db, "cancel", "A1", "--reason", "customer asked", "--json")
    assert json.loads(out)["status"] == "cancelled"
    last = json.loads(ok(capsys, *db, "history", "A1", "--json"))[-1]
    assert (last["outcome"], last["reason"]) == ("cancelled", "customer asked")


def test_rejected_event_is_an_error_and_recorded(capsys: Cap, db_url: str) -> None:
    ok(capsys, "--db", db_url, *APP, "start", "order-lifecycle", "--id", "A1", "--context", CTX)
    res = run(capsys, "--db", db_url, *APP, "send", "A1", "PAYMENT_RECEIVED", "--payload", '{"amount": 5}')
    line = assert_one_line_error(*res, 1)
    assert "guard" in line and "'pending'" in line and "PAYMENT_RECEIVED" in line
    history = json.loads(ok(capsys, "--db", db_url, "history", "A1", "--json"))
    assert history[-1]["outcome"] == "rejected"


def test_definition_file_with_registry_from_app(capsys: Cap, sqlite_url: str) -> None:
    registry = "statemachines.examples.orders:registry"
    defn = ["--db", sqlite_url, "--app", registry, "--definition", str(YAML_PATH)]
    ok(capsys, *defn, "start", "order-lifecycle", "--id", "Y1", "--context", '{"order_id": "Y1", "total": 9}')
    out = ok(capsys, *defn, "send", "Y1", "PAYMENT_RECEIVED", "--payload", '{"amount": 9}', "--json")
    assert json.loads(out)["state"] == "processing"


def test_definition_file_in_json_and_payload_from_file(capsys: Cap, sqlite_url: str, tmp_path: Path) -> None:
    spec = {"name": "door", "initial": "closed", "states": {"closed": {"on": {"OPEN": "open"}},
            "open": {"on": {"CLOSE": "closed"}}}}  # fmt: skip
    (tmp_path / "door.json").write_text(json.dumps(spec))
    (tmp_path / "payload.json").write_text('{"by": "me"}')
    defn = ["--db", sqlite_url, "--definition", str(tmp_path / "door.json")]
    ok(capsys, *defn, "start", "door", "--id", "d1")
    ok(capsys, *defn, "send", "d1", "OPEN", "--payload", f"@{tmp_path / 'payload.json'}")
    history = json.loads(ok(capsys, "--db", sqlite_url, "history", "d1", "--json"))
    assert history[-1]["payload"] == {"by": "me"}


def test_app_module_in_current_directory(
    capsys: Cap, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "myflows_cli_test.py").write_text(
        "from statemachines import machine, state\n"
        "a = machine('a', initial='x', states={'x': state(on={'GO': 'y'}), 'y': state(final=True)})\n"
        "b = machine('b', initial='x', states={'x': state(final=True)})\n"
        "FLOWS = {'a': a, 'b': b}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for app in ("myflows_cli_test", "myflows_cli_test:FLOWS"):
        ok(capsys, "--db", sqlite_url, "--app", app, "start", "b")
    ok(capsys, "--db", sqlite_url, "--app", "myflows_cli_test:a", "start", "a", "--id", "a1")
    out = ok(capsys, "--db", sqlite_url, "--app", "myflows_cli_test:a", "send", "a1", "GO", "--json")
    assert json.loads(out)["status"] == "completed"


# Error paths: one line, no traceback, the right exit status -------------------------------------
@pytest.fixture
def started(capsys: Cap, sqlite_url: str) -> str:
    ok(capsys, "--db", sqlite_url, *APP, "start", "order-lifecycle", "--id", "A1", "--context", CTX)
    return sqlite_url


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["send", "A1", "PAYMENT_RECEIVED", "--payload", '{"amount": }'], 2, "--payload is not valid JSON"),
        (["send", "A1", "PAYMENT_RECEIVED", "--payload", "@/no/such/file.json"], 2, "cannot read"),
        (["start", "order-lifecycle", "--context", "{oops"], 2, "--context is not valid JSON"),
        (["send", "nope", "PAYMENT_RECEIVED"], 1, "no instance with id 'nope'"),
        (["history", "nope"], 1, "no instance with id 'nope'"),
        (["status", "nope"], 1, "no instance with id 'nope'"),
        (["cancel", "nope"], 1, "no instance with id 'nope'"),
        (["start", "no-such-machine"], 1, "unknown machine 'no-such-machine'"),
        (["send", "A1", "NOPE"], 1, "'NOPE' is not allowed in state 'pending'"),
        (["send", "A1", "DELIVERED"], 1, "not allowed"),
        (["send", "A1", "PAYMENT_RECEIVED", "--payload", '{"amount": "lots"}'], 1, "payload of event"),
        (["start", "order-lifecycle", "--id", "A1", "--context", CTX], 1, "already exists"),
        (["start", "order-lifecycle", "--context", '{"total": -1}'], 1, "context of machine"),
        (["instances", "--limit", "-1"], 2, "argument --limit: '-1' is out of range"),
        (["instances", "--limit", "many"], 2, "invalid int value"),
        (["instances", "--status", "sleeping"], 2, "invalid choice"),
        (["frobnicate"], 2, "invalid choice"),
        ([], 2, "required"),
        (["send", "A1"], 2, "required"),
        (["diagram", "order-lifecycle", "-o", "out.txt"], 2, "unknown diagram format"),
        (["diagram", "-o", "out.svg"], 2, "NAME or --instance"),
        (["worker", "--batch", "0"], 2, "--batch"),
        (["diagram", "order-lifecycle", "-o", "x.svg", "--timeout", "nan"], 2, "argument --timeout"),
    ],
)
def test_error_paths(capsys: Cap, started: str, argv: list[str], code: int, needle: str) -> None:
    line = assert_one_line_error(*run(capsys, "--db", started, *APP, *argv), code)
    assert needle in line


def test_unknown_machine_without_definitions_says_how_to_load(capsys: Cap, started: str) -> None:
    line = assert_one_line_error(*run(capsys, "--db", started, "send", "A1", "CANCEL"), 1)
    assert "--app" in line and "--definition" in line


def test_closed_instance(capsys: Cap, started: str) -> None:
    ok(capsys, "--db", started, "cancel", "A1")
    for argv in (["cancel", "A1"], [*APP, "send", "A1", "CANCEL"]):
        assert "cancelled" in assert_one_line_error(*run(capsys, "--db", started, *argv), 1)


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:1/nothing", "mysql://x@localhost/y", "not a url://", "sqlite://"],
)
def test_unusable_database(capsys: Cap, url: str) -> None:
    assert_one_line_error(*run(capsys, "--db", url, "instances"), 1)


@pytest.mark.parametrize(
    ("app", "code", "needle"),
    [
        ("no_such_module_xyz", 2, "no module named"),
        ("statemachines.examples.orders:nothing", 2, "no attribute"),
        ("json:dumps", 2, "expected a Definition"),
        ("bad name!", 2, "expected module"),
    ],
)
def test_bad_app(capsys: Cap, sqlite_url: str, app: str, code: int, needle: str) -> None:
    line = assert_one_line_error(*run(capsys, "--db", sqlite_url, "--app", app, "instances"), code)
    assert needle in line


def test_app_that_fails_to_import(
    capsys: Cap, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_cli_app.py").write_text(
        "from statemachines import machine, state\n"
        "m = machine('m', initial='x', states={'x': state(on={'GO': 'nowhere'})})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    lines = assert_error(*run(capsys, "--db", sqlite_url, "--app", "broken_cli_app", "instances"), 1)
    assert "unknown state 'nowhere'" in "\n".join(lines)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: [unclosed\n", "not valid YAML"),
        ("name: x\ninitial: a\nstates:\n  a: {'on': {GO: b}}\n  c: {}\n", "unknown state 'b'"),
        ("name: x\ninitial: a\nstates:\n  a: {'on': {GO: {target: a, guard: who}}}\n", "'who'"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_broken_definition_file(capsys: Cap, sqlite_url: str, tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    lines = assert_error(*run(capsys, "--db", sqlite_url, "--definition", str(path), "instances"), 1)
    assert needle in "\n".join(lines)


def test_missing_definition_file(capsys: Cap, sqlite_url: str) -> None:
    res = run(capsys, "--db", sqlite_url, "--definition", "/no/such/file.yaml", "instances")
    assert "cannot read" in assert_error(*res, 1)[1]


def test_help_exits_zero(capsys: Cap) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "demo" in capsys.readouterr().out


# Demo, diagrams, worker --------------------------------------------------------------------------
def test_demo_twice_in_process(capsys: Cap, sqlite_url: str, tmp_path: Path) -> None:
    for _ in range(2):
        out = ok(capsys, "demo", "--db", sqlite_url)
        assert "rejected" in out and "shipped -> completed" in out
    assert len(json.loads(ok(capsys, "--db", sqlite_url, "instances", "--json"))) == 2
    assert len(list(tmp_path.glob("order-*-run.mmd"))) == 2
    assert (tmp_path / "order-lifecycle.mmd").read_text().startswith("stateDiagram-v2")


def test_demo_as_a_real_process(tmp_path: Path) -> None:
    exe = shutil.which("statemachines", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "statemachines.cli"]
    env = {k: v for k, v in os.environ.items() if k != "STATEMACHINES_DATABASE_URL"}
    db = tmp_path / "demo.db"
    proc = subprocess.run([*cmd, "demo", "--db", str(db)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(r"^\d+\s+\S+ \S+\s+DELIVERED\s+shipped -> completed\s+applied", proc.stdout, re.M)
    assert db.exists()
    fmt = ".svg" if shutil.which("dot") else ".dot"
    for suffix in (fmt, ".mmd"):
        assert (tmp_path / f"order-lifecycle{suffix}").exists()
        assert str(tmp_path / f"order-lifecycle{suffix}") in proc.stdout


@pytest.mark.parametrize("suffix", [".mmd", ".dot"])
def test_diagram_command(capsys: Cap, started: str, tmp_path: Path, suffix: str) -> None:
    definition, run_file = tmp_path / f"def{suffix}", tmp_path / f"run{suffix}"
    # from the database alone: no --app
    assert ok(capsys, "--db", started, "diagram", "order-lifecycle", "-o", str(definition)).strip()
    ok(capsys, "--db", started, "diagram", "--instance", "A1", "-o", str(run_file))
    assert definition.read_text().strip() and run_file.read_text().strip()
    assert "pending" in definition.read_text()
    res = run(capsys, "--db", started, "diagram", "other", "--instance", "A1", "-o", str(run_file))
    assert "belongs to machine" in assert_one_line_error(*res, 2)


def test_diagram_svg(capsys: Cap, started: str, tmp_path: Path, needs_dot: str) -> None:
    ok(capsys, "--db", started, "diagram", "--instance", "A1", "-o", str(tmp_path / "run.svg"))
    assert "<svg" in (tmp_path / "run.svg").read_text()


def test_diagram_of_unknown_machine(capsys: Cap, started: str, tmp_path: Path) -> None:
    res = run(capsys, "--db", started, "diagram", "nope", "-o", str(tmp_path / "x.dot"))
    assert "unknown machine 'nope'" in assert_one_line_error(*res, 1)


def test_diagram_timeout_is_one_line_error(
    capsys: Cap, started: str, tmp_path: Path, needs_dot: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def too_slow(argv: list[str], **kwargs: object) -> None:
        assert kwargs["timeout"] == 2.5
        raise subprocess.TimeoutExpired(argv, 2.5)

    monkeypatch.setattr(subprocess, "run", too_slow)
    out = tmp_path / "x.svg"
    res = run(capsys, "--db", started, "diagram", "order-lifecycle", "-o", str(out), "--timeout", "2.5")
    assert "did not finish within 2.5s" in assert_one_line_error(*res, 1)
    assert not out.exists()


def test_worker_once(capsys: Cap, started: str) -> None:
    ok(capsys, "--db", started, *APP, "send", "A1", "PAYMENT_RECEIVED", "--payload", '{"amount": 40}')
    shipment = '{"carrier": "c", "tracking": "t"}'
    ok(capsys, "--db", started, *APP, "send", "A1", "SHIPPED", "--payload", shipment)
    code, _, _ = run(capsys, "--db", started, *APP, "worker", "--once")
    assert code == 0
    log = json.loads(ok(capsys, "--db", started, "history", "A1", "--json"))[-1]["context"]["log"]
    assert log[-1] == "tracking mail sent"


# The README -------------------------------------------------------------------------------------
def test_readme_first_section_and_quick_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "README.md").read_text()
    first = text.split("\n## ", 2)[1]
    assert "pip install -e . && statemachines demo" in first
    assert "pip install -e '.[test]' && pytest -q" in first
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_without_graphviz(
    capsys: Cap, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `dot` anywhere
    out = ok(capsys, "demo", "--db", sqlite_url)
    assert (tmp_path / "order-lifecycle.dot").exists() and (tmp_path / "order-lifecycle.mmd").exists()
    assert "install graphviz" in out.lower()
    iid = json.loads(ok(capsys, "--db", sqlite_url, "instances", "--json"))[0]["id"]
    res = run(capsys, "--db", sqlite_url, "diagram", "--instance", iid, "-o", str(tmp_path / "run.svg"))
    assert "graphviz" in assert_one_line_error(*res, 1).lower()
    ok(capsys, "--db", sqlite_url, "diagram", "--instance", iid, "-o", str(tmp_path / "run.dot"))
    assert "digraph {" in (tmp_path / "run.dot").read_text()


def test_token_then_send_token_applies_the_event_once(
    capsys: Cap, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEMACHINES_SECRET", "cli-test-secret-0123456789")
    db = ["--db", sqlite_url]
    ok(capsys, *db, *APP, "start", "order-lifecycle", "--id", "T1", "--context", CTX)
    token = ok(capsys, *db, *APP, "token", "T1", "CANCEL", "--ttl", "1h").strip()
    out = json.loads(ok(capsys, *db, *APP, "send-token", token, "--json"))
    assert (out["state"], out["status"]) == ("cancelled", "completed")
    line = assert_one_line_error(*run(capsys, *db, *APP, "send-token", token), expected_code=1)
    assert "callback token rejected" in line


def test_token_without_a_secret_says_how_to_configure_one(
    capsys: Cap, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATEMACHINES_SECRET", raising=False)
    db = ["--db", sqlite_url]
    ok(capsys, *db, *APP, "start", "order-lifecycle", "--id", "T2", "--context", CTX)
    line = assert_one_line_error(*run(capsys, *db, *APP, "token", "T2", "CANCEL"), expected_code=1)
    assert "STATEMACHINES_SECRET" in line


def test_retry_of_an_active_instance_is_refused_in_one_line(capsys: Cap, sqlite_url: str) -> None:
    db = ["--db", sqlite_url]
    ok(capsys, *db, *APP, "start", "order-lifecycle", "--id", "R1", "--context", CTX)
    line = assert_one_line_error(*run(capsys, *db, *APP, "retry", "R1"), expected_code=1)
    assert "not failed" in line
