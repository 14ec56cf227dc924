"""Remembered chart steps (`Plan`): what a step decided, replayed without running the algorithm.

Given the stored configuration, the history memory, the event (and `source`) and the transitions
the first selection enabled, everything the SCXML algorithm decides is fixed: the states exited
and entered, the history recorded, the transitions taken, the internal events raised, and the
order in which the exit, transition and entry callables run. Only the callables' effect on the
context differs between two such steps. So `CompiledChart.step` runs the algorithm
(`statemachines.chart.algorithm`) once, keeps its outcome and the callables it ran, and replays
them afterwards: the same callables, in the same order, with the same events, on this call's
context.

A step is remembered only when no guard ran after the first selection (a guard of an eventless or
a `done.state.*` transition reads the context the actions changed, so it must run every time);
guards of the first selection run on every call and their outcome is part of the key (the
enabled transitions). A step that raised is never remembered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statemachines.chart.algorithm import ContextCopy, internal_event
from statemachines.errors import ActionFailed
from statemachines.records import Event

if TYPE_CHECKING:
    from statemachines.chart.compiled import ChartStep

#: Remembered plans per compiled chart; the memory starts over when full.
PLAN_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Plan:
    """One remembered step: its outcome (`context_json` and `context` not this call's) and the
    callables it ran, as `Interpretation.log` recorded them."""

    step: ChartStep
    calls: tuple[tuple[Callable[..., Any], str, tuple[int, str] | None], ...]


class Plans:
    """A bounded memory of plans, keyed by whatever fixes a step's outcome (see the module)."""

    __slots__ = ("plans", "size")

    def __init__(self, size: int = PLAN_CACHE_SIZE) -> None:
        self.plans: dict[tuple[Any, ...], Plan] = {}
        self.size = size  # 0: remember nothing (every step runs the algorithm)

    def get(self, key: tuple[Any, ...]) -> Plan | None:
        return self.plans.get(key)

    def keep(self, key: tuple[Any, ...], plan: Plan) -> None:
        if len(self.plans) >= self.size:
            self.plans.clear()
            if not self.size:
                return
        self.plans[key] = plan


def run_calls(plan: Plan, ctx: ContextCopy, event: Event) -> None:
    """Run the plan's callables in order on `ctx`, as the algorithm would have: each gets the
    external event, or the internal event it ran for; anything raised becomes ActionFailed."""
    internal: dict[tuple[int, str], Event] = {}  # one event per internal event taken, as there
    for fn, where, which in plan.calls:
        if which is None:
            told = event
        else:
            told = internal.get(which) or internal.setdefault(which, internal_event(event, which[1]))
        try:
            fn(ctx.value, told)
        except Exception as exc:
            raise ActionFailed(event.instance_id, event.name, where, exc) from exc
