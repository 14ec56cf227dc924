"""Issue 10, item 8: the cost of a statechart event, end to end and in memory.

End to end: one event through `Engine.send` on SQLite (WAL, `synchronous=NORMAL` and `FULL`),
for a flat machine (`a <-> b` on `E`) and for a 3-region, 3-level parallel machine (`p` with
regions `r1..r3`, each with leaves `a`, `b`: `p.r1.a`), where each `E` moves all three regions
(three transitions in one microstep, one history record with the whole configuration); both
also with an action on every transition (the engine remembers the plan of a chart step, so
neither pair runs the SCXML algorithm per event: the callable-free pair reuses the outcome, the
`+ action` pair runs the three actions and writes their context). Same
number of live instances, events sent round-robin, a fresh database per contender per round,
contenders interleaved and rotated each round; the table gives every round, the medians and the
median of the per-round ratios chart / flat (the target: <= 1.5x on NORMAL).

In memory: `bench.chart_memory` (our `CompiledChart` vs pytransitions `HierarchicalMachine` vs
python-statemachine 3.x `StateChart`, same 3-region machine, no storage).

    python -m bench.statecharts [--quick] [--rounds N] [--events N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import chart_memory
from bench.common import Check, Section, Stopwatch, fsync_us, loadavg, median, revision, table
from statemachines import Definition, Engine, State, Transition, machine, parallel, state, transition

REGIONS = 3
TARGET = 1.5
SYNCS = ("NORMAL", "FULL")


def count(ctx: dict[str, int], event: object) -> None:
    """The one callable of the `+ action` variants: a realistic step runs some code."""
    ctx["n"] = ctx.get("n", 0) + 1


def _toggle(action: bool) -> dict[str, State]:
    def go(target: str) -> Transition | str:
        return transition(target, action=count) if action else target

    return {"a": state(on={"E": go("b")}), "b": state(on={"E": go("a")})}


def flat_definition(action: bool = False) -> Definition:
    return machine("bench_flat", initial="a", states=_toggle(action))


def chart_definition(action: bool = False) -> Definition:
    regions = {f"r{i}": state(initial="a", states=_toggle(action)) for i in range(1, REGIONS + 1)}
    return machine("bench_chart", initial="p", states={"p": parallel(regions)})


#: The issue's machines have no callables; the `+ action` pair measures steps whose callables run
#: and whose context is parsed and written on every event (the step's plan is replayed).
CONTENDERS: dict[str, Callable[[], Definition]] = {
    "flat (2 states)": flat_definition,
    f"parallel, {REGIONS} regions x 3 levels": chart_definition,
    "flat + action": lambda: flat_definition(action=True),
    f"parallel, {REGIONS} regions x 3 levels + action": lambda: chart_definition(action=True),
}
PAIRS = (  # label, chart contender, flat contender
    ("chart / flat (paired)", f"parallel, {REGIONS} regions x 3 levels", "flat (2 states)"),
    (
        "chart / flat, + action (paired)",
        f"parallel, {REGIONS} regions x 3 levels + action",
        "flat + action",
    ),
)


def one_pass(build: Callable[[], Definition], sync: str, events: int, instances: int, warmup: int) -> float:
    """Microseconds per `Engine.send` on a fresh SQLite database (starts not timed)."""
    definition = build()
    with tempfile.TemporaryDirectory(prefix="bench-chart-") as tmp:
        engine = Engine(str(Path(tmp) / "bench.db"), sqlite_synchronous=sync)
        try:
            engine.register(definition)
            ids = [f"i{k}" for k in range(instances)]
            for iid in ids:
                engine.start(definition.name, {}, instance_id=iid)
            for k in range(warmup):
                engine.send(ids[k % instances], "E")
            t0 = time.perf_counter()
            for k in range(events):
                engine.send(ids[k % instances], "E")
            elapsed = time.perf_counter() - t0
            sent = warmup + events
            check = engine.get(ids[0])
            assert check.version == 1 + sent // instances + (1 if sent % instances else 0), check
        finally:
            engine.close()
    return elapsed / events * 1e6


def end_to_end(sync: str, rounds: int, events: int, instances: int, warmup: int) -> dict[str, list[float]]:
    """Per contender, µs per event of each round (rounds interleaved, order rotated)."""
    names = list(CONTENDERS)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            out[name].append(one_pass(CONTENDERS[name], sync, events, instances, warmup))
    return out


def run(quick: bool = False, rounds: int | None = None, events: int | None = None) -> Section:
    sw = Stopwatch()
    rounds = rounds or (3 if quick else 7)
    events = events or (500 if quick else 2000)
    instances, warmup = 100, 200
    started = datetime.now(UTC)
    parts = [
        f"_{started:%Y-%m-%d %H:%M} UTC, git {revision()}; fsync of a small write on this disk"
        f" {fsync_us():.0f} us median; load average at the start {loadavg()}_",
        "",
        f"End to end, `Engine.send` on SQLite (WAL), {instances} live instances, {events} events per"
        f" round after {warmup} untimed, {rounds} interleaved rounds, fresh database each time;"
        " µs per event (lower is better):",
        "",
    ]
    checks = []
    for sync in SYNCS:
        samples = end_to_end(sync, rounds, events, instances, warmup)
        rows = [
            [name, *(f"{v:.0f}" for v in values), f"{median(values):.0f}"] for name, values in samples.items()
        ]
        found = {}
        for label, chart_name, flat_name in PAIRS:
            ratios = [c / f for c, f in zip(samples[chart_name], samples[flat_name], strict=True)]
            found[label] = median(ratios)
            rows.append([label, *(f"{v:.2f}x" for v in ratios), f"**{found[label]:.2f}x**"])
        parts += [
            f"**synchronous={sync}**",
            "",
            table(["machine", *(f"r{i + 1}" for i in range(rounds)), "median µs"], rows),
            "",
        ]
        if sync == "NORMAL":
            for label, _chart, _flat in PAIRS:
                ratio = found[label]
                what = label.replace(" (paired)", "").replace("chart / flat", "chart event / flat event")
                checks.append(Check(f"10.8 {what}, Engine.send, SQLite NORMAL", f"<= {TARGET}x",
                                    f"{ratio:.2f}x", ratio <= TARGET))  # fmt: skip
    mem_rounds, mem_events = (3, 1000) if quick else (7, 2000)
    memory = chart_memory.measure(mem_rounds, mem_events)
    ours = memory[chart_memory.REFERENCE]
    parts += [
        f"In memory (`python -m bench.chart_memory --rounds {mem_rounds} --events {mem_events}`): the same"
        f" {REGIONS}-region machine, one event moving every region, no storage; no callbacks but the"
        " `+ action` rows'; ratios against ours with nothing remembered (the algorithm every event):",
        "",
        table(
            ["interpreter", "µs per event (median)", "vs ours, nothing remembered"],
            [[name, f"{us:.1f}", f"{us / ours:.2f}x"] for name, us in memory.items()],
        ),
        "",
        f"(load average at the end {loadavg()})",
    ]
    return Section("10. Statecharts: an event in a parallel machine", "\n".join(parts), checks, sw.elapsed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--events", type=int)
    args = parser.parse_args(argv)
    section = run(args.quick, args.rounds, args.events)
    section.revision = revision()
    print(section.markdown())
    for check in section.checks:
        print(f"{check.item}: target {check.target}, measured {check.measured}, met {check.met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
