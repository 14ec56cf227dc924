"""Shared statecharts for the chart diagram tests (no tests here): a 3-region, 3-level KYC check."""

from __future__ import annotations

from typing import Any

from statemachines import Effect, Retry, history, machine, parallel, state, transition
from statemachines.definition import Definition


def verify_id(ctx: Any, call: Any) -> dict[str, Any]:
    return {}


def screen(ctx: Any, call: Any) -> dict[str, Any]:
    return {}


def score(ctx: Any, call: Any) -> dict[str, Any]:
    return {}


def good_score(ctx: Any, event: Any) -> bool:
    return bool(ctx.get("score", 0) >= 600)


def log_decision(ctx: Any, event: Any) -> None:
    ctx.setdefault("log", []).append(event.name)


def kyc_definition() -> Definition:
    """collecting -> checks (3 parallel regions, identity 3 levels deep) -> review (history) -> done."""
    return machine(
        "kyc",
        initial="collecting",
        states={
            "collecting": state(on={"SUBMITTED": "checks"}),
            "checks": parallel(
                {
                    "identity": state(
                        initial="documents",
                        states={
                            "documents": state(
                                initial="uploading",
                                states={
                                    "uploading": state(on={"UPLOADED": "scanning"}),
                                    "scanning": state(
                                        effect=Effect(verify_id, retry=Retry(max_attempts=5)),
                                        on={"done.verify_id": "checked", "error.verify_id": "uploading"},
                                    ),
                                    "checked": state(final=True),
                                },
                            ),
                            "verified": state(final=True),
                        },
                        on={"done.state.checks.identity.documents": "verified"},
                    ),
                    "sanctions": state(
                        initial="screening",
                        states={
                            "screening": state(
                                effect=Effect(screen), on={"done.screen": "clear", "error.screen": "flagged"}
                            ),
                            "flagged": state(on={"OFFICER_CLEARED": "clear"}),
                            "clear": state(final=True),
                        },
                    ),
                    "credit": state(
                        initial="scoring",
                        states={
                            "scoring": state(effect=Effect(score), on={"done.score": "scored"}),
                            "scored": state(
                                always=[transition("passed", guard=good_score), transition("manual")]
                            ),
                            "manual": state(on={"CREDIT_OK": "passed"}),
                            "passed": state(final=True),
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
                    "second": state(on={"APPROVE": transition("approved", action=log_decision)}),
                    "last": history(default="first"),
                },
                on={"PAUSE": "paused", "REJECT": "rejected"},
                on_enter=log_decision,
            ),
            "paused": state(on={"RESUME": "review.last"}, after={"30d": "withdrawn"}),
            "escalated": state(on={"RESOLVE": "review"}),
            "approved": state(final=True),
            "rejected": state(final=True),
            "withdrawn": state(final=True),
        },
    )


def chart_history(
    definition: Definition, events: list[tuple[str, dict[str, Any]]], ctx: str = "{}"
) -> list[dict]:
    """History records as the engine writes them (one per event, configuration after it), made by
    running `definition` in memory with `CompiledChart`; a refused event becomes a rejected record."""
    from statemachines import StateMachineError
    from statemachines.chart import CompiledChart
    from statemachines.records import Event

    chart = CompiledChart(definition)
    step = chart.enter_initial(ctx, Event("start", {}, "k1"))
    records: list[dict[str, Any]] = [
        {"seq": 1, "event": "start", "source": None, "target": step.state, "outcome": "applied",
         "configuration": step.configuration},
    ]  # fmt: skip
    for name, payload in events:
        seq = len(records) + 1
        try:
            new = chart.step(step.configuration, step.history, step.context_json, Event(name, payload, "k1"))
        except StateMachineError as exc:
            records.append({"seq": seq, "event": name, "source": step.state, "target": step.state,
                            "outcome": "rejected", "reason": f"{type(exc).__name__}: {exc}",
                            "configuration": step.configuration})  # fmt: skip
            continue
        records.append({"seq": seq, "event": name, "source": step.state, "target": new.state,
                        "outcome": "applied", "configuration": new.configuration})  # fmt: skip
        step = new
    return records


#: KYC: submitted; identity documents uploaded and verified; sanctions screened; credit scored
#: low (manual, then approved); review paused and resumed through the history state.
KYC_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("SUBMITTED", {}),
    ("UPLOADED", {}),
    ("APPROVE", {}),  # refused: no active state handles it yet
    ("done.verify_id", {}),
    ("done.screen", {}),
    ("done.score", {}),
    ("CREDIT_OK", {}),
    ("APPROVE", {}),
    ("PAUSE", {}),
    ("RESUME", {}),
]
