"""What the part-2 benchmarks (scale, concurrency, timers, memory) share.

Every module returns a `Section`: a markdown body for `bench/RESULTS.md` and the targets it
checked, so `bench.run_all` can write one summary table of targets met and missed.
PostgreSQL work happens only in schemas named `bench_*`, dropped afterwards.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.contenders.base import pg_reset_schema

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Check:
    """One target of issue 6: what was asked, what was measured, whether it was met."""

    item: str
    target: str
    measured: str
    met: bool | None  # None: not measurable in this run


@dataclass
class Section:
    title: str
    body: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    revision: str = ""  # the engine's commit when the section started (set by run_all)

    def markdown(self) -> str:
        at = f"; engine at git {self.revision}" if self.revision else ""
        return f"## {self.title}\n\n{self.body.strip()}\n\n_(section took {self.seconds:.0f} s{at})_\n"


def engine_url(pg_url: str, schema: str) -> str:
    """A SQLAlchemy-style URL for `Engine` whose tables live in `schema` (search_path)."""
    if not schema.startswith("bench_"):
        raise ValueError(f"benchmarks only use bench_* schemas, not {schema!r}")
    url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def pg_fresh_schema(pg_url: str, schema: str) -> str:
    """Drop and recreate a `bench_*` schema; returns the engine URL pointing into it."""
    pg_reset_schema(pg_url, schema)
    return engine_url(pg_url, schema)


def pg_drop_schema(pg_url: str, schema: str) -> None:
    if not schema.startswith("bench_") or not schema.replace("_", "").isalnum():
        raise ValueError(f"refusing to drop schema {schema!r}: not a bench_ schema")
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def fsync_us(samples: int = 100, directory: str | None = None, size: int = 100) -> float:
    """Median microseconds of an fsync after appending `size` bytes, in `directory` (default: the
    temp directory): what a durable commit costs on that disk at least (SQLite FULL and
    PostgreSQL pay it per commit). 100 bytes is the floor; a SQLite commit of the benchmark
    workload appends about 36 KB of WAL frames (bench.wal_bytes), so `size=36_000` is closer to
    what one commit waits for."""
    import tempfile

    times = []
    with tempfile.NamedTemporaryFile(dir=directory or tempfile.gettempdir()) as f:
        for _ in range(samples):
            f.write(b"x" * size)
            t0 = time.perf_counter()
            os.fsync(f.fileno())
            times.append((time.perf_counter() - t0) * 1e6)
    return median(times)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def revision() -> str:
    """The commit measured, marked when the tracked tree has local changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "statemachines", "persistence"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} + uncommitted engine changes" if dirty else head


def yes_no(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def table(head: Sequence[str], rows: Sequence[Sequence[object]], right: int = 1) -> str:
    """A markdown table; columns from index `right` on are right-aligned."""
    align = ["---" if i < right else "---:" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
