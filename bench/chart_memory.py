"""Issue 10: one event in a 3-region parallel machine, in memory, three statechart interpreters.

The machine: a parallel state `p` with three compound regions `r1..r3`, each with leaves `a`, `b`
(three levels: `p.r1.a`). The event `E` moves every region (`a -> b`, `b -> a`), so one event is
three transitions fired together in one microstep. Measured per event, no storage, no callbacks
but the `+ action` rows':

- `statemachines.chart.CompiledChart.step` (our SCXML Appendix D algorithm; the result record,
  context passed through as JSON text, included): remembered (no callable), with an action per
  transition and its plan replayed, and the same with nothing remembered (`plans=0`),
- `transitions.extensions.HierarchicalMachine` (pytransitions, the library flat machines use),
- python-statemachine 3.x `StateChart` (an SCXML-style engine),
- and, for scale, one flat event through `statemachines.compiled.CompiledMachine.step`.

Rounds are interleaved (each contender once per round) and the median is reported, so a noisy
neighbour on the shared machine costs every contender alike.

    python -m bench.chart_memory [--rounds N] [--events N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from statemachines import machine, parallel, state, transition
from statemachines.chart import CompiledChart
from statemachines.chart.plan import PLAN_CACHE_SIZE
from statemachines.compiled import CompiledMachine
from statemachines.records import Event

REGIONS = 3


def count(ctx: dict[str, int], event: object) -> None:
    ctx["n"] = ctx.get("n", 0) + 1


def ours(action: bool = False, plans: int = PLAN_CACHE_SIZE) -> Callable[[int], None]:
    """`action`: a transition action on every transition (the chart replays a remembered plan:
    the actions run, nothing is decided again); `plans=0`: nothing remembered, the algorithm runs
    on every event, as in every other interpreter here."""

    def go(target: str) -> Any:
        return transition(target, action=count) if action else target

    regions = {
        f"r{i}": state(initial="a", states={"a": state(on={"E": go("b")}), "b": state(on={"E": go("a")})})
        for i in range(1, REGIONS + 1)
    }
    chart = CompiledChart(machine("bench_chart", initial="p", states={"p": parallel(regions)}), plans=plans)
    start = chart.enter_initial("{}", Event("start", {}, "b1"))
    event = Event("E", {}, "b1")

    def run(n: int) -> None:
        conf, hist, ctx = start.configuration, start.history, start.context_json
        for _ in range(n):
            step = chart.step(conf, hist, ctx, event)
            conf, hist, ctx = step.configuration, step.history, step.context_json

    return run


def flat() -> Callable[[int], None]:
    cm = CompiledMachine(
        machine("bench_flat", initial="a", states={"a": state(on={"E": "b"}), "b": state(on={"E": "a"})})
    )
    event = Event("E", {}, "b1")

    def run(n: int) -> None:
        current, ctx = "a", "{}"
        for _ in range(n):
            step = cm.step(current, ctx, event)
            current, ctx = step.target, step.context_json

    return run


def hierarchical_machine() -> Callable[[int], None]:
    from transitions.extensions import HierarchicalMachine

    regions = [{"name": f"r{i}", "children": ["a", "b"], "initial": "a"} for i in range(1, REGIONS + 1)]
    m = HierarchicalMachine(states=[{"name": "p", "parallel": regions}], initial="p", auto_transitions=False)
    for i in range(1, REGIONS + 1):
        m.add_transition("E", f"p_r{i}_a", f"p_r{i}_b")
        m.add_transition("E", f"p_r{i}_b", f"p_r{i}_a")

    def run(n: int) -> None:
        for _ in range(n):
            m.trigger("E")

    return run


def python_statemachine() -> Callable[[int], None]:
    from statemachine import State, StateChart

    namespace: dict[str, object] = {}
    for i in range(1, REGIONS + 1):
        a, b = State(initial=True), State()
        region = type(f"r{i}", (State.Compound,), {f"a{i}": a, f"b{i}": b, "e": a.to(b) | b.to(a)})
        namespace[f"r{i}"] = region
    chart_cls = type("Bench", (StateChart,), {"p": type("p", (State.Parallel,), namespace)})
    sm = chart_cls()

    def run(n: int) -> None:
        for _ in range(n):
            sm.send("e")

    return run


CONTENDERS: dict[str, Callable[[], Callable[[int], None]]] = {
    "statemachines.chart (SCXML Appendix D), step remembered": ours,
    "statemachines.chart + an action per transition, plan replayed": lambda: ours(action=True),
    "statemachines.chart + an action per transition, nothing remembered": lambda: ours(True, 0),
    "pytransitions HierarchicalMachine": hierarchical_machine,
    "python-statemachine 3.x StateChart": python_statemachine,
    "statemachines flat CompiledMachine (1 region, reference)": flat,
}


#: The fair reference: every other interpreter runs its algorithm per event.
REFERENCE = "statemachines.chart + an action per transition, nothing remembered"


def measure(rounds: int, events: int) -> dict[str, float]:
    """Median microseconds per event of each contender."""
    runners = {name: build() for name, build in CONTENDERS.items()}
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        run(min(events, 200))  # warm up
    for _ in range(rounds):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(events)
            samples[name].append((time.perf_counter() - t0) / events * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    results = measure(args.rounds, args.events)
    ours_us = results[REFERENCE]
    print(
        f"| interpreter | µs per event (median of {args.rounds} rounds x {args.events})"
        " | vs ours, nothing remembered |"
    )
    print("|---|---:|---:|")
    for name, us in results.items():
        print(f"| {name} | {us:.1f} | {us / ours_us:.2f}x |")


if __name__ == "__main__":
    main()
