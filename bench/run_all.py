"""Run every benchmark of issue 6 and write `bench/RESULTS.md` and `bench/results.png`.

    python -m bench.run_all            # the full run (about 15-30 minutes here)
    python -m bench.run_all --quick    # a smoke run (under 5 minutes): small counts, indicative only

Part 1 (`bench.harness`, items 1 and 2) runs on SQLite FULL, SQLite NORMAL and PostgreSQL, then
items 3-6 (`bench.scale`, `bench.concurrency`, `bench.timers`, `bench.memory`), then issue 10's
statechart event cost (`bench.statecharts`). A section that
fails is reported with its error and the others still run. Sections of the existing RESULTS.md
that it does not write (numbered sections added by hand: 7, 11-16) are kept after its own.
`--quick` writes
`RESULTS.quick.md` / `results.quick.png` so it never overwrites the published figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import chart, harness
from bench.common import (
    PG_URL,
    Check,
    Section,
    Stopwatch,
    fsync_us,
    loadavg,
    median,
    pg_drop_schema,
    revision,
    table,
    yes_no,
)

HERE = Path(__file__).resolve().parent
CONTENDERS = "engine,orm_transitions,orm_python_statemachine,dbos_workflow,memory_transitions"
PART1 = (  # label, harness arguments, raw floor, targets: baseline -> minimum engine/baseline ratio
    (
        "SQLite FULL",
        ["--sync", "FULL"],
        "raw_sqlite",
        {"raw_sqlite": 0.6, "orm_transitions": 4, "dbos_workflow": 10},
    ),
    ("SQLite NORMAL", ["--sync", "NORMAL"], "raw_sqlite", {"raw_sqlite": 0.35, "orm_transitions": 8}),
    ("PostgreSQL", ["--db", "postgres"], "raw_psycopg", {"raw_psycopg": 0.7}),
)


def part1(quick: bool, pg_url: str, medians: dict[str, dict[str, float]], notes: dict[str, str]) -> Section:
    sw = Stopwatch()
    size = (
        ["--events", "600", "--rounds", "3", "--warmup", "100"]
        if quick
        else ["--events", "2000", "--rounds", "5"]
    )
    parts, checks = [], []
    for label, extra, raw, targets in PART1:
        argv = ["--contenders", f"{raw},{CONTENDERS}", "--baseline", f"{raw},orm_transitions,dbos_workflow"]
        argv += size + extra + (["--pg-url", pg_url] if "postgres" in extra else [])
        print(f"[run_all] part 1, {label}: python -m bench.harness {' '.join(argv)}", file=sys.stderr)
        try:
            entries, text = harness.run(harness.parse(argv))
        finally:  # the harness leaves its schemas for inspection; a full run cleans up
            if "postgres" in extra:
                for name in [raw, *CONTENDERS.split(","), "dbos_workflow_sys"]:
                    pg_drop_schema(pg_url, f"bench_{name}")
        by_name = {e.name: e for e in entries}
        medians[label] = {e.name: median(list(e.rates.values())) for e in entries if e.rates}
        parts += [f"### {label}", "", text, "", f"(load average after: {loadavg()})", ""]
        engine = by_name.get("engine")
        notes[label] = (
            f"paired: engine = {_paired(engine, by_name.get(raw)):.2f}x raw driver,"
            f"\n{_paired(engine, by_name.get('orm_transitions')):.1f}x ORM recipe,"
            f" {_paired(engine, by_name.get('dbos_workflow')):.0f}x DBOS"
        )
        for base, minimum in targets.items():
            ratio = _paired(engine, by_name.get(base))
            known = ratio == ratio  # not NaN: both ran
            measured = f"{ratio:.2f}x" if known else "n/a"
            checks.append(
                Check(
                    f"1-2. engine / {base}, {label}",
                    f">= {minimum}x",
                    measured,
                    ratio >= minimum if known else None,
                )
            )
    intro = (
        "`bench.harness`: every contender runs the same order-lifecycle script (200 live orders, starts"
        " and events) on a fresh database, contenders interleaved and rotated each round; the table gives"
        " each round, the median, and the median of the per-round ratios (contender / baseline, same"
        " round). See `bench/NOTES.md` for what each contender does per event."
    )
    return Section(
        "1-2. The cost of a durable event, side by side", "\n".join([intro, "", *parts]), checks, sw.elapsed
    )


def _paired(e: harness.Entry | None, base: harness.Entry | None) -> float:
    if e is None or base is None:
        return float("nan")
    rounds = e.rates.keys() & base.rates.keys()
    return median([e.rates[r] / base.rates[r] for r in rounds]) if rounds else float("nan")


def machine_notes(pg_url: str) -> str:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in _lines("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    mem = next((ln.split()[1] for ln in _lines("/proc/meminfo") if ln.startswith("MemTotal")), "0")
    pg = "unreachable"
    try:
        import psycopg

        with psycopg.connect(pg_url) as conn:
            rows = [conn.execute(f"SHOW {k}").fetchone() for k in ("server_version", "synchronous_commit",
                                                                   "shared_buffers")]  # fmt: skip
        pg = "PostgreSQL {} (synchronous_commit={}, shared_buffers={}), same host".format(
            *(r[0] for r in rows if r)
        )
    except Exception as exc:
        pg = f"PostgreSQL unreachable: {exc}"
    return "\n".join(
        [
            f"- {os.cpu_count()} cores ({cpu}), {int(mem) / 1024 / 1024:.0f} GiB RAM, shared with other"
            " sessions that run test suites and PostgreSQL crash tests: figures swing between rounds,"
            " ratios taken within a round are the ones to trust.",
            f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; {pg}.",
            f"- fsync of a small write on this disk ({_where(tempfile.gettempdir())}, where the SQLite"
            f" files go): {fsync_us():.0f} us median after a 100-byte write, {fsync_us(size=36_000):.0f} us"
            " after 36 KB (one SQLite commit of the workload); a laptop SSD or cloud volume is often"
            " 0.5-5 ms: there `synchronous=FULL` and PostgreSQL commits cost more, for everyone.",
            f"- {_pg_disk(pg_url)}",
            f"- Load average at the start: {loadavg()}.",
        ]
    )


def _where(path: str) -> str:
    """`path` on `device` (`fstype`), from /proc/self/mounts: the longest mount point above it."""
    best = ("?", "/", "?")
    for line in _lines("/proc/self/mounts"):
        device, point, fstype = line.split()[:3]
        if path.startswith(point) and len(point) >= len(best[1]):
            best = (device, point, fstype)
    return f"{path} on {best[0]}, {best[2]}"


def _pg_disk(pg_url: str) -> str:
    """Where PostgreSQL keeps its data and the fsync on that file system, measured in the
    directory above it (when the server is local and this process may write there)."""
    try:
        import psycopg

        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        data = str(row[0]) if row else "?"
    except Exception as exc:
        return f"PostgreSQL data directory: unknown ({type(exc).__name__})"
    beside = os.path.dirname(data.rstrip("/")) or "/"  # never write into the data directory itself
    try:
        us = fsync_us(directory=beside)
        return f"PostgreSQL's data directory {_where(data)}; fsync next to it ({beside}): {us:.0f} us median."
    except OSError as exc:
        return f"PostgreSQL's data directory {data}: fsync not measurable from here ({exc.strerror})."


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _guarded(name: str, fn: Callable[[], Section]) -> Section:
    print(f"[run_all] {name} ...", file=sys.stderr)
    rev = revision()
    sw = Stopwatch()
    try:
        section = fn()
    except Exception as exc:
        body = f"**This section failed**: `{type(exc).__name__}: {exc}`\n\n```\n{traceback.format_exc()}```"
        section = Section(name, body, [Check(name, "runs", "failed", False)], sw.elapsed)
    section.revision = rev
    print(f"[run_all] {name} done in {section.seconds:.0f} s", file=sys.stderr)
    return section


#: The numbers of the sections `main` writes (part 1 and the part-2 modules).
GENERATED = {"1-2.", "3.", "4.", "5.", "6.", "10."}


def hand_written(path: Path, generated: set[str]) -> list[str]:
    """The `## ` sections of the existing results whose number this run does not write (figures
    added by hand: CLI start-up, issue 14's sections...), so that a new run keeps them after its
    own. A section is known by its number ("7." of "7. CLI start-up")."""
    if not path.exists():
        return []
    numbers = {title.split()[0] for title in generated}
    kept: list[str] = []
    keep = False
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            number = line[3:].split()[0] if line[3:].split() else ""
            keep = number[:1].isdigit() and number not in numbers
        if keep:
            kept.append(line)
    return ["", *kept] if kept else []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="small counts: a smoke run in under 5 minutes")
    p.add_argument("--pg-url", default=PG_URL)
    p.add_argument(
        "--only",
        default="",
        help="comma-separated subset of: part1,scale,concurrency,timers,memory,statecharts",
    )
    args = p.parse_args(argv)
    from bench import concurrency, memory, scale, statecharts, timers

    suffix = ".quick" if args.quick else ""
    md_path, png_path = HERE / f"RESULTS{suffix}.md", HERE / f"results{suffix}.png"
    started = datetime.now(UTC)
    rev_start = revision()
    sw = Stopwatch()
    notes = machine_notes(args.pg_url)
    medians: dict[str, dict[str, float]] = {}
    chart_notes: dict[str, str] = {}
    jobs: dict[str, Callable[[], Section]] = {
        "part1": lambda: part1(args.quick, args.pg_url, medians, chart_notes),
        "scale": lambda: scale.run(args.quick, args.pg_url),
        "concurrency": lambda: concurrency.run(
            args.quick, args.pg_url, medians.get("PostgreSQL", {}).get("engine")
        ),
        "timers": lambda: timers.run(args.quick, args.pg_url),
        "memory": lambda: memory.run(args.quick),
        "statecharts": lambda: statecharts.run(args.quick),
    }
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    sections = [_guarded(name, fn) for name, fn in jobs.items() if not only or name in only]
    command = (
        "python -m bench.run_all"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if only else "")
    )
    rev_end = revision()
    revs = rev_start if rev_end == rev_start else f"{rev_start} -> {rev_end}"
    title = f"statemachines benchmarks, {started:%Y-%m-%d %H:%M} UTC, git {revs}"
    if medians:
        chart.draw(
            medians, title + ("  (QUICK RUN: indicative only)" if args.quick else ""), png_path, chart_notes
        )
    checks = [c for s in sections for c in s.checks]
    summary = table(
        ["item", "target", "measured", "verdict"],
        [[c.item, c.target, c.measured, yes_no(c.met)] for c in checks],
    )
    doc = [
        "# Benchmark results (issue 6)",
        "",
        f"`{command}`: started {started:%Y-%m-%d %H:%M} UTC, took {sw.elapsed / 60:.1f} min;"
        f" engine at git {rev_start}."
        + (
            ""
            if rev_end == rev_start
            else f" **The engine changed during the run** (now {rev_end}): each section and each part-1"
            " table names the commit it measured."
        ),
        ""
        if not args.quick
        else "\n**Quick run**: small counts, to check that everything runs; not the published figures.\n",
        "## Machine",
        "",
        notes,
        "",
        "## Targets",
        "",
        summary,
        "",
        f"![events/s per contender per database]({png_path.name})" if medians else "",
        "",
        *[s.markdown() for s in sections],
    ]
    # Every section this code can write counts as generated, even when `--only` skipped it.
    kept = hand_written(md_path, GENERATED) if not args.quick else []
    md_path.write_text("\n".join(doc + kept).replace("\n\n\n", "\n\n") + "\n")
    print(
        f"[run_all] wrote {md_path} and {png_path if medians else 'no chart'} in {sw.elapsed / 60:.1f} min",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
