"""The durable-time examples shipped in `statemachines.examples` run, and do what they say."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta

import pytest

from statemachines import Engine, ManualClock, loads_definition
from statemachines.examples import expense_approval, flaky_payment, subscription
from statemachines.testing import assert_history, run_until_idle

SECRET = "examples-secret-0123456789"


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    eng = Engine(db_url, clock=clock, secret=SECRET)
    yield eng
    eng.close()


def test_subscription_trial_reminder_renewal_and_expiry(engine, clock):
    out = subscription.run(engine, clock)
    assert out["alice"] == {
        "state": "subscribed", "status": "active", "reminders": 0, "events": ["start", "SUBSCRIBE"],
    }  # fmt: skip
    assert out["bob"]["state"] == "subscribed"
    assert out["bob"]["events"] == ["start", "after.27d", "done.send_trial_reminder", "after.3d", "RENEW"]
    assert out["carol"] == {
        "state": "expired",
        "status": "completed",
        "reminders": 1,
        "events": ["start", "after.27d", "done.send_trial_reminder", "after.3d", "after.7d"],
    }
    assert [t for t in out["timeline"] if t[1] == "carol"] == [
        (0, "carol", "trial"),
        (27, "carol", "trial_ending"),
        (30, "carol", "awaiting_renewal"),
        (37, "carol", "expired"),
    ]


def test_subscription_reminder_mail_carries_the_effect_key(engine, clock):
    subscription.run(engine, clock, prefix="key-")
    carol = engine.get("key-carol").context
    assert carol.reminders == ['["key-carol",2,"send_trial_reminder"]']
    assert subscription.mailer.sent[carol.reminders[0]]["to"] == "carol@example.com"


def test_expense_approval_by_token_and_escalation_after_24_hours(engine, clock):
    out = expense_approval.run(engine, clock)
    assert out["exp-quick"] == {
        "state": "approved", "decided_by": "pat", "manager_asked": False, "events": ["start", "APPROVE"],
    }  # fmt: skip
    assert out["exp-slow"] == {
        "state": "approved",
        "decided_by": "morgan",
        "manager_asked": True,
        "events": ["start", "after.24h", "done.ask_manager", "APPROVE"],
    }
    assert out["late_click"].startswith("stale")


def test_expense_escalation_timer_never_fires_early(engine, clock):
    engine.register(expense_approval.expense_approval)
    start = clock.now()
    engine.start(
        "expense-approval",
        {"employee": "eli", "amount": 10, "approver": "pat", "manager": "morgan"},
        instance_id="x1",
    )
    run_until_idle(engine, until=start + timedelta(hours=24) - timedelta(microseconds=1))
    assert_history(engine, "x1", ["awaiting_approval"])
    run_until_idle(engine, until=start + timedelta(hours=24))
    assert clock.now() == start + timedelta(hours=24)
    assert_history(
        engine,
        "x1",
        [("start", "awaiting_approval"), ("after.24h", "escalated"), ("done.ask_manager", "escalated")],
    )


def test_flaky_payment_retries_until_paid_with_time_jumping_by_itself(engine):
    engine.register(flaky_payment.payment)
    flaky_payment.provider.reset()
    engine.start("payment", {"order_id": "o1", "amount": 5, "provider_failures": 2}, instance_id="p1")
    assert run_until_idle(engine) == 3  # two failed attempts, then the charge
    assert_history(engine, "p1", [("start", "charging"), ("done.charge_card", "paid")])
    assert [a.ok for a in engine.effect_attempts("p1")] == [False, False, True]


def test_flaky_payment_succeeds_after_retries_on_the_backoff_schedule(engine, clock):
    out = flaky_payment.run(engine, clock)
    flaky = out["pay-flaky"]
    assert (flaky["state"], flaky["status"], flaky["error"]) == ("paid", "completed", None)
    assert flaky["charge_id"] == flaky_payment.provider.charges['["pay-flaky",1,"charge_card"]']["charge_id"]
    assert [(a["attempt"], a["ok"]) for a in flaky["attempts"]] == [(1, False), (2, False), (3, True)]
    assert_on_schedule(flaky["attempts"])


def test_flaky_payment_that_never_succeeds_takes_the_error_path(engine, clock):
    out = flaky_payment.run(engine, clock)
    down = out["pay-down"]
    assert (down["state"], down["status"], down["charge_id"]) == ("payment_failed", "active", None)
    assert down["error"].startswith("ProviderUnavailable: 503") and down["error"].endswith("after 4 attempts")
    assert [(a["attempt"], a["ok"]) for a in down["attempts"]] == [(n, False) for n in (1, 2, 3, 4)]
    assert_on_schedule(down["attempts"])
    assert engine.send("pay-down", "GIVE_UP").state == "abandoned"


def assert_on_schedule(attempts: list[dict]) -> None:
    """Each gap is the backoff delay (2s, 6s, 10s capped) plus at most 25% jitter, never less."""
    retry = flaky_payment.RETRY
    bases = [min(2 * retry.backoff ** (k - 1), 10) for k in range(1, len(attempts))]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    for base, gap in zip(bases, gaps, strict=True):
        assert base <= gap <= base * (1 + retry.jitter), (bases, gaps)


@pytest.mark.parametrize(
    ("module", "definition"),
    [
        (subscription, "subscription"),
        (expense_approval, "expense_approval"),
        (flaky_payment, "payment"),
    ],
)
def test_example_definitions_round_trip_through_yaml_with_their_registry(module, definition):
    import yaml

    original = getattr(module, definition)
    text = yaml.safe_dump(original.to_dict(), sort_keys=False)
    loaded = loads_definition(text, module.registry)
    assert loaded.version == original.version
