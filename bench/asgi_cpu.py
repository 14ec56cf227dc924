"""CPU per `POST /api/instances/{id}/events` inside the application, without a server or network.

Why: `bench.http` measures the whole server (uvicorn, the event loop, the kernel's TCP path and
the application) on a machine shared with other jobs, where single figures swing by 2x. This
drives `create_app(engine)` directly with raw ASGI messages (no uvicorn, no sockets) from
`--clients` concurrent coroutines on one uvloop loop, and reports the process's CPU time (user +
system, every thread: the event loop and the send threads) per request, next to `Engine.send`
alone in the same process: the difference is what the web layer costs, the figure to cut.

    python -m bench.asgi_cpu [--db sqlite|postgresql] [--clients 16] [--requests 4000]
                             [--rounds 3] [--profile]

`--profile` prints a cProfile of the event loop's thread (the send threads are not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import tempfile
import time
from typing import Any

from bench.common import PG_URL, pg_fresh_schema
from bench.http import toggle
from statemachines import Engine

BODY = b'{"event": "FLIP"}'


def _cpu() -> float:
    return time.process_time()  # the whole process: every thread's user + system time


def _headers(secret: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"host", b"127.0.0.1"), (b"authorization", f"Bearer {secret}".encode()),
        (b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode()),
    ]  # fmt: skip


async def _post(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http",
        "method": "POST", "root_path": "", "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": headers, "state": {},
    }  # fmt: skip
    pending = [{"type": "http.request", "body": BODY, "more_body": False}]
    status = 0

    async def receive() -> dict[str, Any]:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def measure(url: str, sync: str, clients: int, requests: int, profile: bool) -> dict[str, float]:
    """One round: µs of process CPU per request through the app, and per `Engine.send` alone."""
    import uvloop

    from statemachines.web import create_app
    from statemachines.web.keys import KeyStore

    engine = Engine(url, sqlite_synchronous=sync)
    engine.register(toggle)
    _, secret = KeyStore(engine).create("bench", ["write"])
    for i in range(clients):
        engine.start("toggle", instance_id=f"c{i}")
    engine.start("toggle", instance_id="direct")
    app = create_app(engine)
    headers = _headers(secret)
    result: dict[str, float] = {}
    profiler = cProfile.Profile() if profile else None

    async def client(i: int, count: int) -> None:
        for _ in range(count):
            if await _post(app, f"/api/instances/c{i}/events", headers) != 200:
                raise RuntimeError("request failed")

    async def run() -> None:
        await asyncio.gather(*(client(i, 20) for i in range(clients)))  # warm-up
        cpu0, t0 = _cpu(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        await asyncio.gather(*(client(i, requests // clients) for i in range(clients)))
        if profiler is not None:
            profiler.disable()
        done = requests // clients * clients
        result["app_us"] = (_cpu() - cpu0) / done * 1e6
        result["rps"] = done / (time.perf_counter() - t0)

    try:
        uvloop.run(run())
        n = max(500, requests // 4)
        cpu0 = _cpu()
        for _ in range(n):
            engine.send("direct", "FLIP")
        result["send_us"] = (_cpu() - cpu0) / n * 1e6
    finally:
        engine.close()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile of the event loop's thread")
    args = parser.parse_args(argv)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-asgi-") as tmp:
        for r in range(args.rounds):
            if args.db == "sqlite":
                url, sync = f"sqlite:///{os.path.join(tmp, f'r{r}.db')}", "NORMAL"
            else:
                url, sync = pg_fresh_schema(PG_URL, f"bench_asgi_{r}"), "FULL"
            rounds.append(measure(url, sync, args.clients, args.requests, args.profile and r == 0))
            last = rounds[-1]
            print(
                f"round {r + 1}: app {last['app_us']:.0f} us CPU/request ({last['rps']:.0f} requests/s),"
                f" Engine.send alone {last['send_us']:.0f} us, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    app_us = statistics.median(x["app_us"] for x in rounds)
    send_us = statistics.median(x["send_us"] for x in rounds)
    print(
        f"\n{args.db}, {args.clients} concurrent clients, medians of {args.rounds}: {app_us:.0f} us of CPU"
        f" per request through the app, {send_us:.0f} us per Engine.send alone: the web layer"
        f" ~{app_us - send_us:.0f} us"
    )


if __name__ == "__main__":
    main()
