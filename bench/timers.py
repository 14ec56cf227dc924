"""Issue 6, item 5: due timers fired per second, and effect attempts per second, on PostgreSQL.

Timers: N instances of a machine whose initial state has `after={"1ms": "done"}` are started
(untimed, so N timers are due), then 1, 2 or 4 worker processes run the production loop
(`statemachines.worker.Worker.run_once`: claim a batch with SKIP LOCKED, fire each timer in the
claim's transaction) until nothing is due. Rate = N / (last fire - common start). Exactly once is
checked in the same run: one `after.1ms` history record per instance, every instance `done`,
no timer left, and the workers' counts add up to N.
Effects: the same with a state whose `Effect` returns at once and whose `done.<effect>` event
finishes the instance: claim, call, record the attempt, apply `done.*` (two transactions each).

    python -m bench.timers [--quick]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import psycopg

from bench import procs
from bench.common import (
    PG_URL,
    Check,
    Section,
    Stopwatch,
    loadavg,
    median,
    pg_drop_schema,
    pg_fresh_schema,
    table,
)
from statemachines import Effect, Engine, machine, state
from statemachines.worker import Worker

SCHEMA = "bench_timers"
TIMER_WORKERS = (1, 2, 4)
EFFECT_WORKERS = (1, 2)


def noop(ctx: dict[str, Any], call: Any) -> dict[str, int]:
    return {"attempt": call.attempt}


TIMED = machine(
    "bench-timer",
    initial="waiting",
    states={"waiting": state(after={"1ms": "done"}), "done": state(final=True)},
)
EFFECTED = machine(
    "bench-effect",
    initial="working",
    states={
        "working": state(effect=Effect(noop), on={"done.noop": "finished"}),
        "finished": state(final=True),
    },
)


def _engine(url: str) -> Engine:
    engine = Engine(url)
    engine.register(TIMED)
    engine.register(EFFECTED)
    return engine


def starter(index: int, barrier: Any, url: str, name: str, ids: list[str]) -> dict[str, Any]:
    engine = _engine(url)
    barrier.wait()
    for iid in ids:
        engine.start(name, {}, instance_id=iid)
    engine.close()
    return {"started": len(ids)}


def worker(index: int, barrier: Any, url: str, pg_url: str, name: str) -> dict[str, Any]:
    engine = _engine(url)
    loop = Worker(engine, batch=100)
    remaining = (
        "SELECT (SELECT count(*) FROM sm_timers WHERE machine = %(m)s) + (SELECT count(*) FROM"
        " sm_effects WHERE machine = %(m)s AND status IN ('pending', 'running'))"
    )
    with psycopg.connect(pg_url, options=f"-c search_path={SCHEMA}", autocommit=True) as conn:
        barrier.wait()
        done, last = 0, time.monotonic()
        while True:
            n = loop.run_once()
            if n:
                done, last = done + n, time.monotonic()
                continue
            row = conn.execute(remaining, {"m": name}).fetchone()
            if not row or row[0] == 0:
                break
            time.sleep(0.002)  # the rest is claimed by the others (SKIP LOCKED)
    engine.close()
    return {"done": done, "last": last}


def _arm(url: str, name: str, prefix: str, n: int) -> None:
    ids = [f"{prefix}{i:06d}" for i in range(n)]
    procs.run(2, starter, lambda i: (url, name, ids[i::2]))


def _verify(pg_url: str, name: str, prefix: str, n: int, reported: int) -> list[str]:
    like = prefix + "%"
    queries = {
        "instances": ("SELECT count(*) FROM sm_instances WHERE id LIKE %s", n),
        "instances not final": (
            "SELECT count(*) FROM sm_instances WHERE id LIKE %s AND status <> 'completed'",
            0,
        ),
        "fired records": (
            "SELECT count(*) FROM sm_history WHERE instance_id LIKE %s AND event LIKE 'after.%%'",
            n,
        ),
        "instances fired != once": (
            "SELECT count(*) FROM (SELECT instance_id FROM sm_history WHERE instance_id LIKE %s"
            " AND event LIKE 'after.%%' GROUP BY instance_id HAVING count(*) <> 1) x",
            0,
        ),
        "timers left": ("SELECT count(*) FROM sm_timers WHERE instance_id LIKE %s", 0),
    }
    if name == EFFECTED.name:
        queries["fired records"] = (queries["fired records"][0].replace("after.", "done."), n)
        queries["instances fired != once"] = (
            queries["instances fired != once"][0].replace("after.", "done."),
            0,
        )
        queries["attempts"] = ("SELECT count(*) FROM sm_effect_attempts WHERE instance_id LIKE %s", n)
    problems = [] if reported == n else [f"workers reported {reported} for {n}"]
    with psycopg.connect(pg_url, options=f"-c search_path={SCHEMA}") as conn:
        for label, (sql, want) in queries.items():
            row = conn.execute(sql, (like,)).fetchone()
            got = row[0] if row else None
            if got != want:
                problems.append(f"{prefix}: {label} = {got}, expected {want}")
    return problems


def _measure(url: str, pg_url: str, name: str, configs: tuple[int, ...], n: int, rounds: int) -> tuple[
    dict[int, list[float]], list[str]
]:  # fmt: skip
    rates: dict[int, list[float]] = {k: [] for k in configs}
    problems: list[str] = []
    for r in range(rounds):
        shift = r % len(configs)
        for k in configs[shift:] + configs[:shift]:
            prefix = f"{name}-r{r}k{k}-"
            _arm(url, name, prefix, n)
            out = procs.run(k, worker, lambda i: (url, pg_url, name))
            last = max(x["last"] for x in out.results)
            rates[k].append(n / (last - out.started))
            problems += _verify(pg_url, name, prefix, n, sum(x["done"] for x in out.results))
    return rates, problems


def run(quick: bool = False, pg_url: str = PG_URL) -> Section:
    sw = Stopwatch()
    url = pg_fresh_schema(pg_url, SCHEMA)
    _engine(url).close()
    rounds, n_timers, n_effects = (2, 800, 500) if quick else (3, 6000, 4000)
    try:
        timer_rates, timer_problems = _measure(url, pg_url, TIMED.name, TIMER_WORKERS, n_timers, rounds)
        effect_rates, effect_problems = _measure(
            url, pg_url, EFFECTED.name, EFFECT_WORKERS, n_effects, rounds
        )
    finally:
        pg_drop_schema(pg_url, SCHEMA)
    rows = []
    for what, rates, n in (
        ("timers fired", timer_rates, n_timers),
        ("effect attempts", effect_rates, n_effects),
    ):
        for k, values in rates.items():
            paired = median([x / b for x, b in zip(values, rates[1], strict=True)])
            label = f"{what}, {k} worker{'s' if k > 1 else ''}"
            each = " / ".join(f"{x:,.0f}" for x in values)
            rows.append([label, f"{n:,}", each, f"{median(values):,.0f}", f"{paired:.2f}x"])
    body = [
        f"PostgreSQL; {rounds} rounds, worker counts rotated within each round; `Worker(batch=100)`;"
        f" load average at the end {loadavg()}.",
        "",
        table(["work", "items per run", "per second, each round", "median per second", "vs 1 worker"], rows),
        "",
        "- Exactly once (timers): "
        + _verdict(timer_problems, "one `after.1ms` record per instance, all `done`"),
        "- Effects: "
        + _verdict(effect_problems, "one attempt and one `done.noop` record per instance, all finished"),
    ]
    checks = [
        Check("5. timers fired exactly once, 1/2/4 workers", "exactly once",
              _count(timer_problems, "exactly once"), not timer_problems),
        Check("5. effects: one attempt each (no failures injected)", "one attempt each",
              _count(effect_problems, "one each"), not effect_problems),
    ]  # fmt: skip
    return Section("5. Timers and effects", "\n".join(body), checks, sw.elapsed)


def _count(problems: list[str], ok: str) -> str:
    return ok if not problems else f"{len(problems)} problems"


def _verdict(problems: list[str], what: str) -> str:
    if not problems:
        return f"verified in every run ({what}; the workers' counts add up)."
    return "**FAILED**:" + "".join(f"\n  - {p}" for p in problems)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.timers", description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--pg-url", default=PG_URL)
    args = p.parse_args(argv)
    print(run(args.quick, args.pg_url).markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
