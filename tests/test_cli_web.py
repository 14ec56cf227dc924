"""`statemachines serve` (a real server in a subprocess) and `statemachines keys`."""

from __future__ import annotations

import http.cookiejar
import json
import re
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web service needs the [web] extra")
pytest.importorskip("uvicorn", reason="the web service needs the [web] extra")

from serve_support import kill_group, serve, stop

from statemachines.cli import main


def keys(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> tuple[int, str, str]:
    code = main(["--db", db, "keys", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_keys_create_prints_the_secret_once_and_list_never_does(capsys, sqlite_url: str) -> None:
    code, out, err = keys(capsys, sqlite_url, "create", "billing", "--scope", "write")
    secret = out.strip()
    assert code == 0 and secret.startswith("smk_") and "shown only now" in err
    code, listing, _ = keys(capsys, sqlite_url, "list")
    assert code == 0 and "billing" in listing and "write" in listing and secret not in listing


def test_keys_list_json_names_id_and_scopes(capsys, sqlite_url: str) -> None:
    keys(capsys, sqlite_url, "create", "ops", "--scope", "read", "--scope", "admin")
    _, out, _ = keys(capsys, sqlite_url, "list", "--json")
    [key] = json.loads(out)
    assert key["name"] == "ops" and key["scopes"] == ["admin", "read"] and "secret" not in key


def test_keys_revoke_removes_the_key(capsys, sqlite_url: str) -> None:
    _, out, _ = keys(capsys, sqlite_url, "create", "ops", "--json")
    key_id = json.loads(out)["id"]
    assert keys(capsys, sqlite_url, "revoke", key_id)[0] == 0
    assert keys(capsys, sqlite_url, "list", "--json")[1].strip() == "[]"


def test_keys_revoke_of_an_unknown_id_fails_in_one_line(capsys, sqlite_url: str) -> None:
    code, _, err = keys(capsys, sqlite_url, "revoke", "000000000000")
    assert code == 1 and err.startswith("error: no live key")


def test_keys_create_with_an_unknown_scope_is_a_usage_error(capsys, sqlite_url: str) -> None:
    code, _, err = keys(capsys, sqlite_url, "create", "ops", "--scope", "root")
    assert code == 2 and "invalid choice" in err


def request(port: int, path: str, body: object = None, key: str | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_without_keys_binds_loopback_says_so_and_answers_local_requests(tmp_path: Path) -> None:
    proc, port = serve(tmp_path, "--host", "0.0.0.0")
    try:
        context = {"employee": "dana", "amount": 42, "approver": "pat", "manager": "morgan"}
        status, body = request(
            port, "/api/instances", {"machine": "expense-approval", "id": "e1", "context": context}
        )
        assert status == 201 and body["state"] == "awaiting_approval"
    finally:
        code, err = stop(proc)
    assert "no API keys exist: binding to 127.0.0.1 only, not 0.0.0.0" in err
    assert code == 0


def test_serve_with_a_key_requires_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.db")
    assert main(["--db", db, "keys", "create", "svc", "--scope", "write"]) == 0
    secret = capsys.readouterr().out.strip()
    proc, port = serve(tmp_path, "--workers", "2")
    try:
        assert request(port, "/api/machines")[0] == 401
        status, body = request(port, "/api/machines", key=secret)
        assert status == 200 and body[0]["name"] == "expense-approval"
    finally:
        stop(proc)


@pytest.mark.parametrize(("flags", "logged"), [((), False), (("--access-log",), True)])
def test_serve_logs_a_line_per_request_only_with_access_log(
    tmp_path: Path, flags: tuple[str, ...], logged: bool
) -> None:
    """At the default `info` level uvicorn's access log would cost more CPU per request than the
    application's own work around `send`: it is off unless `--access-log` asks for it."""
    proc, port = serve(tmp_path, "--log-level", "info", *flags)
    try:
        assert request(port, "/healthz")[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        finally:
            kill_group(proc)
    assert "Application startup complete" in out + err  # the info level is on
    assert ('"GET /healthz HTTP/1.1" 200' in out + err) is logged


def test_serve_with_two_workers_keeps_a_console_login_valid_on_every_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without $STATEMACHINES_SESSION_SECRET, `serve` makes one secret for all its workers: a
    session cookie signed by one worker is accepted by the other (each request here is a new
    connection, so the kernel spreads them over both workers)."""
    db = str(tmp_path / "s.db")
    assert main(["--db", db, "keys", "create", "ops", "--scope", "read"]) == 0
    secret = capsys.readouterr().out.strip()
    proc, port = serve(tmp_path, "--workers", "2")
    base = f"http://127.0.0.1:{port}/console"
    try:
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = browser.open(f"{base}/login", timeout=10).read().decode()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        form = {"key": secret, "csrf": token.group(1), "next": "/console/machines"}
        landed = browser.open(f"{base}/login", data=urllib.parse.urlencode(form).encode(), timeout=10)
        assert landed.status == 200 and landed.url.endswith("/console/machines")
        for _ in range(16):
            r = browser.open(f"{base}/instances", timeout=10)
            assert r.status == 200 and r.url == f"{base}/instances", "the session was not recognised"
    finally:
        stop(proc)


def test_killing_a_served_group_ends_its_workers_so_waiting_on_it_cannot_hang(tmp_path: Path) -> None:
    """Killing only the supervisor of `serve --workers 2` leaves its workers holding the output
    pipes, and `communicate()` then waits forever: the tests' helpers kill the process group."""
    proc, _ = serve(tmp_path, "--workers", "2")
    kill_group(proc)
    proc.communicate(timeout=20)  # raised TimeoutExpired when only proc itself was killed
    assert proc.returncode == -signal.SIGKILL


EFFECT_APP = """
from statemachines import Effect, machine, state, transition

def check(ctx, call):
    return {"ok": True}

pinger = machine("pinger", initial="checking", states={
    "checking": state(effect=Effect(check), on={"done.check": "done"}),
    "done": state(final=True),
})
"""


def test_serve_with_worker_runs_effects_in_the_server_process(tmp_path: Path) -> None:
    (tmp_path / "pinger_app.py").write_text(EFFECT_APP)
    proc, port = serve(tmp_path, "--worker", app="pinger_app")
    try:
        assert request(port, "/api/instances", {"machine": "pinger", "id": "p1"})[0] == 201
        deadline = time.monotonic() + 20
        while request(port, "/api/instances/p1")[1]["state"] != "done":  # type: ignore[index]
            assert time.monotonic() < deadline, "the in-process worker never ran the effect"
            time.sleep(0.2)
    finally:
        code, err = stop(proc)
    assert code == 0 and "timer/effect worker" in err


def test_serve_with_an_unknown_app_fails_before_binding(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    assert main(["--db", sqlite_url, "serve", "--app", "no_such_module_here"]) == 2
    assert "no module named" in capsys.readouterr().err
