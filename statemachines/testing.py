"""The testing kit: in-memory engines on a manual clock, time that runs itself, readable histories.

Also a pytest plugin (entry point `pytest11`, so installing statemachines is enough): it provides
the fixtures `sm_clock` (a `ManualClock`) and `sm_engine` (an in-memory engine on it). The helpers
work with any `Engine`, on SQLite or PostgreSQL; see docs/testing.md.

Kept light on purpose: pytest imports this module whenever it starts in a project that has
statemachines installed, so nothing heavier than the package itself is imported here, and
`explore` (statemachines.explore) is imported only when called.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from statemachines.errors import InvalidArgument, StateMachineError
from statemachines.records import APPLIED

if TYPE_CHECKING:
    from datetime import datetime

    from statemachines.clock import ManualClock
    from statemachines.definition import Definition
    from statemachines.engine import Engine
    from statemachines.explore import Report

__all__ = ["NotIdle", "assert_history", "explore", "run_until_idle", "sm_clock", "sm_engine", "visited"]

DEFAULT_LIMIT = 1000


class NotIdle(StateMachineError):
    """`run_until_idle` reached its limit with work still due: a timer or effect loop, most likely."""


def run_until_idle(engine: Engine, limit: int = DEFAULT_LIMIT, *, until: datetime | None = None) -> int:
    """Run due timers and effects, jumping the clock to each next one, until nothing is armed.

    Each round runs what is due now (`engine.run_due()`), then moves the engine's clock (a
    `ManualClock`, or any clock with `set`) to `engine.next_due()`. Stops when nothing is armed,
    or before jumping past `until`. Returns the number of timers fired and effect attempts made.
    Raises `NotIdle` when `limit` rounds were not enough (a machine that re-arms forever: a
    recurring timer, an effect that always fails back into the state that runs it)."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidArgument(f"limit must be an integer >= 1, got {limit!r}")
    clock = engine.clock
    if not callable(getattr(clock, "set", None)):
        raise InvalidArgument(
            f"run_until_idle moves the engine's clock, which needs a ManualClock, not {type(clock).__name__}"
        )
    done = 0
    for _ in range(limit):
        done += engine.run_due()
        due = engine.next_due()
        if due is None or (until is not None and due > until):
            return done
        if due > clock.now():
            clock.set(due)  # type: ignore[attr-defined]
    raise NotIdle(
        f"still not idle after {limit} rounds ({done} items run); next due at {engine.next_due()}:"
        " a timer or effect that re-arms itself forever? Raise `limit` if the run is just long"
    )


def visited(engine: Engine, instance_id: str, *, events: bool = False) -> list[Any]:
    """The states an instance went through: its first state, then each state it moved to.

    Only applied events count (a rejected event or a cancel is not a move); staying in a state
    (an internal transition, a self-transition) is not a visit. With `events=True`: one
    `(event, state after)` pair per applied event, internal ones included, start first."""
    records = [r for r in engine.history(instance_id) if r.outcome == APPLIED]
    if events:
        return [(r.event, r.target) for r in records]
    states: list[str] = []
    for r in records:
        if not states or r.target != r.source:
            states.append(r.target)
    return states


def assert_history(engine: Engine, instance_id: str, expected: Sequence[Any]) -> None:
    """Assert the states an instance visited (a list of names), or its applied events with the
    state after each (a list of `(event, state)` pairs); fails with a line diff and the whole
    audit trail. See `visited` for what counts."""
    items = list(expected)
    pairs = bool(items) and all(isinstance(x, tuple | list) and len(x) == 2 for x in items)
    if not pairs and not all(isinstance(x, str) for x in items):
        raise InvalidArgument("expected must be a list of state names or of (event, state) pairs")
    expected_items = [tuple(x) for x in items] if pairs else items
    actual = visited(engine, instance_id, events=pairs)
    if actual == expected_items:
        return
    show = (lambda x: f"{x[0]} -> {x[1]}") if pairs else str
    diff = difflib.ndiff([show(x) for x in expected_items], [show(x) for x in actual])
    trail = "\n".join(
        f"  {r.seq:>3} {r.event}: {r.source or '-'} -> {r.target} ({r.outcome}"
        f"{': ' + r.reason if r.reason else ''})"
        for r in engine.history(instance_id)
    )
    raise AssertionError(
        f"history of {instance_id!r} differs (- expected, + actual):\n"
        + "\n".join(line.rstrip() for line in diff if not line.startswith("?"))
        + f"\naudit trail:\n{trail}"
    )


def explore(
    definition: Definition,
    depth: int = 20,
    context: Any = None,
    payloads: Mapping[str, Any] | None = None,
) -> Report:
    """`statemachines.explore.explore`, imported on first use (see there)."""
    from statemachines.explore import explore as run

    return run(definition, depth=depth, context=context, payloads=payloads)


# The pytest plugin --------------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # pragma: no cover - the helpers above work without pytest
    pass
else:

    @pytest.fixture
    def sm_clock() -> ManualClock:
        """A `ManualClock` at 2030-01-01 UTC: time moves only when the test says so."""
        from statemachines.clock import ManualClock

        return ManualClock()

    @pytest.fixture
    def sm_engine(sm_clock: ManualClock) -> Iterator[Engine]:
        """An engine on a fresh in-memory SQLite database, on `sm_clock`; closed afterwards."""
        from statemachines.engine import Engine

        engine = Engine.in_memory(sm_clock)
        yield engine
        engine.close()
