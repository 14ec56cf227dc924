"""Issue 14, item 2: the WAL checkpoint interval, measured on a fast and on a realistic disk.

`Engine` sets `PRAGMA wal_autocheckpoint` (persistence.database.WAL_AUTOCHECKPOINT_PAGES). A
checkpoint copies the WAL's pages back into the database file and fsyncs it: rarer checkpoints
copy a hot page once for many events, but a longer WAL also means more pages to copy at once and
a longer WAL index to search. This runs the part-1 workload (`bench.workload`) with one sender
on SQLite FULL with each interval in turn, on two directories (by default the machine's own disk
and tmpfs, whose fsync is nearly free), rounds interleaved; each directory's fsync is measured.

    python -m bench.checkpoint --dirs bench/.tmp,/dev/shm --pages 1000,10000 --rounds 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import persistence.database
from bench import workload
from bench.common import fsync_us, loadavg, median, table
from bench.contenders.base import Target
from bench.contenders.engine import EngineContender


def run(directory: str, pages: int, ops: list[workload.Op], sync: str) -> float:
    persistence.database.WAL_AUTOCHECKPOINT_PAGES = pages
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-", dir=directory) as tmp:
        c = EngineContender()
        c.setup(Target("sqlite", Path(tmp), sync=sync))
        try:
            t0 = time.perf_counter()
            for op in ops:
                if op.event is None:
                    c.start(op.instance_id, op.payload)
                else:
                    c.send(op.instance_id, op.event, op.payload)
            return len(ops) / (time.perf_counter() - t0)
        finally:
            c.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.checkpoint", description=__doc__)
    p.add_argument("--dirs", default=f"{Path(__file__).parent / '.tmp'},/dev/shm")
    p.add_argument("--pages", default="1000,10000")
    p.add_argument("--events", type=int, default=4000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--sync", default="FULL")
    args = p.parse_args(argv)
    dirs = args.dirs.split(",")
    for d in dirs:
        Path(d).mkdir(parents=True, exist_ok=True)
    pages = [int(x) for x in args.pages.split(",")]
    ops = workload.script(args.events)
    fs = {d: f"{fsync_us(directory=d):.0f} / {fsync_us(directory=d, size=36_000):.0f}" for d in dirs}
    configs = [(d, n) for d in dirs for n in pages]
    rates: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    for r in range(args.rounds):
        shift = r % len(configs)
        for d, n in configs[shift:] + configs[:shift]:
            rates[d, n].append(run(d, n, ops, args.sync))
            print(f"round {r + 1}: {d} {n:>6} pages {rates[d, n][-1]:>8,.0f} ev/s", flush=True)
    rows = []
    for d, n in configs:
        paired = median([a / b for a, b in zip(rates[d, n], rates[d, pages[0]], strict=True)])
        rows.append([d, fs[d], n, " / ".join(f"{x:,.0f}" for x in rates[d, n]),
                     f"{median(rates[d, n]):,.0f}", f"{paired:.2f}x"])  # fmt: skip
    print()
    heads = [
        "directory",
        "fsync µs",
        "wal_autocheckpoint",
        "ev/s per round",
        "median",
        f"vs {pages[0]} (paired)",
    ]
    print(table(heads, rows))
    print(f"\n(synchronous={args.sync}, {args.events} ops per run; load average at the end {loadavg()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
