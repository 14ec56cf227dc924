"""HTTP vs in-process `send`: events per second and p50/p99 latency with 16 concurrent clients.

One run per backend (SQLite with synchronous=NORMAL, PostgreSQL), side by side in the same run:

- in-process: 16 threads, each sending to its own instance through one `Engine`;
- HTTP: `statemachines serve --workers 2` in a subprocess, 16 concurrent keep-alive clients
  (threads with `http.client`, in this process) POSTing `/api/instances/{id}/events`, each to
  its own instance, with a bearer key.

The machine flips between two states, so an instance takes any number of events. The load
generator shares the machine's cores with the server (2 cores here): its own CPU time is
reported, since it limits what the HTTP figure can reach.

    python -m bench.http [--seconds 10] [--clients 16] [--workers 2] [--only sqlite|postgresql]
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


def over_http(url: str, sync: str, clients: int, seconds: float, workers: int) -> dict[str, float]:
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
        return _drive(port, headers, clients, seconds)
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
    result["errors"] = sum(errors)
    result["client_cpu"] = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / elapsed
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        targets = []
        if args.only in (None, "sqlite"):
            targets.append(("SQLite NORMAL", lambda n: f"sqlite:///{tmp}/{n}.db", "NORMAL"))
        if args.only in (None, "postgresql"):
            targets.append(("PostgreSQL", lambda n: pg_fresh_schema(PG_URL, f"bench_http_{n}"), "FULL"))
        for label, url_for, sync in targets:
            local = in_process(url_for("inproc"), sync, args.clients, args.seconds)
            http = over_http(url_for("http"), sync, args.clients, args.seconds, args.workers)
            rows.append((label, local, http))
    print(
        f"{args.clients} concurrent clients, {args.seconds:g} s each, HTTP: {args.workers} uvicorn workers\n"
    )
    print("| backend | path | events/s | p50 ms | p99 ms | HTTP / in-process |")
    print("|---|---|---:|---:|---:|---:|")
    for label, local, http in rows:
        figures = f"{local['eps']:.0f} | {local['p50']:.2f} | {local['p99']:.2f}"
        print(f"| {label} | in-process `send` (threads) | {figures} | |")
        print(
            f"| {label} | HTTP `POST .../events` | {http['eps']:.0f} | {http['p50']:.2f} | {http['p99']:.2f}"
            f" | {http['eps'] / local['eps']:.0%} |"
        )
    for label, _, http in rows:
        print(
            f"\n{label}: HTTP errors {http['errors']:.0f}; load generator CPU {http['client_cpu']:.2f} cores"
        )


if __name__ == "__main__":
    main()
