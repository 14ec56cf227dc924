"""Moving an example's simulated time: run what is due, then jump a `ManualClock` to the next
pending effect retry or timer of the given instances, until nothing of theirs is pending.

The examples drive only their own instances (a test may share the engine with others), which is
why they do not use `statemachines.testing.run_until_idle`, which drives the whole engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from statemachines import Engine, ManualClock


def drive(engine: Engine, clock: ManualClock, ids: list[str], *, max_steps: int = 200) -> None:
    """Run what is due, then jump the clock to the next pending effect retry or timer of `ids`;
    stop when nothing is pending (or after `max_steps` jumps)."""
    for _ in range(max_steps):
        engine.run_due()
        due = []
        for iid in ids:
            status = engine.status(iid)
            due += [e.next_at for e in status.effects if e.status == "pending" and e.next_at is not None]
            due += [t.fire_at for t in status.timers]
        if not due:
            return
        wait = min(due) - clock.now()
        if wait.total_seconds() > 0:
            clock.advance(wait)


def print_demo(run: Callable[[Engine, ManualClock], Any]) -> None:  # pragma: no cover - manual demo
    """`python -m statemachines.examples.<name>`: the example's `run` on a throwaway SQLite file
    with a manual clock, its outcome printed as JSON."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        demo_clock = ManualClock()
        print(json.dumps(run(Engine(f"{tmp}/demo.db", clock=demo_clock), demo_clock), indent=2))
