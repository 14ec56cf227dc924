"""Issue 6, item 3: does `send` stay as fast with 1M instances and 10M history rows?

Two databases per backend, open side by side: *small* (1,000 instances, 10 history records
each) and *large* (1,000,000 instances, 10,000,000 history records; `--quick`: 20,000 / 200,000),
both bulk-loaded by `bench.bulk`, both with one extra instance holding 1,000 history records.
Sends alternate between them in blocks (the order flips every round), each to a random live
order (`OUT_OF_STOCK` / `RESTOCKED`: a transition and a history record each), so
noise on this shared machine hits both sides alike. Then `history(id)` of the 1,000-record
instance and `instances(...)` pages, again alternating small and large.

    python -m bench.scale [--quick] [--db sqlite,postgres] [--large N]

Diagnostic: `BENCH_SQLITE_CACHE_MIB=64` gives both SQLite engines' connections a 64 MiB page
cache (SQLite's default is 2 MiB) to see how much of the large side's tail is cache misses.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import bulk, workload
from bench.common import (
    PG_URL,
    Check,
    Section,
    Stopwatch,
    loadavg,
    median,
    ms,
    percentile,
    pg_drop_schema,
    pg_fresh_schema,
    table,
)
from bench.contenders.engine import build_definition
from statemachines import Engine

LIVE = [k for k, s in enumerate(bulk.STATE_MIX) if s in ("processing", "backorder")]
P99_TARGET = 1.3


@dataclass
class Side:
    """One database under test and the state of the orders it has sent events to."""

    name: str
    plan: bulk.Plan
    engine: Any = None
    load_s: float = 0.0
    moved: dict[int, str] = field(default_factory=dict)
    sends: list[float] = field(default_factory=list)
    p99_by_round: list[float] = field(default_factory=list)

    def send_random(self, rng: random.Random) -> float:
        block = rng.randrange(self.plan.instances // len(bulk.STATE_MIX))
        i = block * len(bulk.STATE_MIX) + rng.choice(LIVE)
        state = self.moved.get(i, bulk.state_of(i))
        event = workload.OUT_OF_STOCK if state == "processing" else workload.RESTOCKED
        t0 = time.perf_counter()
        snap = self.engine.send(bulk.instance_id(i), event, {})
        elapsed = time.perf_counter() - t0
        self.moved[i] = snap.state
        return elapsed


def _create(url: str, definition: Any) -> None:
    """Let the engine create its schema and store the definition, then let go of the database."""
    engine = Engine(url)
    engine.register(definition)
    engine.close()


def _open(backend: str, side: Side, workdir: Path, pg_url: str) -> Callable[[], None]:
    """Create, bulk-load and open one side; returns its clean-up."""
    definition = build_definition()
    sw = Stopwatch()
    if backend == "sqlite":
        url = f"sqlite:///{workdir / side.name}.db"
        _create(url, definition)
        bulk.load_sqlite(f"{workdir / side.name}.db", side.plan, definition.version)
        cleanup: Callable[[], None] = lambda: None  # noqa: E731 - the temp dir goes as a whole
    else:
        schema = f"bench_scale_{side.name}"
        url = pg_fresh_schema(pg_url, schema)
        _create(url, definition)
        bulk.load_postgres(pg_url, schema, side.plan, definition.version)
        cleanup = lambda: pg_drop_schema(pg_url, schema)  # noqa: E731
    side.load_s = sw.elapsed
    side.engine = Engine(url)
    cache_mib = os.environ.get("BENCH_SQLITE_CACHE_MIB")  # diagnostic: does a bigger page cache help?
    if cache_mib and backend == "sqlite":
        side.engine.db.connection().execute(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")
    side.engine.register(definition)
    return cleanup


def _alternate(sides: list[Side], rounds: int, fn: Callable[[Side], list[float]]) -> dict[str, list[float]]:
    """Run `fn` on every side each round, flipping the order every round."""
    out: dict[str, list[float]] = {s.name: [] for s in sides}
    for r in range(rounds):
        for side in sides if r % 2 == 0 else sides[::-1]:
            out[side.name] += fn(side)
    return out


def _timed(call: Callable[[], object], n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def measure(backend: str, quick: bool, pg_url: str, large_n: int) -> tuple[str, list[Check]]:
    small, large = Side("small", bulk.Plan(1000, 10)), Side("large", bulk.Plan(large_n, 10))
    sides = [small, large]
    rounds, block = (4, 150) if quick else (10, 500)
    rng = random.Random(6)
    cleanups = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        for side in sides:
            cleanups.append(_open(backend, side, tmp, pg_url))
        for side in sides:  # warm-up: first touches, statement preparation
            for _ in range(100):
                side.send_random(rng)
        for r in range(rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                times = [side.send_random(rng) for _ in range(block)]
                side.sends += times
                side.p99_by_round.append(percentile(times, 99))
        hot = _alternate(
            sides, 10 if quick else 20, lambda s: _timed(lambda: s.engine.history(bulk.HOT_ID), 3)
        )
        pages = {
            "machine + state, first page": dict(machine=workload.MACHINE, state="pending", limit=100),
            "state only, first page": dict(state="pending", limit=100),
            "machine + state, offset 10,000": dict(
                machine=workload.MACHINE, state="pending", limit=100, offset=10_000
            ),
        }
        lists = {
            label: _alternate(
                sides, 3 if quick else 5, lambda s, kw=kw: _timed(lambda: s.engine.instances(**kw), 2)
            )
            for label, kw in pages.items()
        }
        return _report(backend, sides, hot, lists, rounds, block)
    finally:
        for side in sides:
            if side.engine is not None:
                side.engine.close()
        for cleanup in cleanups:
            cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def _report(
    backend: str,
    sides: list[Side],
    hot: dict[str, list[float]],
    lists: dict[str, dict[str, list[float]]],
    rounds: int,
    block: int,
) -> tuple[str, list[Check]]:
    small, large = sides
    db = "SQLite (WAL, synchronous=FULL, the default)" if backend == "sqlite" else "PostgreSQL"
    rows = [
        [
            s.name,
            f"{s.plan.instances:,}",
            f"{s.plan.history_rows:,}",
            f"{s.load_s:.0f}",
            ms(median(s.sends)),
            ms(percentile(s.sends, 99)),
            ms(percentile(s.sends, 99.9)),
        ]
        for s in sides
    ]
    p99_ratio = percentile(large.sends, 99) / percentile(small.sends, 99)
    paired = median([b / a for a, b in zip(small.p99_by_round, large.p99_by_round, strict=True)])
    med_ratio = median(large.sends) / median(small.sends)
    lines = [
        f"### {db}",
        "",
        f"{rounds} rounds x {block} sends per side, alternating; load average at the end {loadavg()}.",
        "",
        table(
            ["db", "instances", "history rows", "bulk load s", "send median ms", "p99 ms", "p99.9 ms"],
            rows,
        ),
        "",
        f"- p99 ratio large / small: **{p99_ratio:.2f}** (pooled); median of the per-round p99 ratios"
        f" {paired:.2f}; median ratio {med_ratio:.2f}. Target <= {P99_TARGET}.",
        "",
        table(
            ["read", "small median ms", "small p99 ms", "large median ms", "large p99 ms"],
            [
                ["`history(id)`, 1,000 records", *_pair(hot, sides)],
                *[[f"`instances(...)` {label}, limit 100", *_pair(v, sides)] for label, v in lists.items()],
            ],
        ),
    ]
    label = "SQLite FULL" if backend == "sqlite" else "PostgreSQL"
    scale = f"{large.plan.instances:,} inst / {large.plan.history_rows:,} hist"
    check = Check(
        f"3. send p99 ratio, {scale} vs 1k ({label})",
        f"<= {P99_TARGET}",
        f"{p99_ratio:.2f}",
        p99_ratio <= P99_TARGET,
    )
    return "\n".join(lines), [check]


def _pair(times: dict[str, list[float]], sides: list[Side]) -> list[str]:
    out = []
    for s in sides:
        out += [ms(median(times[s.name])), ms(percentile(times[s.name], 99))]
    return out


def run(
    quick: bool = False,
    pg_url: str = PG_URL,
    dbs: tuple[str, ...] = ("sqlite", "postgres"),
    large: int | None = None,
) -> Section:
    """`large`: instances in the large database (default 1,000,000; 20,000 with `quick`)."""
    sw = Stopwatch()
    parts, checks = [], []
    for backend in dbs:
        body, found = measure(backend, quick, pg_url, large or (20_000 if quick else 1_000_000))
        parts.append(body)
        checks += found
    intro = (
        "`send` latency on a small database (1,000 instances) and a large one, open side by side"
        " and alternating; rows bulk-loaded with executemany (SQLite) / COPY FREEZE (PostgreSQL)"
        " with all indexes in place. Sends go to random live orders of the whole table."
        " Read latencies are per call (`history` returns 1,000 records; `instances` 100 snapshots;"
        " 5% of the instances are `pending`)."
    )
    return Section("3. Scale", "\n\n".join([intro, *parts]), checks, sw.elapsed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--db", default="sqlite,postgres")
    p.add_argument("--pg-url", default=PG_URL)
    p.add_argument("--large", type=int, help="instances in the large database (10 history rows each)")
    args = p.parse_args(argv)
    section = run(args.quick, args.pg_url, tuple(d.strip() for d in args.db.split(",")), args.large)
    print(section.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
