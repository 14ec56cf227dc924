"""`serve --workers N` on Linux: N server processes, each on a listening socket of its own.

Why: uvicorn's own `--workers` hands one listening socket to every process, and whichever process
wakes first accepts every connection that is waiting. Clients that keep a few connections open
(a service's connection pool, a load balancer's upstream pool, the 16 clients of bench/http.py)
can then all land on one process while the others sit idle: measured on the 2-core test machine,
the 16 connections went 16/0 in about one round of three, and those rounds carried 2,250-2,430
events/s against 3,200-3,600 when both processes had some (bench/RESULTS.md section 23). With
`SO_REUSEPORT` every process listens on a socket of its own bound to the same port, and the Linux
kernel spreads new connections over the sockets by a hash of their addresses, so no process is
left without work.

`ServerProcesses` is the small supervisor that this needs: it binds the sockets (TCP, so each
accepted connection gets `TCP_NODELAY`), starts one process per socket running uvicorn's `Server`
on it, and then

- replaces a process that dies (at most once a second per socket), as uvicorn's supervisor does;
- stops everything when a process fails while starting (uvicorn's exit status 3: the app, the
  database or the address is wrong, and a new process would fail the same way), exit status 1;
- on SIGINT or SIGTERM asks every process to shut down gracefully (SIGTERM), waits for them, and
  kills any that is still there after `GRACE_SECONDS`;
- if the supervisor itself is killed, the kernel sends each process SIGTERM (`PR_SET_PDEATHSIG`),
  so no orphan keeps the port.

Elsewhere (no `SO_REUSEPORT`, or a kernel that does not balance with it, such as macOS) `serve`
keeps uvicorn's supervisor on one shared socket.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from contextlib import suppress
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

logger = logging.getLogger("uvicorn.error")

#: uvicorn's exit status for a server that could not start (`uvicorn.config.STARTUP_FAILURE`).
STARTUP_FAILURE = 3
#: prctl(2) option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1
#: How long a process may take to shut down gracefully before it is killed.
GRACE_SECONDS = 30.0
#: A socket's process is replaced at most this often (a process that keeps dying is not a busy loop).
RESTART_INTERVAL = 1.0


def balances_connections() -> bool:
    """Whether this platform spreads connections over sockets sharing a port (Linux does)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind_sockets(host: str, port: int, count: int, backlog: int = 2048) -> list[socket.socket]:
    """`count` listening TCP sockets on one address; with port 0, all on the port the first got."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.set_inheritable(True)
            address = sock.getsockname()  # port 0: the others join the port the first one got
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _serve_on(config: Any, sock: socket.socket, parent: int) -> None:
    """A server process: uvicorn's `Server` on its own socket (the config arrives unpickled,
    without the logging its constructor set up in the parent)."""
    import uvicorn

    _end_with(parent)
    config.configure_logging()
    with suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])


def _end_with(parent: int) -> None:
    """Ask the kernel for a SIGTERM (a graceful shutdown) when the supervisor dies, even by
    SIGKILL: an orphaned server would go on holding the port with nobody to stop it."""
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


class ServerProcesses:
    """One uvicorn server process per socket, kept running until SIGINT or SIGTERM."""

    def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
        self.config = config
        self.sockets = sockets
        self._spawn = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess] = []
        self._started_at: list[float] = []
        self._stop = threading.Event()

    def run(self) -> int:
        """Serve until asked to stop: 0, or 1 when a process failed to start."""
        previous = {sig: signal.signal(sig, self._ask_to_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for index in range(len(self.sockets)):
                self._processes.append(self._start(index))
                self._started_at.append(time.monotonic())
            failed = False
            while not self._stop.wait(0.25):
                failed = not self._replace_the_dead()
                if failed:
                    break
            self._stop_all()
            return 1 if failed else 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _ask_to_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _start(self, index: int) -> BaseProcess:
        process = self._spawn.Process(
            target=_serve_on, args=(self.config, self.sockets[index], os.getpid()), daemon=False
        )
        process.start()
        return process

    def _replace_the_dead(self) -> bool:
        """Start a new process for each socket whose process died; False if one failed to start."""
        for index, process in enumerate(self._processes):
            if process.is_alive():
                continue
            if process.exitcode == STARTUP_FAILURE:
                logger.error("server process [%s] failed to start; stopping", process.pid)
                return False
            if time.monotonic() - self._started_at[index] < RESTART_INTERVAL or self._stop.is_set():
                continue
            logger.warning(
                "server process [%s] died (exit status %s); starting another", process.pid, process.exitcode
            )
            self._processes[index] = self._start(index)
            self._started_at[index] = time.monotonic()
        return True

    def _stop_all(self) -> None:
        for process in self._processes:
            if process.is_alive() and process.pid is not None:
                with suppress(ProcessLookupError):
                    process.terminate()  # SIGTERM: uvicorn shuts down gracefully
        deadline = time.monotonic() + GRACE_SECONDS
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
