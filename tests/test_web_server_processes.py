"""`serve --workers N` on Linux: a listening socket per server process, connections spread over
all of them, a dead process replaced, a failed start or a taken port a clear stop."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web service needs the [web] extra")
pytest.importorskip("uvicorn", reason="the web service needs the [web] extra")

from serve_support import APP, free_port, kill_group, serve, stop

from statemachines.cli import main
from statemachines.web.server_processes import ServerProcesses, balances_connections, bind_sockets

pytestmark = pytest.mark.skipif(not balances_connections(), reason="SO_REUSEPORT balancing is Linux's")


def children(pid: int) -> list[int]:
    """The server processes `serve` started (not multiprocessing's resource tracker)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
        except OSError:  # gone meanwhile
            continue
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tcp_sockets(port: int, state: str) -> set[int]:
    """Inodes of the IPv4 TCP sockets whose local port is `port`, in `state` ('0A' listen, '01'
    established), from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            found.add(int(fields[9]))
    return found


def wait_for(condition, what: str, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_bound_sockets_share_one_port_each_with_reuseport() -> None:
    sockets = bind_sockets("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in sockets}
        assert len(sockets) == 3 and len(ports) == 1
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in sockets)
    finally:
        for s in sockets:
            s.close()


def test_each_server_process_listens_on_a_socket_of_its_own(tmp_path: Path) -> None:
    proc, port = serve(tmp_path, "--workers", "2")
    try:
        wait_for(lambda: len(children(proc.pid)) == 2, "two server processes")
        listening = tcp_sockets(port, "0A")
        owned = [socket_inodes(pid) & listening for pid in children(proc.pid)]
        assert len(listening) == 2 and all(len(mine) == 1 for mine in owned) and owned[0] != owned[1]
    finally:
        stop(proc)


def test_keep_alive_connections_are_spread_over_the_server_processes(tmp_path: Path) -> None:
    """16 connections opened at once, as a client's connection pool does: with one shared socket
    the first process to wake could take them all; with a socket each the kernel hashes them over
    both (all 16 on one: a chance of 2 in 65,536)."""
    proc, port = serve(tmp_path, "--workers", "2")
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(16)]
    try:
        for c in connections:
            c.request("GET", "/healthz")
            response = c.getresponse()
            assert response.status == 200 and response.read()
        established = tcp_sockets(port, "01")
        per_process = [len(socket_inodes(pid) & established) for pid in children(proc.pid)]
        assert sum(per_process) == 16 and all(n > 0 for n in per_process), per_process
    finally:
        for c in connections:
            c.close()
        stop(proc)


def test_a_server_process_that_dies_is_replaced_and_serving_goes_on(tmp_path: Path) -> None:
    proc, port = serve(tmp_path, "--workers", "2")
    try:
        wait_for(lambda: len(children(proc.pid)) == 2, "two server processes")
        victim = children(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in children(proc.pid) and len(children(proc.pid)) == 2, "a replacement")
        for _ in range(8):  # new connections reach both sockets, the new process's included
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/healthz")
            assert c.getresponse().status == 200
            c.close()
    finally:
        code, err = stop(proc)
    assert code == 0 and "died" in err


def test_sigterm_stops_every_server_process_and_exits_0(tmp_path: Path) -> None:
    proc, _ = serve(tmp_path, "--workers", "2")
    wait_for(lambda: len(children(proc.pid)) == 2, "two server processes")
    workers = children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    finally:
        kill_group(proc)
    assert proc.returncode == 0
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and _not_zombie(pid)]


def test_killing_the_supervisor_alone_ends_its_server_processes(tmp_path: Path) -> None:
    """SIGKILL to the supervisor only (not its process group): the kernel tells each server
    process, which shuts down, so nothing keeps the port."""
    proc, port = serve(tmp_path, "--workers", "2")
    try:
        wait_for(lambda: len(children(proc.pid)) == 2, "two server processes")
        workers = children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: not any(_not_zombie(pid) for pid in workers), "the orphans to end")
        assert not tcp_sockets(port, "0A")
    finally:
        kill_group(proc)
        proc.communicate(timeout=10)


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_server_process_that_cannot_start_stops_the_supervisor_with_status_1() -> None:
    """uvicorn exits 3 when the app cannot load: a new process would fail the same way."""
    import uvicorn

    config = uvicorn.Config("no_such_module_here:app", log_level="critical")
    sockets = bind_sockets("127.0.0.1", 0, 2)
    try:
        assert ServerProcesses(config, sockets).run() == 1
    finally:
        for s in sockets:
            s.close()


def test_a_port_already_taken_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        args = ["serve", "--app", APP, "--port", str(port), "--workers", "2"]
        code = main(["--db", str(tmp_path / "s.db"), *args])
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err

