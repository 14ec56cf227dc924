"""Shared pieces of the reliability suite: the machines under test, child processes, logical
dumps of the database, and the invariants every instance must satisfy after any ordeal.

Imported by the tests (as `reliability.support`) and by `child.py` in separate processes, so it
must not import pytest.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from persistence import Database
from statemachines import Effect, Engine, Retry, machine, state, transition

FULL = os.environ.get("RELIABILITY_FULL", "").strip() not in ("", "0")
HERE = Path(__file__).resolve().parent
CHILD = HERE / "child.py"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def scale(ci: Any, full: Any) -> Any:
    """The CI value, or the full-run value under RELIABILITY_FULL=1."""
    return full if FULL else ci


# Figures: each test records what it checked; the conftest prints them at the end of the run ------
FIGURES: list[tuple[str, dict[str, Any]]] = []


def record(test: str, **figures: Any) -> None:
    FIGURES.append((test, figures))
    path = os.environ.get("RELIABILITY_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"test": test, "full": FULL, **figures}) + "\n")


# The machines ------------------------------------------------------------------------------------
def inc(ctx: dict[str, Any], event: Any) -> None:
    ctx["n"] = ctx.get("n", 0) + 1


def n_is_even(ctx: dict[str, Any], event: Any) -> bool:
    return ctx.get("n", 0) % 2 == 0


#: Every transition increments the counter, so after any history `n` must equal the number of
#: applied events other than `start`: a lost update or a half-written event shows at once.
#: MAYBE is guarded (rejected when n is odd); STAY is not allowed in `b` (EventNotAllowed); `b`
#: has a 20 ms timer back to `a`.
BUSY = machine(
    "busy",
    initial="a",
    states={
        "a": state(
            on={
                "INC": transition(None, action=inc),
                "FLIP": transition("b", action=inc),
                "MAYBE": transition(None, guard=n_is_even, action=inc),
                "STAY": transition(None, action=inc),
            }
        ),
        "b": state(
            on={
                "INC": transition(None, action=inc),
                "FLIP": transition("a", action=inc),
                "MAYBE": transition(None, guard=n_is_even, action=inc),
            },
            after={"20ms": transition("a", action=inc)},
        ),
    },
)
BUSY_EVENTS = ("INC", "FLIP", "MAYBE", "STAY")
BUSY_TIMER = "after.20ms"


def plan(key: str, instances: Sequence[str]) -> tuple[str, str]:
    """The instance and event an idempotency key stands for: resending a key resends the same
    event to the same instance, whoever does it."""
    h = zlib.crc32(key.encode())
    return instances[h % len(instances)], BUSY_EVENTS[(h >> 8) % len(BUSY_EVENTS)]


def mark_fired(ctx: dict[str, Any], event: Any) -> None:
    ctx["fired"] = ctx.get("fired", 0) + 1


def _append(path: str | None, line: str) -> None:
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


EFFECT_LOG_ENV = "RELIABILITY_EFFECT_LOG"


def notify(ctx: dict[str, Any], call: Any) -> dict[str, Any]:
    """The effect: logs its start and end (an outside world we can audit), fails its first
    attempt on every fourth instance so that retries happen under kills too."""
    log = os.environ.get(EFFECT_LOG_ENV)
    _append(log, f"S {call.key} {call.instance_id} {call.attempt}\n")
    time.sleep(0.002)
    if call.attempt == 1 and zlib.crc32(call.instance_id.encode()) % 4 == 0:
        _append(log, f"F {call.key} {call.instance_id} {call.attempt}\n")
        raise RuntimeError("first attempt fails on purpose")
    _append(log, f"E {call.key} {call.instance_id} {call.attempt}\n")
    return {"key": call.key, "attempt": call.attempt}


#: A timer that must fire exactly once, then an effect that must run at least once with one key.
TIMED = machine(
    "timed",
    initial="waiting",
    states={
        "waiting": state(after={"1h": transition("fired", action=mark_fired)}),
        "fired": state(
            effect=Effect(
                notify, retry=Retry(max_attempts=50, initial="1s", backoff=2.0, max="10s"), lease="1m"
            ),
            on={"done.notify": "notified"},
        ),
        "notified": state(final=True),
    },
)


class ScaledClock:
    """Time that runs `speed` times faster than the wall clock from `base` at wall time `ref`:
    monotonic across processes, so a restarted worker sees the leases of a killed one expire."""

    def __init__(self, base: datetime, ref: float, speed: float) -> None:
        self.base, self.ref, self.speed = base, ref, speed

    def now(self) -> datetime:
        return self.base + timedelta(seconds=(time.time() - self.ref) * self.speed)


# Logical dumps -----------------------------------------------------------------------------------
Dump = dict[str, tuple[tuple[str, ...], list[tuple[str, ...]]]]


def sm_tables(db: Database) -> list[str]:
    with db.read() as cur:
        if db.dialect == "postgresql":
            cur.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name LIKE 'sm%%'"
            )
        else:
            cur.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'sm%'")
        return sorted(r[0] for r in cur.fetchall() if r[0].startswith("sm_"))


def dump(db: Database) -> Dump:
    """Every row of every `sm_*` table, as sorted text tuples (order-independent)."""
    out: Dump = {}
    with db.read() as cur:
        for table in sm_tables(db):
            cur.execute(f'SELECT * FROM "{table}"')
            cols = tuple(d[0] for d in cur.description)
            rows = sorted(tuple(repr(v) for v in row) for row in cur.fetchall())
            out[table] = (cols, rows)
    return out


def dump_diff(before: Dump, after: Dump) -> dict[str, tuple[list[dict[str, str]], list[dict[str, str]]]]:
    """Per table: (rows removed, rows added), each row as {column: value}."""
    diff = {}
    for table in sorted(set(before) | set(after)):
        cols, old = before.get(table, ((), []))
        cols2, new = after.get(table, ((), []))
        old_c, new_c = Counter(old), Counter(new)
        removed = [dict(zip(cols, r, strict=True)) for r in (old_c - new_c).elements()]
        added = [dict(zip(cols2, r, strict=True)) for r in (new_c - old_c).elements()]
        if removed or added:
            diff[table] = (removed, added)
    return diff


def assert_unchanged(before: Dump, after: Dump, what: str) -> None:
    diff = dump_diff(before, after)
    assert not diff, f"{what}: the database changed on an error: {diff}"


def assert_only_rejection_recorded(before: Dump, after: Dump, what: str) -> None:
    """A rejected event is documented to leave exactly one `rejected` history record, the
    instance's `last_seq` bumped, and (with a key) one receipt; nothing else may change."""
    diff = dump_diff(before, after)
    hist_removed, hist_added = diff.pop("sm_history", ([], []))
    assert not hist_removed and len(hist_added) == 1, f"{what}: {hist_added} / {hist_removed}"
    assert hist_added[0]["outcome"] == repr("rejected"), f"{what}: {hist_added}"
    rec_removed, rec_added = diff.pop("sm_receipts", ([], []))
    assert not rec_removed and len(rec_added) <= 1, f"{what}: receipts {rec_added} / {rec_removed}"
    inst_removed, inst_added = diff.pop("sm_instances", ([], []))
    assert len(inst_removed) == len(inst_added) == 1, f"{what}: instances {inst_added} / {inst_removed}"
    changed = {c for c in inst_added[0] if inst_added[0][c] != inst_removed[0][c]}
    assert changed == {"last_seq"}, f"{what}: instance columns changed: {changed}"
    assert not diff, f"{what}: unexpected changes: {diff}"


# Invariants --------------------------------------------------------------------------------------
@dataclass
class Facts:
    """What `check_busy_instance` found, for the figures and for cross-checks with client logs."""

    records: int = 0
    applied: int = 0
    rejected: int = 0
    timer_firings: int = 0
    by_key: dict[str, Any] = field(default_factory=dict)  # key -> (seq, outcome, version after)


def raw_rows(engine: Engine, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with engine.db.read() as cur:
        cur.execute(engine.db.sql(sql), params)
        return cur.fetchall()


def check_busy_instance(engine: Engine, iid: str, facts: Facts | None = None) -> Facts:
    """Every invariant of a BUSY instance, from its history alone:

    - seq is 1..N without gaps; version == applied records; state == last applied target;
    - the counter after each record equals the number of applied events so far (no lost or
      doubled update) and the instance's context equals the last one;
    - no idempotency key appears twice;
    - timers: an instance in `b` has exactly one timer, armed by its current entry; one in
      `a` has none; every timer firing consumed a distinct entry into `b`.
    """
    facts = facts or Facts()
    snap = engine.get(iid)
    hist = engine.history(iid)
    assert [r.seq for r in hist] == list(range(1, len(hist) + 1)), f"{iid}: seq gaps {[r.seq for r in hist]}"
    assert hist[0].event == "start" and hist[0].outcome == "applied"
    n = 0
    version = 0
    state_now = None
    entry_seq = None
    entries_fired: set[int] = set()
    for r in hist:
        if r.outcome == "applied":
            version += 1
            if r.event != "start":
                n += 1
                assert r.source == state_now, f"{iid} seq {r.seq}: source {r.source} but state {state_now}"
            if r.event == BUSY_TIMER:
                assert r.source == "b" and r.target == "a" and r.actor == "timer", r
                assert entry_seq not in entries_fired, f"{iid}: two timer firings for entry {entry_seq}"
                entries_fired.add(entry_seq)  # type: ignore[arg-type]
                facts.timer_firings += 1
            if r.target == "b" and state_now != "b":
                entry_seq = r.seq
            state_now = r.target
            facts.applied += 1
        else:
            assert r.outcome == "rejected", f"{iid} seq {r.seq}: outcome {r.outcome}"
            assert r.source == r.target == state_now, r
            facts.rejected += 1
        assert r.context["n"] == n, f"{iid} seq {r.seq}: counter {r.context['n']} != {n} (lost update)"
        key = r.payload.get("key") if isinstance(r.payload, dict) else None
        if key is not None:
            assert key not in facts.by_key, f"{iid}: key {key} recorded twice"
            facts.by_key[key] = (iid, r.seq, r.outcome, version, r.event, r.target)
        facts.records += 1
    assert snap.version == version, f"{iid}: version {snap.version} != applied {version}"
    assert snap.state == state_now, f"{iid}: state {snap.state} != last applied target {state_now}"
    assert snap.context["n"] == n, f"{iid}: context {snap.context} != {n}"
    timers = raw_rows(
        engine, "SELECT entered_seq, state, event FROM sm_timers WHERE instance_id = :id", {"id": iid}
    )
    (entered,) = raw_rows(engine, "SELECT entered_seq FROM sm_instances WHERE id = :id", {"id": iid})[0]
    if snap.state == "b":
        assert entered == entry_seq, f"{iid}: entered_seq {entered} != last entry into b {entry_seq}"
        assert timers == [(entry_seq, "b", BUSY_TIMER)], f"{iid}: timers {timers} for entry {entry_seq}"
    else:
        assert timers == [], f"{iid}: in {snap.state} but timers {timers}"
    return facts


def start_busy(engine: Engine, ids: Iterable[str]) -> list[str]:
    out = []
    for iid in ids:
        engine.start("busy", {"n": 0}, instance_id=iid)
        out.append(iid)
    return out


# Child processes ---------------------------------------------------------------------------------
_MP: list[Any] = []


def _context() -> Any:
    """A forkserver that pre-imports the engine: children are fresh processes forked from it
    (never from the test process), ready in milliseconds."""
    if not _MP:
        ctx = multiprocessing.get_context("forkserver")
        # Preload what is importable from anywhere (the server does not get the test's sys.path);
        # each child then imports only this small package.
        ctx.set_forkserver_preload(["statemachines", "persistence", "psycopg", "yaml"])
        _MP.append(ctx)
    return _MP[0]


def launch(mode: str, args: Sequence[str], err: Path, env: dict[str, str] | None = None) -> Any:
    """Start `child.run(mode, args)` in a new process; its stderr goes to `err`."""
    from reliability import child

    proc = _context().Process(target=child.run, args=(mode, list(args), str(err), env or {}), daemon=True)
    proc.start()
    return proc


def sleep_then_kill(
    proc: Any, log: Path, rng: Any, early: tuple[float, float], late: tuple[float, float]
) -> bool:
    """Let a child live a random while, then SIGKILL it; False if it had already exited.

    Mostly (85%) the while starts once the child logged its life's `L` line (its engine is set
    up), so it is spent sending or working even on a loaded machine, where starting a Python
    process can take longer than the whole while; otherwise it starts at once, to kill children
    during start-up too."""
    if rng.random() < 0.15:
        time.sleep(rng.uniform(*early))
    else:
        lives = sum(1 for ln in read_log(log) if ln[0] == "L")
        deadline = time.monotonic() + 60
        while proc.is_alive() and time.monotonic() < deadline:
            if sum(1 for ln in read_log(log) if ln[0] == "L") > lives:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(*late))
    if not proc.is_alive():
        return False
    kill(proc)
    return True


def kill(proc: Any) -> None:
    """SIGKILL: no handler, no cleanup, no flush; then reap it."""
    if proc.is_alive():
        proc.kill()
    proc.join(30)
    assert proc.exitcode is not None, "a killed child did not die"


def error_text(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")[-4000:]


def read_log(path: Path) -> list[list[str]]:
    """Complete lines of a child's log, split on spaces (a torn last line is ignored)."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    return [ln.split(" ") for ln in lines[:-1] if ln]
