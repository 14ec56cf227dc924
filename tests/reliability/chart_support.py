"""The statechart of the chart crash test (`test_chart_crash.py`) and its invariants.

Imported by the test and by `child.py` (mode `chartwork`) in separate processes: no pytest here.

FANOUT: a parallel state `work` with three regions, each running one effect in its `busy` leaf;
each `done.<effect>` counts itself in the context and ends its region; `done.state.work` (the
join) counts itself and finishes the instance. After any number of SIGKILLs every counter must be
exactly one: a result delivered twice, or a join fired twice, shows at once.
"""

from __future__ import annotations

import os
import time
import zlib
from typing import Any

from statemachines import Effect, Engine, Retry, machine, parallel, state, transition

REGIONS = ("a", "b", "c")
EFFECTS = {region: f"call_{region}" for region in REGIONS}
CHART_EFFECT_LOG_ENV = "RELIABILITY_CHART_EFFECT_LOG"


def _log(line: str) -> None:
    path = os.environ.get(CHART_EFFECT_LOG_ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _effect(region: str) -> Any:
    def call(ctx: dict[str, Any], call: Any) -> dict[str, Any]:
        """Logs its start and end; the first attempt fails for one instance (and region) in
        three, so retries happen under kills too."""
        _log(f"S {call.key} {call.instance_id} {call.attempt}\n")
        time.sleep(0.002)
        if call.attempt == 1 and zlib.crc32(f"{call.instance_id}/{region}".encode()) % 3 == 0:
            _log(f"F {call.key} {call.instance_id} {call.attempt}\n")
            raise RuntimeError("first attempt fails on purpose")
        _log(f"E {call.key} {call.instance_id} {call.attempt}\n")
        return {"region": region, "attempt": call.attempt}

    call.__name__ = EFFECTS[region]
    return call


def _count(name: str) -> Any:
    def count(ctx: dict[str, Any], event: Any) -> None:
        ctx[name] = ctx.get(name, 0) + 1

    count.__name__ = f"count_{name}"
    return count


def _region(region: str) -> Any:
    effect = _effect(region)
    return state(
        initial="busy",
        states={
            "busy": state(
                effect=Effect(
                    effect, retry=Retry(max_attempts=50, initial="1s", backoff=2.0, max="10s"), lease="1m"
                ),
                on={f"done.{effect.__name__}": transition("finished", action=_count(region))},
            ),
            "finished": state(final=True),
        },
    )


FANOUT = machine(
    "fanout",
    initial="work",
    states={
        "work": parallel(
            {region: _region(region) for region in REGIONS},
            on={"done.state.work": transition("joined", action=_count("joins"))},
        ),
        "joined": state(final=True),
    },
)
EXPECTED_CONTEXT = {**{region: 1 for region in REGIONS}, "joins": 1}


def check_fanout_instance(engine: Engine, iid: str) -> None:
    """Every invariant of a finished FANOUT instance, from the database alone:

    - completed in `joined`, its context counting each region's result and the join once;
    - history: `start`, then one applied `done.<effect>` per region (any order), nothing else,
      seq 1..4 without gaps, the last record's configuration `("joined",)` (the join fired in
      the transaction of the last result);
    """
    snap = engine.get(iid)
    assert (snap.state, snap.status) == ("joined", "completed"), f"{iid}: {snap.state} {snap.status}"
    assert snap.context == EXPECTED_CONTEXT, (
        f"{iid}: context {snap.context} (a result or join applied twice?)"
    )
    hist = engine.history(iid)
    assert [r.seq for r in hist] == list(range(1, len(hist) + 1)), f"{iid}: seq {[r.seq for r in hist]}"
    assert [r.outcome for r in hist] == ["applied"] * len(hist), f"{iid}: {[r.outcome for r in hist]}"
    assert hist[0].event == "start"
    assert sorted(r.event for r in hist[1:]) == sorted(f"done.{name}" for name in EFFECTS.values()), (
        f"{iid}: {[r.event for r in hist]}"
    )
    assert all(r.actor == "effect" for r in hist[1:]), f"{iid}: {[r.actor for r in hist]}"
    assert tuple(hist[-1].configuration) == ("joined",), f"{iid}: {hist[-1].configuration}"
    assert [r.context.get("joins", 0) for r in hist] == [0] * (len(hist) - 1) + [1], (
        f"{iid}: joins per record"
    )
