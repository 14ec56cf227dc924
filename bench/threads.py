"""Issue 14, item 3: group commit. Threads of one process send to different instances at once.

Each thread runs the part-1 workload (`bench.workload`: starts and events of the order
lifecycle) on its own ids; the rate is every thread's operations over the wall time from a
common start. Contenders, each on a fresh database, configurations rotated in every round:

- `engine`: `Engine(url)`, a connection per thread, one transaction (one fsync) per event;
- `engine_group`: `Engine(url, group_commit=True)` (persistence/group_commit.py): events of
  concurrent threads share a commit;
- `raw_sqlite` / `raw_psycopg`: the raw same-shape transaction, a connection per thread;
- `orm_transitions`: the SQLModel + pytransitions recipe (a `Session` per event), its SQLAlchemy
  pool shared by the threads; an event that fails with "database is locked" (SQLite writers
  colliding) is retried, as its user would have to.

    python -m bench.threads --db sqlite --sync FULL --threads 1,4,16 --rounds 3
    python -m bench.threads --db postgres --threads 1,4,16 --rounds 3
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from itertools import islice
from pathlib import Path
from typing import Any

from bench import workload
from bench.common import PG_URL, fsync_us, loadavg, median, pg_drop_schema, pg_fresh_schema, table
from bench.contenders.base import Target, pg_options
from bench.contenders.engine import build_definition
from statemachines import Engine


class _Engine:
    def __init__(self, group: bool) -> None:
        self.group = group
        self.engine: Any = None

    def setup(self, target: Target) -> None:
        if target.backend == "sqlite":
            url = f"sqlite:///{target.sqlite_path}"
            self.engine = Engine(url, sqlite_synchronous=target.sync, group_commit=self.group)
        else:
            url = pg_fresh_schema(target.pg_url, target.schema)
            self.engine = Engine(url, group_commit=self.group)
        self.engine.register(build_definition())

    def sender(self) -> Any:
        engine = self.engine

        def op(o: workload.Op) -> None:
            if o.event is None:
                engine.start(workload.MACHINE, o.payload, instance_id=o.instance_id)
            else:
                engine.send(o.instance_id, o.event, o.payload)

        return op

    def note(self) -> str:
        group = self.engine.group
        return f"{group.events / max(group.commits, 1):.1f} events/commit" if group is not None else ""

    def close(self) -> None:
        self.engine.close()


class _Raw:
    """The raw contender with one connection per thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.target: Target | None = None
        self.opened: list[Any] = []
        self.spare: list[Any] = []

    def _make(self) -> Any:
        import importlib

        return importlib.import_module(f"bench.contenders.{self.name}").make()

    def setup(self, target: Target) -> None:
        self.target = target
        first = self._make()
        first.setup(target)
        self.opened, self.spare = [first], [first]

    def sender(self) -> Any:
        assert self.target is not None
        if self.spare:
            c = self.spare.pop()
        else:
            c = self._make()
            if self.name == "raw_sqlite":
                c.open(str(self.target.sqlite_path), self.target.sync)
            else:
                import psycopg

                c.conn = psycopg.connect(self.target.pg_url, options=pg_options(self.target.schema))
            self.opened.append(c)

        if self.name == "raw_sqlite":
            # SQLite's busy handler is not fair: with 16 writers one can wait longer than the
            # contenders' 5 s; the engine's default is 30 s. Waiting is what a user wants here.
            c.conn.execute("PRAGMA busy_timeout=120000")

        def op(o: workload.Op) -> None:
            if o.event is None:
                c.start(o.instance_id, o.payload)
            else:
                c.send(o.instance_id, o.event, o.payload)

        return op

    def note(self) -> str:
        return ""

    def close(self) -> None:
        for c in self.opened:
            c.close()


class _Orm:
    def __init__(self) -> None:
        self.c: Any = None
        self.retries = 0

    def setup(self, target: Target) -> None:
        from bench.contenders.orm_transitions import make

        self.c = make()
        self.c.setup(target)
        self.retries = 0

    def sender(self) -> Any:
        from sqlalchemy.exc import OperationalError

        c = self.c

        def op(o: workload.Op) -> None:
            while True:
                try:
                    if o.event is None:
                        c.start(o.instance_id, o.payload)
                    else:
                        c.send(o.instance_id, o.event, o.payload)
                    return
                except OperationalError as exc:
                    if "locked" not in str(exc):
                        raise
                    self.retries += 1

        return op

    def note(self) -> str:
        return f"{self.retries} retries" if self.retries else ""

    def close(self) -> None:
        self.c.close()


def contender(name: str) -> Any:
    if name == "engine":
        return _Engine(group=False)
    if name == "engine_group":
        return _Engine(group=True)
    if name == "orm_transitions":
        return _Orm()
    return _Raw(name)


def run_config(name: str, threads: int, per_thread: int, args: argparse.Namespace) -> tuple[float, str]:
    """Events/s of `threads` threads running `per_thread` operations each, on a fresh database."""
    with tempfile.TemporaryDirectory(prefix="bench-threads-", dir=args.dir) as tmp:
        schema = f"bench_threads_{name}"
        target = Target(args.db, Path(tmp), sync=args.sync, pg_url=args.pg_url, schema=schema)
        c = contender(name)
        c.setup(target)
        try:
            scripts = [list(islice(workload.stream(20, prefix=f"t{i}-"), per_thread)) for i in range(threads)]
            senders = [c.sender() for _ in range(threads)]
            barrier = threading.Barrier(threads + 1)
            errors: list[BaseException] = []

            def work(i: int) -> None:
                barrier.wait()
                try:
                    for op in scripts[i]:
                        senders[i](op)
                except BaseException as exc:  # reported, not hidden
                    errors.append(exc)

            pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
            for t in pool:
                t.start()
            barrier.wait()
            t0, cpu0 = time.perf_counter(), time.process_time()
            for t in pool:
                t.join()
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            if errors:
                raise errors[0]
            note = ", ".join(x for x in (c.note(), f"{cpu / elapsed:.2f} cores busy") if x)
        finally:
            c.close()
            if args.db == "postgres":
                pg_drop_schema(args.pg_url, schema)
    return threads * per_thread / elapsed, note


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.threads", description=__doc__)
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--sync", default="FULL")
    p.add_argument("--threads", default="1,4,16")
    p.add_argument("--ops", type=int, default=3200, help="operations per configuration (split over threads)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--contenders", default="")
    p.add_argument("--pg-url", default=PG_URL)
    p.add_argument("--dir", default=None, help="where SQLite files go (default: the temp directory)")
    args = p.parse_args(argv)
    raw = "raw_psycopg" if args.db == "postgres" else "raw_sqlite"
    default = f"{raw},engine,engine_group" + (",orm_transitions" if args.db == "sqlite" else "")
    names = (args.contenders or default).split(",")
    counts = [int(x) for x in args.threads.split(",")]
    configs = [(n, t) for t in counts for n in names]
    rates: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    notes: dict[tuple[str, int], str] = {}
    disk = args.dir or tempfile.gettempdir()
    small, commit = fsync_us(directory=disk), fsync_us(directory=disk, size=36_000)
    print(
        f"fsync on {disk}: {small:.0f} us (100 B), {commit:.0f} us (36 KB) median; load {loadavg()}",
        flush=True,
    )
    for r in range(args.rounds):
        shift = r % len(configs)
        for name, t in configs[shift:] + configs[:shift]:
            rate, note = run_config(name, t, max(1, args.ops // t), args)
            rates[name, t].append(rate)
            notes[name, t] = note
            print(f"round {r + 1}: {name:<16} {t:>2} threads {rate:>8,.0f} ev/s {note}", flush=True)
    rows = []
    for name, t in configs:
        m = median(rates[name, t])
        single = median(rates[name, counts[0]]) if (name, counts[0]) in rates else float("nan")
        base = median(rates[raw, t]) if (raw, t) in rates else float("nan")
        row = [name, t, " / ".join(f"{x:,.0f}" for x in rates[name, t]), f"{m:,.0f}"]
        row += [f"{m / single:.2f}x", f"{m / base:.2f}x", notes[name, t]]
        rows.append(row)
    print()
    print(f"`python -m bench.threads {' '.join(argv or [])}`".replace("  ", " "))
    print()
    heads = [
        "contender",
        "threads",
        "ev/s per round",
        "median ev/s",
        f"vs {counts[0]} thread(s)",
        f"vs {raw}",
        "",
    ]
    print(table(heads, rows, right=1))

    def paired(a: tuple[str, int], b: tuple[str, int]) -> str:
        return f"{median([x / y for x, y in zip(rates[a], rates[b], strict=True)]):.2f}x"

    if "engine_group" in names and "engine" in names:
        for t in counts:
            line = f"- {t} threads, paired per round: engine_group / engine at {counts[0]} thread(s)"
            line += f" {paired(('engine_group', t), ('engine', counts[0]))}"
            line += f", / engine at {t} {paired(('engine_group', t), ('engine', t))}"
            line += f", / {raw} at {t} {paired(('engine_group', t), (raw, t))}"
            if "orm_transitions" in names:
                line += f", / orm_transitions at {t} {paired(('engine_group', t), ('orm_transitions', t))}"
            print(line)
    print(f"\n(load average at the end: {loadavg()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
