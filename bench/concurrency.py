"""Issue 6, item 4: `send` throughput on PostgreSQL with 1, 2, 4, 8 processes, and contention.

*Distinct instances*: each process runs the part-1 workload (`bench.workload`: starts and
events of the order lifecycle, 200 live orders) on its own ids, as fast as it can, for a fixed
window that starts for all at once; events/s is every process's operations over the window.
*One instance*: 4 processes send `BUMP` (an internal transition whose action increments a
counter in the context) to the same instance; row locks serialise them. No lost update means:
the counter, `version - 1` and the number of history records all equal the sends that returned.
Configurations are interleaved within each round (rotated), medians and paired ratios reported.

    python -m bench.concurrency [--quick]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import psutil
import psycopg

from bench import procs, workload
from bench.common import (
    PG_URL,
    Check,
    Section,
    Stopwatch,
    loadavg,
    median,
    pg_drop_schema,
    pg_fresh_schema,
    table,
)
from bench.contenders.engine import build_definition
from statemachines import Engine, machine, state, transition

SCHEMA = "bench_concurrency"
PROCESSES = (1, 2, 4, 8)
SHARED = 4
SPEEDUP_TARGET = 2.5


def bump(ctx: dict[str, Any], event: Any) -> None:
    ctx["n"] = ctx.get("n", 0) + 1


COUNTER = machine(
    "bench-counter", initial="open", states={"open": state(on={"BUMP": transition(None, action=bump)})}
)


def _engine(url: str) -> Engine:
    engine = Engine(url)
    engine.register(build_definition())
    engine.register(COUNTER)
    return engine


def distinct(index: int, barrier: Any, url: str, prefix: str, seconds: float) -> dict[str, Any]:
    engine = _engine(url)
    ops = workload.stream(200, f"{prefix}w{index}-")
    for _ in range(50):  # warm-up on the same stream: connection, prepared statements
        _do(engine, next(ops))
    backend = psutil.Process(engine.db.connection().info.backend_pid)  # this process's server side
    barrier.wait()
    cpu0, server0, count = time.process_time(), _cpu(backend), 50
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        _do(engine, next(ops))
        count += 1
    cpu, server = time.process_time() - cpu0, _cpu(backend) - server0
    engine.close()
    return {"ops": count - 50, "all_ops": count, "cpu": cpu, "server_cpu": server}


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _do(engine: Engine, op: workload.Op) -> None:
    if op.event is None:
        engine.start(workload.MACHINE, op.payload, instance_id=op.instance_id)
    else:
        engine.send(op.instance_id, op.event, op.payload)


def same(index: int, barrier: Any, url: str, iid: str, seconds: float) -> dict[str, Any]:
    engine = _engine(url)
    barrier.wait()
    ok = failed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            engine.send(iid, "BUMP")
            ok += 1
        except Exception:
            failed += 1
    engine.close()
    return {"ops": ok, "failed": failed}


def _history_count(pg_url: str, prefix: str) -> int:
    with psycopg.connect(pg_url, options=f"-c search_path={SCHEMA}") as conn:
        row = conn.execute(
            "SELECT count(*) FROM sm_history WHERE instance_id LIKE %s", (prefix + "%",)
        ).fetchone()
    return int(row[0]) if row else -1


def run(quick: bool = False, pg_url: str = PG_URL, part1_rate: float | None = None) -> Section:
    """`part1_rate`: the engine's 1-process PostgreSQL events/s from part 1, for the physics note."""
    sw = Stopwatch()
    url = pg_fresh_schema(pg_url, SCHEMA)
    _engine(url).close()  # migrate once, before any child starts
    rounds, seconds = (2, 2.0) if quick else (5, 4.0)
    configs: list[int | str] = [*PROCESSES, "same"]
    rates: dict[int | str, list[float]] = {c: [] for c in configs}
    busy: dict[int | str, list[float]] = {c: [] for c in configs}
    client_cpu: dict[int | str, list[float]] = {c: [] for c in configs}
    server_cpu: dict[int | str, list[float]] = {c: [] for c in configs}
    per_event: dict[int | str, list[float]] = {c: [] for c in configs}
    lost: list[str] = []
    failed_sends = 0
    try:
        for r in range(rounds):
            shift = r % len(configs)
            for c in configs[shift:] + configs[:shift]:
                if c == "same":
                    iid = f"shared-{r}"
                    setup = _engine(url)
                    setup.start("bench-counter", {"n": 0}, instance_id=iid)
                    setup.close()
                    out = procs.run(SHARED, same, lambda i, iid=iid: (url, iid, seconds))
                    total = sum(x["ops"] for x in out.results)
                    failed_sends += sum(x["failed"] for x in out.results)
                    lost += _check_counter(url, iid, total)
                else:
                    prefix = f"r{r}p{c}-"
                    out = procs.run(c, distinct, lambda i, prefix=prefix: (url, prefix, seconds))
                    total = sum(x["ops"] for x in out.results)
                    written = _history_count(pg_url, prefix)
                    expected = sum(x["all_ops"] for x in out.results)
                    if written != expected:
                        lost.append(
                            f"{c} processes, round {r + 1}: {written} history rows for {expected} ops"
                        )
                    client_cpu[c].append(sum(x["cpu"] for x in out.results) / seconds)
                    server_cpu[c].append(sum(x["server_cpu"] for x in out.results) / seconds)
                    per_event[c].append(sum(x["cpu"] + x["server_cpu"] for x in out.results) / max(total, 1))
                rates[c].append(total / seconds)
                busy[c].append(out.cpu_busy)
    finally:
        pg_drop_schema(pg_url, SCHEMA)
    cpu = {"client": client_cpu, "server": server_cpu, "per_event": per_event}
    return _report(rates, busy, cpu, lost, failed_sends, rounds, seconds, sw.elapsed, part1_rate)


def _check_counter(url: str, iid: str, total: int) -> list[str]:
    engine = _engine(url)
    try:
        snap = engine.get(iid)
        records = engine.history(iid)
    finally:
        engine.close()
    seqs = [r.seq for r in records]
    facts = {
        "counter": snap.context["n"],
        "version - 1": snap.version - 1,
        "history records - 1": len(records) - 1,
    }
    problems = [f"{iid}: {k} = {v}, sends that returned = {total}" for k, v in facts.items() if v != total]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"{iid}: history seqs are not 1..{len(seqs)} without gaps")
    return problems


def _physics(cpu_us: float, rate1: float, one_cores: float, part1_rate: float | None) -> list[str]:
    cap = 2e6 / cpu_us
    lines = [
        "- What 2 cores mean: an event costs CPU in the client process (the engine, in Python) and in"
        f" its PostgreSQL backend: {cpu_us:.0f} us together (from /proc, all configurations), plus a"
        f" WAL flush. So 2 cores carry at most about **{cap:,.0f} events/s** of this workload, however"
        f" many processes send. One process reached {rate1:,.0f} events/s here using {one_cores:.2f}"
        f" cores, so on this machine, at this moment, no number of processes could exceed"
        f" {cap / rate1:.1f}x. More processes only help by filling the time one process waits (for"
        " the server, the flush, or a core taken by another session: the machine CPU column counts"
        " the whole machine, other sessions included).",
    ]
    if part1_rate:
        busy1, ceiling = part1_rate * cpu_us / 1e6, cap / part1_rate
        verdict = (
            "so the 2.5x target is physically out of reach here: 4 processes would need"
            f" {2.5 * busy1:.1f} cores"
            if ceiling < 2.5
            else "so 2.5x is within reach in principle, if the other sessions leave the cores free"
        )
        lines.append(
            f"- Part 1 measured one engine process at {part1_rate:,.0f} events/s on PostgreSQL (a"
            f" different minute, different load): at that rate one process keeps {busy1:.2f} cores busy"
            f" and the ceiling is {ceiling:.1f}x, {verdict}. On a machine with 4+ free cores (or the"
            " server on its own host) the target is a fair test of the engine."
        )
    return lines


def _report(
    rates: dict[int | str, list[float]],
    busy: dict[int | str, list[float]],
    cpu: dict[str, dict[int | str, list[float]]],
    lost: list[str],
    failed_sends: int,
    rounds: int,
    seconds: float,
    elapsed: float,
    part1_rate: float | None,
) -> Section:
    base = rates[1]
    rows = []
    for c in PROCESSES:
        paired = median([x / b for x, b in zip(rates[c], base, strict=True)])
        rows.append(
            [
                f"{c} on distinct instances",
                " / ".join(f"{x:,.0f}" for x in rates[c]),
                f"{median(rates[c]):,.0f}",
                f"{median(rates[c]) / c:,.0f}",
                f"{paired:.2f}x",
                f"{median(busy[c]) * 100:.0f}%",
                f"{median(cpu['client'][c]):.2f} + {median(cpu['server'][c]):.2f}",
                f"{median(cpu['per_event'][c]) * 1e6:,.0f}",
            ]
        )
    rows.append(
        [
            f"{SHARED} on one instance",
            " / ".join(f"{x:,.0f}" for x in rates["same"]),
            f"{median(rates['same']):,.0f}",
            f"{median(rates['same']) / SHARED:,.0f}",
            f"{median([x / b for x, b in zip(rates['same'], base, strict=True)]):.2f}x",
            f"{median(busy['same']) * 100:.0f}%",
            "",
            "",
        ]
    )
    speedup = median([x / b for x, b in zip(rates[4], base, strict=True)])
    one_cores = median(cpu["client"][1]) + median(cpu["server"][1])
    cpu_us = median([x for c in PROCESSES for x in cpu["per_event"][c]]) * 1e6
    rate1 = median(base)
    body = [
        f"PostgreSQL, `synchronous_commit=on`; {rounds} rounds of {seconds:.0f} s per configuration,"
        f" configurations rotated within each round; load average at the end {loadavg()}.",
        "",
        table(
            [
                "processes",
                "events/s per round",
                "median events/s",
                "per process",
                "vs 1 process (paired)",
                "machine CPU busy",
                "cores used: clients + their backends",
                "CPU us per event",
            ],
            rows,
        ),
        "",
        f"- 4 processes / 1 process: **{speedup:.2f}x** (target >= {SPEEDUP_TARGET}x).",
        *_physics(cpu_us, rate1, one_cores, part1_rate),
        f"- One instance: no lost update in any round: {'yes' if not lost else 'NO'}"
        f" (counter = version - 1 = history records - 1 = sends that returned; {failed_sends} sends raised)."
        + ("".join(f"\n  - {p}" for p in lost) if lost else ""),
    ]
    checks = [
        Check("4. PostgreSQL, 4 processes vs 1 (distinct instances)", f">= {SPEEDUP_TARGET}x",
              f"{speedup:.2f}x", speedup >= SPEEDUP_TARGET),
        Check("4. PostgreSQL, 4 processes on one instance: no lost update", "none lost",
              "none lost" if not lost else f"{len(lost)} problems", not lost),
    ]  # fmt: skip
    return Section("4. Concurrency on PostgreSQL", "\n".join(body), checks, elapsed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--pg-url", default=PG_URL)
    args = p.parse_args(argv)
    print(run(args.quick, args.pg_url).markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
