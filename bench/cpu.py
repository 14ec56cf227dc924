"""Issue 14, item 4: CPU per durable event on PostgreSQL, client process + its server backend.

What decides how far one PostgreSQL scales on a bigger machine is not one sender's latency but
the CPU an event costs everywhere: in the sending process (Python: the engine or the raw driver)
and in the PostgreSQL backend serving its connection. Both are read from the kernel's per-process
accounting (`/proc/self/stat` and `/proc/<pg_backend_pid()>/stat`, user + system time) around a
run of the part-1 workload (`bench.workload`), one sender, contenders interleaved per round.

    python -m bench.cpu --events 3000 --rounds 5

Resolution is the kernel's clock tick (10 ms); 3,000 events take 0.3-1 s of CPU, so a round's
figure is within a few percent. WAL flushing (the walwriter) and checkpoints run in other server
processes and are not counted: they scale with bytes, not events (bench.wal_bytes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import workload
from bench.common import PG_URL, loadavg, pg_drop_schema, table
from bench.contenders.base import Target

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def backend_pid(contender: Any) -> int:
    if contender.name == "engine":
        engine = contender.engine
        if engine.group is not None:
            with engine.group.transaction() as cur:
                cur.execute("SELECT pg_backend_pid()")
                return int(cur.fetchone()[0])
        with engine.db.read() as cur:
            cur.execute("SELECT pg_backend_pid()")
            return int(cur.fetchone()[0])
    pid = contender.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    contender.conn.commit()
    return int(pid)


def measure(name: str, ops: list[workload.Op], warm: list[workload.Op], pg_url: str) -> dict[str, float]:
    import importlib

    contender = importlib.import_module(f"bench.contenders.{name}").make()
    schema = f"bench_cpu_{name}"
    target = Target("postgres", Path(tempfile.gettempdir()), pg_url=pg_url, schema=schema)
    contender.setup(target)
    try:
        for op in warm:
            _op(contender, op)
        pid = backend_pid(contender)
        client0, server0 = proc_cpu(), proc_cpu(pid)
        for op in ops:
            _op(contender, op)
        client, server = proc_cpu() - client0, proc_cpu(pid) - server0
    finally:
        contender.close()
        pg_drop_schema(pg_url, schema)
    n = len(ops)
    return {"client": client / n * 1e6, "server": server / n * 1e6, "total": (client + server) / n * 1e6}


def _op(contender: Any, op: workload.Op) -> None:
    if op.event is None:
        contender.start(op.instance_id, op.payload)
    else:
        contender.send(op.instance_id, op.event, op.payload)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    p.add_argument("--events", type=int, default=3000)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--pg-url", default=PG_URL)
    args = p.parse_args(argv)
    stream = workload.script(args.warmup + args.events)
    warm, ops = stream[: args.warmup], stream[args.warmup :]
    names = ("raw_psycopg", "engine")
    got: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names[r % 2 :] + names[: r % 2]:
            got[name].append(measure(name, ops, warm, args.pg_url))
            m = got[name][-1]
            print(
                f"round {r + 1}: {name:<12} client {m['client']:.0f} us, backend {m['server']:.0f} us",
                flush=True,
            )
    rows = []
    med = {
        n: {k: statistics.median(x[k] for x in got[n]) for k in ("client", "server", "total")} for n in names
    }
    for n in names:
        ratio = statistics.median(
            e["total"] / b["total"] for e, b in zip(got[n], got["raw_psycopg"], strict=True)
        )
        rows.append(
            [
                n,
                f"{med[n]['client']:.0f}",
                f"{med[n]['server']:.0f}",
                f"{med[n]['total']:.0f}",
                f"{ratio:.2f}x",
            ]
        )
    print()
    print(
        table(
            ["contender", "client µs/op", "backend µs/op", "total CPU µs/op", "vs raw_psycopg (paired)"], rows
        )
    )
    e = med["engine"]["total"]
    print(
        f"\nprojection: {1e6 / e:,.0f} events/s per core of engine + backend CPU; 16 cores {16e6 / e:,.0f},"
        f" 64 cores {64e6 / e:,.0f} (CPU bound, before WAL flush and lock limits); load {loadavg()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
