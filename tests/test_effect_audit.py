"""Every effect's final outcome is a history record: applied when the state has a transition for
it, `recorded` (state, context and version unchanged) when it has none; `engine.effects(id)`
and `statemachines effects ID` list each effect with its attempts. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from statemachines import Effect, Engine, InstanceNotFound, Retry, machine, state
from statemachines.cli import main

FLAKY: dict[str, int] = {}
THREE = Retry(max_attempts=3, initial="1s", jitter=0)


def send_mail(ctx: dict, call: Any) -> dict:
    return {"sent_to": "ana@example.com", "key": call.key}


def flaky(ctx: dict, call: Any) -> str:
    if call.attempt <= FLAKY.get(call.instance_id, 0):
        raise ConnectionError(f"timeout on attempt {call.attempt}")
    return "ok"


def shipping() -> Any:
    return machine(
        "shipping",
        initial="shipped",
        states={
            "shipped": state(
                effect=[Effect(send_mail), Effect(flaky, retry=THREE)],
                on={"DELIVERED": "delivered", "error.flaky": "stuck"},
            ),
            "stuck": state(),
            "delivered": state(final=True),
        },
    )


@pytest.fixture
def shipped(engine):
    engine.register(shipping())
    return engine


def test_a_success_without_a_transition_is_recorded_with_its_result(shipped):
    shipped.start("shipping", instance_id="s1")
    shipped.run_due()
    record = next(r for r in shipped.history("s1") if r.event == "done.send_mail")
    assert (record.outcome, record.source, record.target, record.actor) == (
        "recorded", "shipped", "shipped", "effect",
    )  # fmt: skip
    assert record.payload == {"sent_to": "ana@example.com", "key": '["s1",1,"send_mail"]'}


def test_a_recorded_outcome_changes_neither_state_nor_context_nor_version(shipped):
    shipped.start("shipping", {"n": 1}, instance_id="s1")
    shipped.run_due()
    snap = shipped.get("s1")
    assert (snap.state, snap.context, snap.version) == ("shipped", {"n": 1}, 1)
    assert [r.seq for r in shipped.history("s1")] == [1, 2, 3]


def test_a_statechart_effect_without_a_transition_is_recorded_with_the_configuration(engine):
    from statemachines import parallel

    engine.register(
        machine(
            "regions",
            initial="p",
            states={"p": parallel({
                "left": state(initial="x", states={"x": state(effect=Effect(send_mail), on={"GO": "y"}),
                                                   "y": state()}),
                "right": state(initial="z", states={"z": state()}),
            })},
        )
    )  # fmt: skip
    engine.start("regions", instance_id="c1")
    engine.run_due()
    record = engine.history("c1")[-1]
    assert (record.event, record.outcome, record.configuration) == (
        "done.send_mail", "recorded", ("p.left.x", "p.right.z"),
    )  # fmt: skip
    assert engine.get("c1").version == 1


def test_an_exhausted_effect_with_a_transition_is_applied_as_before(shipped, clock):
    FLAKY["s2"] = 99
    shipped.start("shipping", instance_id="s2")
    for _ in range(3):
        shipped.run_due()
        clock.advance("10s")
    record = next(r for r in shipped.history("s2") if r.event == "error.flaky")
    assert (record.outcome, record.target) == ("applied", "stuck")
    assert record.payload["attempts"] == 3


def test_an_exhausted_effect_stays_failed_after_its_error_transition_left_the_state(shipped, clock):
    FLAKY["s5"] = 99
    shipped.start("shipping", instance_id="s5")
    for _ in range(3):
        shipped.run_due()
        clock.advance("10s")
    assert shipped.get("s5").state == "stuck"
    slow = next(r for r in shipped.effects("s5") if r.name == "flaky")
    assert (slow.status, len(slow.attempts)) == ("failed", 3)


def test_retry_never_runs_again_a_failed_effect_of_a_state_left(engine):
    calls: list[str] = []

    def first(ctx: dict, call: Any) -> None:
        calls.append("first")
        raise RuntimeError("first is down")

    def second(ctx: dict, call: Any) -> None:
        calls.append("second")
        raise RuntimeError("second is down")

    once = Retry(max_attempts=1)
    engine.register(
        machine(
            "two-steps",
            initial="a",
            states={
                "a": state(effect=Effect(first, retry=once), on={"error.first": "b"}),
                "b": state(effect=Effect(second, retry=once)),  # unhandled: fails the instance
            },
        )
    )
    engine.start("two-steps", instance_id="t1")
    engine.run_due()
    engine.run_due()
    assert engine.get("t1").status == "failed"
    engine.retry("t1")
    engine.run_due()
    assert calls == ["first", "second", "second"]
    assert [(r.name, r.status) for r in engine.effects("t1")] == [("first", "failed"), ("second", "failed")]


def test_attempts_stay_out_of_the_history(shipped, clock):
    FLAKY["s3"] = 2
    shipped.start("shipping", instance_id="s3")
    for _ in range(3):
        shipped.run_due()
        clock.advance("10s")
    events = [r.event for r in shipped.history("s3")]
    assert events.count("done.flaky") == 1 and "error.flaky" not in events


def test_effects_lists_each_effect_with_its_attempts_errors_and_result(shipped, clock):
    FLAKY["s4"] = 1
    shipped.start("shipping", instance_id="s4")
    shipped.run_due()
    clock.advance("10s")
    shipped.run_due()
    mail, slow = shipped.effects("s4")
    assert (mail.name, mail.status, mail.result["sent_to"]) == ("send_mail", "done", "ana@example.com")
    assert [(a.attempt, a.ok) for a in slow.attempts] == [(1, False), (2, True)]
    assert "timeout on attempt 1" in slow.attempts[0].error
    assert slow.attempts[0].duration_ms >= 0
    assert (slow.status, slow.result, slow.key) == ("done", "ok", '["s4",1,"flaky"]')


def test_effects_of_an_unknown_instance_raise_not_found(shipped):
    with pytest.raises(InstanceNotFound):
        shipped.effects("nope")


def test_cli_effects_and_history_show_the_effect_records(db_url, clock, capsys):
    engine = Engine(db_url, clock=clock)
    engine.register(shipping())
    FLAKY["c1"] = 0
    engine.start("shipping", instance_id="c1")
    engine.run_due()
    engine.close()
    app = ["--db", db_url, "--app", "tests.test_effect_audit:CLI_APP"]
    assert main([*app, "effects", "c1"]) == 0
    text = capsys.readouterr().out
    assert "send_mail  state shipped (entry 1)  done" in text and "attempt 1" in text
    assert main([*app, "effects", "c1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in data] == ["send_mail", "flaky"]
    assert main([*app, "history", "c1"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "done.send_mail" in line]
    assert len(lines) == 1 and "recorded" in lines[0] and "effect" in lines[0]


CLI_APP = shipping()
