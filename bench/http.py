"""HTTP vs in-process `send`: events per second and p50/p99 latency with 16 concurrent clients.

One run per backend (SQLite with synchronous=NORMAL, PostgreSQL), side by side in the same run:

- in-process: 16 threads, each sending to its own instance through one `Engine`;
- HTTP: `statemachines serve --workers 2` in a subprocess, 16 concurrent keep-alive clients
  POSTing `/api/instances/{id}/events`, each to its own instance, with a bearer key. The clients
  are coroutines on one asyncio loop (uvloop when installed) writing raw HTTP/1.1 (`--client
  asyncio`, the default), or threads with `http.client` (`--client threads`, the earlier load
  generator: it took about twice the CPU).

The machine flips between two states, so an instance takes any number of events. The load
generator shares the machine's cores with the server (2 cores here): its CPU time and the
server's (its worker processes, read from /proc during the timed window) are reported, in cores
and per request, since together they bound what the HTTP figure can reach.

    python -m bench.http [--seconds 10] [--clients 16] [--workers 2] [--only sqlite|postgresql]
                         [--rounds 1] [--client asyncio|threads]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import PG_URL, pg_fresh_schema
from statemachines import Engine, machine, state

ROOT = Path(__file__).resolve().parents[1]

toggle = machine(
    "toggle",
    initial="off",
    states={"off": state(on={"FLIP": "on"}), "on": state(on={"FLIP": "off"})},
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(latencies: list[float], seconds: float) -> dict[str, float]:
    return {
        "events": len(latencies),
        "eps": len(latencies) / seconds,
        "p50": statistics.median(latencies) * 1000,
        "p99": _percentile(latencies, 0.99) * 1000,
    }


def in_process(url: str, sync: str, clients: int, seconds: float) -> dict[str, float]:
    engine = Engine(url, sqlite_synchronous=sync)
    engine.register(toggle)
    for i in range(clients):
        engine.start("toggle", instance_id=f"inproc-{i}")
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def run(i: int) -> None:
        mine = latencies[i]
        while (t0 := time.perf_counter()) < stop:
            engine.send(f"inproc-{i}", "FLIP")
            mine.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    engine.close()
    return _summary([x for xs in latencies for x in xs], elapsed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_key(url: str) -> str:
    from statemachines.web.keys import KeyStore

    engine = Engine(url)
    try:
        return KeyStore(engine).create("bench", ["write"])[1]
    finally:
        engine.close()


def over_http(
    url: str, sync: str, clients: int, seconds: float, workers: int, client: str = "asyncio"
) -> dict[str, float]:
    import httpx

    key = _make_key(url)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "statemachines.cli", "serve", "--db", url, "--app", "bench.http:toggle",
         "--port", str(port), "--workers", str(workers), "--log-level", "warning",
         "--sqlite-synchronous", sync],
        cwd=ROOT, env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        with httpx.Client(base_url=base, headers=headers) as c:
            for i in range(clients):
                c.post("/api/instances", json={"machine": "toggle", "id": f"http-{i}"}).raise_for_status()
        pids = _worker_pids(server.pid, workers)
        cpu0 = _cpu_seconds(pids)
        drive = _drive_asyncio if client == "asyncio" else _drive
        result = drive(port, headers, clients, seconds)
        result["server_cpu"] = (_cpu_seconds(pids) - cpu0) / result["elapsed"]
        return result
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _drive(port: int, headers: dict[str, str], clients: int, seconds: float) -> dict[str, float]:
    """16 threads, each with its own keep-alive connection (`http.client`: the lightest client
    at hand, so that the load generator takes as little of the 2 cores as possible)."""
    import http.client

    body = b'{"event": "FLIP"}'
    hdrs = {**headers, "Content-Type": "application/json"}
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def post(i: int) -> int:
        conns[i].request("POST", f"/api/instances/http-{i}/events", body=body, headers=hdrs)
        response = conns[i].getresponse()
        response.read()
        return response.status

    for i in range(clients):  # warm-up: connections opened, the key verified and cached
        post(i)
    stop = time.perf_counter() + seconds

    def run(i: int) -> None:
        mine = latencies[i]
        while (t0 := time.perf_counter()) < stop:
            if post(i) != 200:
                errors[i] += 1
            mine.append(time.perf_counter() - t0)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for c in conns:
        c.close()
    result = _summary([x for xs in latencies for x in xs], elapsed)
    result["elapsed"] = elapsed
    result["errors"] = sum(errors)
    result["client_cpu"] = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / elapsed
    return result


def _worker_pids(server: int, workers: int) -> list[int]:
    """The processes serving requests: uvicorn's workers (children of its supervisor), or the
    server itself when it runs alone."""
    if workers == 1:
        return [server]
    deadline = time.monotonic() + 30
    while True:
        children = Path(f"/proc/{server}/task/{server}/children").read_text().split()
        if len(children) >= workers or time.monotonic() > deadline:
            return [int(c) for c in children] or [server]
        time.sleep(0.1)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick


def _drive_asyncio(port: int, headers: dict[str, str], clients: int, seconds: float) -> dict[str, float]:
    """Each client a coroutine with its own keep-alive connection, all on one event loop, writing
    the request bytes prepared once and reading the response by its Content-Length: far less
    CPU per request than a thread per client with `http.client`."""
    import asyncio

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the [web] extra
        uvloop = None
    body = b'{"event": "FLIP"}'
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def request(i: int) -> bytes:
        return (
            f"POST /api/instances/http-{i}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
        writer.write(raw)
        header = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in header.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        return int(header[9:12])

    async def client(i: int, started: asyncio.Event, stop: list[float]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = request(i)
        await post(reader, writer, raw)  # warm-up: the connection open, the key verified and cached
        await started.wait()
        mine = latencies[i]
        while (t0 := time.perf_counter()) < stop[0]:
            if await post(reader, writer, raw) != 200:
                errors[i] += 1
            mine.append(time.perf_counter() - t0)
        writer.close()

    timing: dict[str, float] = {}

    async def run() -> None:
        started = asyncio.Event()
        stop = [0.0]
        tasks = [asyncio.create_task(client(i, started, stop)) for i in range(clients)]
        await asyncio.sleep(0.5)  # every connection open and warmed up
        timing["cpu0"] = _self_cpu()
        timing["began"] = time.perf_counter()
        stop[0] = timing["began"] + seconds
        started.set()
        await asyncio.gather(*tasks)
        timing["elapsed"] = time.perf_counter() - timing["began"]
        timing["cpu1"] = _self_cpu()

    if uvloop is not None:
        uvloop.run(run())
    else:
        asyncio.run(run())
    elapsed = timing["elapsed"]
    result = _summary([x for xs in latencies for x in xs], elapsed)
    result["elapsed"] = elapsed
    result["errors"] = sum(errors)
    result["client_cpu"] = (timing["cpu1"] - timing["cpu0"]) / elapsed
    return result


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _median(runs: list[dict[str, float]], field: str) -> float:
    return statistics.median(r[field] for r in runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--rounds", type=int, default=1, help="rounds per backend; medians reported")
    parser.add_argument("--client", choices=("asyncio", "threads"), default="asyncio")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        targets = []
        if args.only in (None, "sqlite"):
            targets.append(("SQLite NORMAL", lambda n: f"sqlite:///{tmp}/{n}.db", "NORMAL"))
        if args.only in (None, "postgresql"):
            targets.append(("PostgreSQL", lambda n: pg_fresh_schema(PG_URL, f"bench_http_{n}"), "FULL"))
        for label, url_for, sync in targets:
            locals_, https = [], []
            for r in range(args.rounds):  # side by side: each round measures both paths
                locals_.append(in_process(url_for(f"inproc{r}"), sync, args.clients, args.seconds))
                url = url_for(f"http{r}")
                https.append(over_http(url, sync, args.clients, args.seconds, args.workers, args.client))
                print(
                    f"{label} round {r + 1}: in-process {locals_[-1]['eps']:.0f}/s,"
                    f" HTTP {https[-1]['eps']:.0f}/s (p99 {https[-1]['p99']:.1f} ms),"
                    f" load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
            rows.append((label, locals_, https))
    print(
        f"\n{args.clients} concurrent clients, {args.seconds:g} s each, HTTP: {args.workers} uvicorn workers,"
        f" {args.client} client; medians of {args.rounds} round(s); load average {load_before:.1f} before,"
        f" {os.getloadavg()[0]:.1f} after\n"
    )
    print("| backend | path | events/s | p50 ms | p99 ms | HTTP / in-process |")
    print("|---|---|---:|---:|---:|---:|")
    for label, local, http in rows:
        figures = f"{_median(local, 'eps'):.0f} | {_median(local, 'p50'):.2f} | {_median(local, 'p99'):.2f}"
        ratio = statistics.median(h["eps"] / lo["eps"] for h, lo in zip(http, local, strict=True))
        print(f"| {label} | in-process `send` (threads) | {figures} | |")
        print(
            f"| {label} | HTTP `POST .../events` | {_median(http, 'eps'):.0f} | {_median(http, 'p50'):.2f}"
            f" | {_median(http, 'p99'):.2f} | {ratio:.0%} |"
        )
    for label, _, http in rows:
        server_us = _median([{"x": h["server_cpu"] / h["eps"] * 1e6} for h in http], "x")
        client_us = _median([{"x": h["client_cpu"] / h["eps"] * 1e6} for h in http], "x")
        print(
            f"\n{label}: HTTP errors {sum(h['errors'] for h in http):.0f}; server CPU"
            f" {_median(http, 'server_cpu'):.2f} cores ({server_us:.0f} us/request), load generator CPU"
            f" {_median(http, 'client_cpu'):.2f} cores ({client_us:.0f} us/request)"
        )


if __name__ == "__main__":
    main()
