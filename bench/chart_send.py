"""Issue 10 item 8, the engine side: `Engine.send` per event, flat vs statechart, SQLite NORMAL.

Three instances in one database, sent to in interleaved rounds (median reported):

- `flat`: a flat machine `a <-> b` on `E`;
- `chart3`: a parallel state `p` with compound regions `r1..r3` (leaves `a`, `b`; three levels,
  `p.r1.a`); `E` moves all three regions (three exits, three entries);
- `chart1`: the same machine, event `F` that only region `r1` handles.

Also reports the WAL bytes written per event: the `-wal` file is truncated (checkpoint from a
second connection), then 100 events of one case are sent and the file measured.

    python -m bench.chart_send [--rounds N] [--events N]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from statemachines import Engine, machine, parallel, state

REGIONS = 3


def _chart() -> object:
    def region(i: int) -> object:
        on_a = {"E": "b", **({"F": "b"} if i == 1 else {})}
        on_b = {"E": "a", **({"F": "a"} if i == 1 else {})}
        return state(initial="a", states={"a": state(on=on_a), "b": state(on=on_b)})

    regions = {f"r{i}": region(i) for i in range(1, REGIONS + 1)}
    return machine("bench_chart", initial="p", states={"p": parallel(regions)})


def _flat() -> object:
    return machine("bench_flat", initial="a", states={"a": state(on={"E": "b"}), "b": state(on={"E": "a"})})


def _wal_per_event(path: Path, wal_path: Path, send: Callable[[], None], n: int = 100) -> float:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = wal_path.stat().st_size
    for _ in range(n):
        send()
    return (wal_path.stat().st_size - before) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--events", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.db"
        engine = Engine(f"sqlite:///{path}", sqlite_synchronous="NORMAL")
        engine.register(_flat())
        engine.register(_chart())
        engine.start("bench_flat", instance_id="flat")
        engine.start("bench_chart", instance_id="chart3")
        engine.start("bench_chart", instance_id="chart1")
        cases: dict[str, Callable[[], None]] = {
            "flat": lambda: engine.send("flat", "E"),
            "chart3": lambda: engine.send("chart3", "E"),
            "chart1": lambda: engine.send("chart1", "F"),
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        cpu: dict[str, list[float]] = {k: [] for k in cases}
        wal_path = Path(f"{path}-wal")
        for _ in range(2):  # warm-up
            for send in cases.values():
                for _ in range(200):
                    send()
        for _ in range(args.rounds):
            for name, send in cases.items():
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(args.events):
                    send()
                times[name].append((time.perf_counter() - t0) / args.events * 1e6)
                cpu[name].append((time.process_time() - c0) / args.events * 1e6)
        wal = {name: _wal_per_event(path, wal_path, send) for name, send in cases.items()}
        flat = statistics.median(times["flat"])
        flat_min = min(times["flat"])
        flat_cpu = statistics.median(cpu["flat"])
        print(f"load {os.getloadavg()[0]:.1f}; {args.rounds} rounds x {args.events} events, medians")
        for name in cases:
            med, low, c = statistics.median(times[name]), min(times[name]), statistics.median(cpu[name])
            print(
                f"{name:7s} wall {med:6.1f} us {med / flat:4.2f}x (min {low:.1f}, {low / flat_min:.2f}x)"
                f"  cpu {c:6.1f} us {c / flat_cpu:4.2f}x"
                f"  {wal[name]:.0f} B WAL/event ({wal[name] / 4096:.2f} pages)"
            )


if __name__ == "__main__":
    main()
