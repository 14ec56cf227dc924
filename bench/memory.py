"""Issue 6, item 6: peak RSS of a process that sends 1M events; is it flat?

A fresh process (so nothing else it imported counts) runs the part-1 workload (`bench.workload`,
streamed lazily, 200 live orders, starts included) through one `Engine` on SQLite with
`synchronous=NORMAL`, and samples its RSS every 50,000 operations. It stops at 1M operations or
after a time cap, whichever comes first, and says which. Flat means: the least-squares slope of
RSS over the samples after the first is under 1 MiB per 1M events, and the last sample is within
2 MiB of the smallest one.

    python -m bench.memory [--quick]        # report
    python -m bench.memory --child N SECS   # the measured process (prints JSON)
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench import workload
from bench.common import Check, Section, Stopwatch, loadavg, table

EVERY = 50_000
MIB = 1024 * 1024
SLOPE_LIMIT_MIB_PER_M = 1.0
END_LIMIT_MIB = 2.0


def child(events: int, seconds: float) -> dict[str, Any]:
    from bench.contenders.engine import build_definition
    from statemachines import Engine

    proc = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        engine = Engine(f"sqlite:///{Path(tmp) / 'm.db'}", sqlite_synchronous="NORMAL")
        engine.register(build_definition())
        samples = [(0, proc.memory_info().rss, 0.0)]
        t0 = time.perf_counter()
        capped = False
        for done, op in enumerate(workload.stream(200), start=1):
            if op.event is None:
                engine.start(workload.MACHINE, op.payload, instance_id=op.instance_id)
            else:
                engine.send(op.instance_id, op.event, op.payload)
            if done % EVERY == 0:
                samples.append((done, proc.memory_info().rss, time.perf_counter() - t0))
                if done >= events:
                    break
                if time.perf_counter() - t0 > seconds:
                    capped = True
                    break
        engine.close()
    return {"samples": samples, "peak": _peak_rss(), "capped": capped, "target": events}


def _peak_rss() -> int:
    """This process's peak RSS in bytes: `VmHWM` (`ru_maxrss` on Linux keeps the parent's peak
    across fork + exec, so it would report the parent's memory)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _slope_mib_per_m(points: list[tuple[int, int, float]]) -> float:
    xs = [p[0] / 1e6 for p in points]
    ys = [p[1] / MIB for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def run(quick: bool = False) -> Section:
    sw = Stopwatch()
    events, seconds = (150_000, 40.0) if quick else (1_000_000, 180.0)
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child", str(events), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    samples = [tuple(s) for s in data["samples"]]
    measured = samples[1:]  # after the first 50k: imports, caches and the first pages are in
    slope = _slope_mib_per_m(measured) if len(measured) >= 2 else float("nan")
    end_growth = (measured[-1][1] - min(s[1] for s in measured)) / MIB
    flat = slope < SLOPE_LIMIT_MIB_PER_M and end_growth <= END_LIMIT_MIB
    rows = []
    for (n0, _, t_prev), (n, rss, t) in itertools.pairwise(samples):
        rows.append([f"{n:,}", f"{rss / MIB:.1f}", f"{(n - n0) / (t - t_prev):,.0f}"])
    sent = samples[-1][0]
    stop = (
        f"stopped at the {seconds:.0f} s cap after {sent:,} operations (target {events:,}): this machine"
        " was too slow for the full count"
        if data["capped"]
        else f"all {sent:,} operations sent"
    )
    body = [
        f"SQLite, WAL, `synchronous=NORMAL`; one process, one `Engine`, the part-1 workload streamed;"
        f" {stop}; {samples[-1][2]:.0f} s; load average at the end {loadavg()}.",
        "",
        f"- RSS before the first event {samples[0][1] / MIB:.1f} MiB; peak RSS (`VmHWM`)"
        f" {data['peak'] / MIB:.1f} MiB.",
        f"- Slope after the first {EVERY:,}: **{slope:+.2f} MiB per 1M events**"
        f" (limit {SLOPE_LIMIT_MIB_PER_M}); last sample {end_growth:.1f} MiB above the smallest"
        f" (limit {END_LIMIT_MIB}). Flat: {'yes' if flat else 'NO'}.",
        "",
        table(["operations sent", "RSS MiB", "ops/s in the interval"], rows),
    ]
    checks = [
        Check(f"6. RSS flat over {sent:,} events (SQLite NORMAL)", "flat",
              f"{slope:+.2f} MiB/1M, peak {data['peak'] / MIB:.0f} MiB", flat),
    ]  # fmt: skip
    return Section("6. Memory", "\n".join(body), checks, sw.elapsed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--child", nargs=2, metavar=("EVENTS", "SECONDS"))
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(int(args.child[0]), float(args.child[1]))))
    else:
        print(run(args.quick).markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
