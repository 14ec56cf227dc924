"""Statecharts the engine tests share (tests/test_chart_engine_*.py): small, named for what they show."""

from __future__ import annotations

from typing import Any

from statemachines import Effect, Retry, history, machine, parallel, state, transition
from statemachines.definition import Definition

CALLS: dict[str, list[Any]] = {}


def verify_id(ctx: Any, call: Any) -> dict[str, Any]:
    CALLS.setdefault("verify_id", []).append(call.key)
    return {"id": "ok"}


def screen(ctx: Any, call: Any) -> dict[str, Any]:
    CALLS.setdefault("screen", []).append(call.key)
    return {"hits": 0}


def kyc() -> Definition:
    """The KYC machine of docs/statecharts.md: two parallel checks (effects), a 3-day timer over
    the check phase, a review with pause/resume through a history state."""
    return machine(
        "kyc",
        initial="collecting",
        states={
            "collecting": state(on={"SUBMITTED": "checks"}),
            "checks": parallel(
                {
                    "identity": state(
                        initial="verifying",
                        states={
                            "verifying": state(
                                effect=Effect(verify_id, retry=Retry(max_attempts=2, initial="1s")),
                                on={"done.verify_id": "ok", "error.verify_id": "bad"},
                            ),
                            "ok": state(final=True),
                            "bad": state(final=True),
                        },
                    ),
                    "sanctions": state(
                        initial="screening",
                        states={
                            "screening": state(effect=Effect(screen), on={"done.screen": "clear"}),
                            "clear": state(final=True),
                        },
                    ),
                },
                on={"done.state.checks": "review", "WITHDRAW": "withdrawn"},
                after={"3d": "escalated"},
            ),
            "review": state(
                initial="first",
                states={
                    "first": state(on={"APPROVE": "second"}),
                    "second": state(on={"APPROVE": "approved"}),
                    "last": history(default="first"),
                },
                on={"PAUSE": "paused"},
            ),
            "paused": state(on={"RESUME": "review.last"}),
            "escalated": state(on={"RESOLVE": "review"}),
            "approved": state(final=True),
            "withdrawn": state(final=True),
        },
    )


def phases(*, timer: str = "1h", child_timer: str = "1d") -> Definition:
    """A compound `work` with a timer over its children (`a` -> `b` inside), and a child timer."""
    return machine(
        "phases",
        initial="work",
        states={
            "work": state(
                initial="a",
                states={
                    "a": state(on={"NEXT": "b"}, after={child_timer: "b"}),
                    "b": state(on={"BACK": "a", "FINISH": "finished"}),
                    "finished": state(final=True),
                },
                after={timer: "late"},
                on={"done.state.work": "closed", "STOP": "stopped", "RESTART": "work"},
            ),
            "late": state(on={"AGAIN": "work"}),
            "stopped": state(),
            "closed": state(final=True),
        },
    )


def bump(ctx: Any, event: Any) -> None:
    ctx["n"] = ctx.get("n", 0) + 1


def three_regions() -> Definition:
    """Three regions, three levels: the shape of the benchmark's chart."""

    def region(name: str) -> Any:
        return state(
            initial="idle",
            states={
                "idle": state(on={"GO": f"{name}.busy"}),
                "busy": state(
                    initial="one",
                    states={
                        "one": state(on={"STEP": "two"}),
                        "two": state(on={"STEP": "one"}),
                    },
                    on={"STOP": f"{name}.idle"},
                ),
            },
        )

    return machine(
        "three",
        initial="main",
        states={
            "main": parallel(
                {"r1": region("main.r1"), "r2": region("main.r2"), "r3": region("main.r3")},
                on={"TICK": transition(None, action=bump)},
            ),
        },
    )


def loop() -> Definition:
    """An eventless loop: entering `spin` never settles (StepLimitExceeded)."""
    return machine(
        "loop",
        initial="idle",
        states={
            "idle": state(on={"SPIN": "spin"}, after={"1m": "spin"}),
            "spin": state(always=[transition("spin2")]),
            "spin2": state(always=[transition("spin")]),
        },
    )
