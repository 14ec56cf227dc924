"""Run contenders on the same workload, interleaved in time, and compare them.

This machine is shared and noisy, so contenders never run one after another
in long blocks: each round runs every contender once (in a rotated order), on
a fresh database, on the same operations; the report gives every round's
events/s, the median, and the median of the per-round ratios against a
baseline (a ratio taken within one round compares runs seconds apart, which
cancels most of the drift between rounds).

    python -m bench.harness --contenders raw_sqlite,orm_transitions \\
        --events 2000 --rounds 5 --sync FULL --baseline raw_sqlite

A contender whose module cannot be imported (the engine, before it exists)
or that does not support the chosen database is reported as skipped; one that
fails mid-run is reported with its error and dropped from later rounds.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import workload
from bench.common import revision
from bench.contenders.base import Backend, Contender, Target

ALL = (
    "raw_sqlite",
    "raw_psycopg",
    "engine",
    "orm_transitions",
    "orm_python_statemachine",
    "dbos_workflow",
    "memory_transitions",
)
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Entry:
    name: str
    contender: Contender | None = None
    rates: dict[int, float] = field(default_factory=dict)  # round -> events/s
    note: str = ""


def load(name: str, backend: Backend) -> Entry:
    """Import ``bench.contenders.<name>``; a failure skips it, not the run."""
    try:
        module = importlib.import_module(f"bench.contenders.{name}")
        contender: Contender = module.make()
    except Exception as exc:  # ImportError for the engine until it lands
        return Entry(name, note=f"skipped: {type(exc).__name__}: {exc}")
    if backend not in contender.backends:
        return Entry(name, note=f"skipped: no {backend} support")
    return Entry(name, contender)


def run_once(
    contender: Contender,
    ops: list[workload.Op],
    args: argparse.Namespace,
    expected: dict[str, int] | None,
) -> float:
    """Time one pass over ``ops`` on a fresh database; return events/s."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{contender.name}-") as tmp:
        target = Target(
            backend=args.db,
            workdir=Path(tmp),
            sync=args.sync,
            pg_url=args.pg_url,
            schema=f"bench_{contender.name}",
        )
        contender.setup(target)
        try:
            gc.collect()
            start, send = contender.start, contender.send
            t0 = time.perf_counter()
            for op in ops:
                if op.event is None:
                    start(op.instance_id, op.payload)
                else:
                    send(op.instance_id, op.event, op.payload)
            elapsed = time.perf_counter() - t0
            if expected is not None:
                got = contender.states()
                if got != expected:
                    raise AssertionError(f"final states {got} != expected {expected}")
        finally:
            contender.close()
    return len(ops) / elapsed


def environment(args: argparse.Namespace) -> str:
    db = f"SQLite {sqlite3.sqlite_version}, synchronous={args.sync}, WAL"
    if args.db == "postgres":
        import psycopg

        try:
            with psycopg.connect(args.pg_url) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                sync = conn.execute("SHOW synchronous_commit").fetchone()
            db = f"PostgreSQL {row[0] if row else '?'} (synchronous_commit={sync[0] if sync else '?'})"
        except psycopg.Error as exc:
            db = f"PostgreSQL (version unknown: {exc})"
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, git {revision()}, Python {platform.python_version()},"
        f" {db}, {args.events} ops x {args.rounds} rounds, {args.instances} live instances"
    )


def paired_ratio(e: Entry, base: Entry | None) -> str:
    """Median over the rounds both ran of (contender events/s / baseline events/s)."""
    rounds = sorted(e.rates.keys() & base.rates.keys()) if base is not None else []
    if base is None or not rounds:
        return ""
    return f"{statistics.median(e.rates[r] / base.rates[r] for r in rounds):.2f}x"


def report(entries: list[Entry], args: argparse.Namespace, env: str) -> str:
    by_name = {e.name: e for e in entries}
    bases = [(b, by_name.get(b)) for b in args.baseline]
    heads = [f"r{i + 1}" for i in range(args.rounds)]
    lines = [
        f"`python -m bench.harness {' '.join(args.argv)}`",
        "",
        f"_{env}_",
        "",
        "| contender | "
        + " | ".join(heads + ["median ev/s", "ms/event"] + [f"vs {b}" for b, _ in bases])
        + " |",
        "|---|" + "---:|" * (len(heads) + 2 + len(bases)),
    ]
    for e in entries:
        if not e.rates:
            continue
        cells = [f"{e.rates[r]:,.0f}" if r in e.rates else "" for r in range(args.rounds)]
        median = statistics.median(e.rates.values())
        cells += [f"{median:,.0f}", f"{1000 / median:.3f}"]
        cells += [paired_ratio(e, base) for _, base in bases]
        lines.append(f"| {e.name} | " + " | ".join(cells) + " |")
    notes = [f"- {e.name}: {e.note}" for e in entries if e.note]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.harness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--contenders", default=",".join(ALL), help=f"comma-separated, from: {', '.join(ALL)}")
    p.add_argument("--events", type=int, default=2000, help="operations per contender per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--instances", type=int, default=200, help="orders alive at once")
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument(
        "--sync",
        type=str.upper,
        choices=("FULL", "NORMAL"),
        default="FULL",
        help="SQLite synchronous level (ignored on PostgreSQL)",
    )
    p.add_argument("--pg-url", default=DEFAULT_PG_URL)
    p.add_argument(
        "--baseline",
        default=None,
        help="comma-separated contenders to take ratios against (default: the raw driver)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=200,
        help="operations of an untimed first pass per contender (0: none)",
    )
    p.add_argument(
        "--no-check", action="store_true", help="skip reading back the final states after each run"
    )
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.baseline is None:
        args.baseline = "raw_psycopg" if args.db == "postgres" else "raw_sqlite"
    args.baseline = [b.strip() for b in args.baseline.split(",") if b.strip()]
    return args


def run(args: argparse.Namespace) -> tuple[list[Entry], str]:
    """Every round of every contender; returns the entries (rates per round) and the table."""
    logging.basicConfig(level=logging.WARNING)
    env = environment(args)  # before the runs: the database may be gone by the end
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    entries = [load(n, args.db) for n in names]
    ops = workload.script(args.events, args.instances)
    expected = None if args.no_check else workload.expected_states(ops)
    warm = workload.script(args.warmup, args.instances) if args.warmup else []

    def attempt(e: Entry, work: list[workload.Op], check: dict[str, int] | None) -> float | None:
        assert e.contender is not None
        try:
            return run_once(e.contender, work, args, check)
        except Exception as exc:
            e.note = f"failed: {type(exc).__name__}: {exc}"
            e.contender = None
            return None

    live = [e for e in entries if e.contender is not None]
    if warm:
        for e in live:
            attempt(e, warm, None)
    for r in range(args.rounds):
        live = [e for e in entries if e.contender is not None]
        if not live:
            break
        shift = r % len(live)  # rotate the order so no contender always goes first
        for e in live[shift:] + live[:shift]:
            rate = attempt(e, ops, expected)
            if rate is not None:
                e.rates[r] = rate
                print(f"round {r + 1}: {e.name:<24} {rate:>10,.0f} ev/s", file=sys.stderr)
    return entries, report(entries, args, env)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    _, table = run(args)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
