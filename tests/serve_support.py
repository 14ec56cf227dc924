"""Running `statemachines serve` in a subprocess for tests: start it, wait for it, stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = "statemachines.examples.expense_approval"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(tmp_path: Path, *args: str, app: str = APP) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STATEMACHINES_SECRET": "cli-web-tests-secret-0123"}
    env.pop("STATEMACHINES_SESSION_SECRET", None)  # as a first run would: the server makes one
    proc = subprocess.Popen(
        [sys.executable, "-m", "statemachines.cli", "serve", "--db", str(tmp_path / "s.db"), "--app", app,
         "--port", str(port), "--log-level", "warning", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: stop() can end the workers too
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    kill_group(proc)
    raise AssertionError(f"server did not come up: {proc.communicate()}")


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the server and its uvicorn workers (they share the process group it leads)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Ctrl-C the server and wait for it; whatever happens, no process of it outlives the test."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        kill_group(proc)  # workers a hung supervisor left behind; nothing if all exited
    return proc.returncode, err
