"""Bytes per durable event: what each commit hands to the log, engine against the raw driver.

A figure that does not depend on the machine (issue 14, item 1): on SQLite, WAL frames (pages)
per operation; on PostgreSQL, WAL bytes per operation. Both contenders run the part-1 workload
(`bench.workload`: 200 live orders, starts and events) on a fresh database; after a warm-up the
log is measured over the next `--events` operations.

SQLite: automatic checkpoints are off on the measuring connection, the WAL is truncated after the
warm-up, and the frames in the -wal file after the run are counted (each commit appends one
frame per page it changed). Each frame's page is attributed to its B-tree (`dbstat`), so the
table says which index costs what; by default by the page's owner at the end of the run, which
misattributes pages that changed owner (a B-tree that frees pages as fast as it takes new ones,
like the index of live instances, looks cheaper than it is): `--exact` reads `dbstat` after
every operation instead (minutes for a few thousand operations).

PostgreSQL: the WAL between `pg_current_wal_lsn()` before and after is read with `pg_waldump`
(the server is shared: other sessions write WAL too). Only records of our transactions count:
those of transactions that touched our schema's relations, their commit records included, plus
records without a transaction on our relations (page pruning). Full-page images depend on when
the server last checkpointed, so they are reported apart: `record bytes` is the figure to
compare; `with FPI` is what was written this time.

    python -m bench.wal_bytes --db sqlite --events 3000
    python -m bench.wal_bytes --db postgres --events 2000

`--context-bytes N` adds an N-byte string to every instance's starting context (the workload's
own contexts are about 60 bytes of JSON): which tables and indexes cost what depends on the row
size (SQLite B-trees keyed by something other than a rowid take rows over ~1 KB into overflow
pages, and hold a few wide rows per page).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import struct
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench import workload
from bench.common import PG_URL, table
from bench.contenders.base import Target

CONTENDERS = ("raw_sqlite", "engine")
PG_CONTENDERS = ("raw_psycopg", "engine")
WALDUMP = "/usr/lib/postgresql/15/bin/pg_waldump"
PG_WAL_DIR = "/var/lib/postgresql/15/main/pg_wal"


def _make(name: str) -> Any:
    import importlib

    return importlib.import_module(f"bench.contenders.{name}").make()


def _run(contender: Any, ops: list[workload.Op]) -> None:
    for op in ops:
        if op.event is None:
            contender.start(op.instance_id, op.payload)
        else:
            contender.send(op.instance_id, op.event, op.payload)


def _sqlite_conn(contender: Any) -> Any:
    return contender.engine.db.connection() if contender.name == "engine" else contender.conn


def wal_frames(path: Path) -> list[int]:
    """The page number of every frame in a WAL file (32-byte header, then 24-byte frame headers
    each followed by one page)."""
    data = path.read_bytes()
    if len(data) < 32:
        return []
    page_size = struct.unpack(">I", data[8:12])[0]
    pages, offset = [], 32
    while offset + 24 + page_size <= len(data):
        pages.append(struct.unpack(">I", data[offset : offset + 4])[0])
        offset += 24 + page_size
    return pages


def sqlite_measure(
    name: str, ops: list[workload.Op], warm: list[workload.Op], sync: str, exact: bool = False
) -> dict[str, Any]:
    """WAL frames per operation for one contender, and per B-tree: by the page's owner at the end
    of the run, or with `exact` by its owner right after the commit that wrote it (`dbstat` read
    after every operation: slow, but a page that a B-tree freed and another reused is counted
    for the tree that wrote it)."""
    contender = _make(name)
    by_tree: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix=f"walb-{name}-") as tmp:
        target = Target(backend="sqlite", workdir=Path(tmp), sync=sync)
        contender.setup(target)
        try:
            _run(contender, warm)
            conn = _sqlite_conn(contender)
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            wal = Path(f"{target.sqlite_path}-wal")
            seen = 0
            for op in ops if exact else ():
                _run(contender, [op])
                frames = wal_frames(wal)
                owners = dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
                by_tree.update(owners.get(p, "(free/other)") for p in frames[seen:])
                seen = len(frames)
            if not exact:
                _run(contender, ops)
            frames = wal_frames(wal)
            if not exact:
                owners = dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
                by_tree.update(owners.get(p, "(free/other)") for p in frames)
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        finally:
            contender.close()
    return {
        "name": name,
        "frames": len(frames),
        "per_op": len(frames) / len(ops),
        "bytes_per_op": len(frames) * (page_size + 24) / len(ops),
        "by_tree": {k: v / len(ops) for k, v in by_tree.most_common()},
    }


_RECORD = re.compile(r"len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*(\d+),")
_REL = re.compile(r"rel \d+/\d+/(\d+)")


def _lsn(conn: Any) -> str:
    return conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]


def pg_measure(name: str, ops: list[workload.Op], warm: list[workload.Op], pg_url: str) -> dict[str, Any]:
    """WAL bytes per operation for one contender (its own transactions only)."""
    import psycopg

    contender = _make(name)
    schema = f"bench_wal_{name}"
    target = Target(backend="postgres", workdir=Path(tempfile.gettempdir()), pg_url=pg_url, schema=schema)
    contender.setup(target)
    try:
        _run(contender, warm)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            start = _lsn(conn)
            _run(contender, ops)
            end = _lsn(conn)
            nodes = {
                str(row[0]): row[1]
                for row in conn.execute(
                    "SELECT pg_relation_filenode(c.oid), c.relname FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
                    (schema,),
                ).fetchall()
                if row[0] is not None
            }
    finally:
        contender.close()
    dump = subprocess.run(
        [WALDUMP, "-p", PG_WAL_DIR, "-s", start, "-e", end],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    ours_tx: set[str] = set()
    parsed = []
    for line in dump:
        m = _RECORD.search(line)
        if not m:
            continue
        rels = [r for r in _REL.findall(line) if r in nodes]
        parsed.append((int(m[1]), int(m[2]), m[3], rels))
        if rels and m[3] != "0":
            ours_tx.add(m[3])
    rec = tot = count = 0
    by_rel: Counter[str] = Counter()
    for rec_len, tot_len, tx, rels in parsed:
        if tx in ours_tx or (tx == "0" and rels):
            rec, tot, count = rec + rec_len, tot + tot_len, count + 1
            by_rel[nodes[rels[0]] if rels else "(commit/other)"] += rec_len
    n = len(ops)
    return {
        "name": name,
        "rec_per_op": rec / n,
        "tot_per_op": tot / n,
        "records_per_op": count / n,
        "transactions": len(ours_tx),
        "by_rel": {k: v / n for k, v in by_rel.most_common()},
    }


def pad_contexts(ops: list[workload.Op], size: int) -> list[workload.Op]:
    """The operations with an `size`-byte `note` in every start's context (unchanged for 0)."""
    if size <= 0:
        return ops
    note = "x" * size
    return [o if o.event else dataclasses.replace(o, payload={**o.payload, "note": note}) for o in ops]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.wal_bytes", description=__doc__)
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--events", type=int, default=3000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--sync", default="FULL")
    p.add_argument("--pg-url", default=PG_URL)
    p.add_argument("--contenders", default="")
    p.add_argument("--context-bytes", type=int, default=0, help="pad each starting context by N bytes")
    p.add_argument("--exact", action="store_true", help="SQLite: attribute each commit's pages (slow)")
    args = p.parse_args(argv)
    stream = pad_contexts(workload.script(args.warmup + args.events), args.context_bytes)
    warm, ops = stream[: args.warmup], stream[args.warmup :]
    if args.db == "sqlite":
        names = args.contenders.split(",") if args.contenders else CONTENDERS
        results = [sqlite_measure(n, ops, warm, args.sync, args.exact) for n in names]
        base = results[0]["per_op"]
        print(table(
            ["contender", "WAL pages / op", "WAL bytes / op", f"vs {results[0]['name']}"],
            [[r["name"], f"{r['per_op']:.2f}", f"{r['bytes_per_op']:,.0f}", f"{r['per_op'] / base:.2f}x"]
             for r in results],
        ))  # fmt: skip
        for r in results:
            print(f"\n{r['name']}: pages per op by B-tree: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in r["by_tree"].items()))  # fmt: skip
    else:
        names = args.contenders.split(",") if args.contenders else PG_CONTENDERS
        results = [pg_measure(n, ops, warm, args.pg_url) for n in names]
        base = results[0]["rec_per_op"]
        print(table(
            ["contender", "WAL record bytes / op", "with FPI", "records / op", f"vs {results[0]['name']}"],
            [[r["name"], f"{r['rec_per_op']:,.0f}", f"{r['tot_per_op']:,.0f}", f"{r['records_per_op']:.1f}",
              f"{r['rec_per_op'] / base:.2f}x"] for r in results],
        ))  # fmt: skip
        for r in results:
            print(f"\n{r['name']}: record bytes per op by relation: "
                  + ", ".join(f"{k} {v:.0f}" for k, v in r["by_rel"].items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
