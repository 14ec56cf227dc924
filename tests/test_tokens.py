"""Callback tokens: signed, expiring, bound to one state entry, single-use; a bad one changes nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from statemachines import (
    ConfigurationError,
    Effect,
    Engine,
    EventNotAllowed,
    GuardRejected,
    InstanceClosed,
    InvalidArgument,
    ManualClock,
    PayloadInvalid,
    StateMachineError,
    TokenInvalid,
    machine,
    state,
    transition,
)
from statemachines.durations import parse_duration
from statemachines.tokens import SECRET_ENV

SECRET = "test-secret-0123456789abcdef"


class Amount(BaseModel):
    cents: int


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def engine(db_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    eng = Engine(db_url, clock=clock, secret=SECRET)
    eng.register(approval())
    eng.start("approval", {"comments": []}, instance_id="a1")
    yield eng
    eng.close()


def add_comment(ctx: dict, event) -> None:
    ctx["comments"].append(event.payload.get("text"))


def approval():
    return machine(
        "approval",
        initial="waiting",
        states={
            "waiting": state(
                on={
                    "APPROVE": "approved",
                    "REJECT": "rejected",
                    "COMMENT": transition(None, action=add_comment),
                    "REOPEN": "waiting",
                }
            ),
            "approved": state(final=True),
            "rejected": state(final=True),
        },
    )


def fingerprint(engine: Engine, iid: str = "a1") -> tuple:
    """Everything a bad token must leave untouched."""
    snap = engine.get(iid)
    return snap.as_dict(), len(engine.history(iid))


def rejects(engine: Engine, token: object, payload: object = None) -> TokenInvalid:
    before = fingerprint(engine)
    with pytest.raises(TokenInvalid) as info:
        engine.send_token(token, payload)
    assert fingerprint(engine) == before
    assert isinstance(info.value, StateMachineError)
    return info.value


def test_token_sends_its_event_with_the_payload(engine):
    token = engine.token("a1", "APPROVE", ttl="1d")
    snap = engine.send_token(token, {"note": "ok"}, actor="pat")
    assert (snap.state, snap.status) == ("approved", "completed")
    last = engine.history("a1")[-1]
    assert (last.event, last.payload, last.actor) == ("APPROVE", {"note": "ok"}, "pat")


def test_token_is_url_safe_text(engine):
    token = engine.token("a1", "APPROVE")
    assert token.startswith("smt1.")
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def test_forged_signature_is_rejected_and_nothing_changes(engine):
    token = engine.token("a1", "APPROVE")
    prefix, body, sig = token.split(".")
    forged = f"{prefix}.{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"
    assert "signature" in rejects(engine, forged).reason


def test_altered_claims_are_rejected_and_nothing_changes(engine):
    token = engine.token("a1", "APPROVE")
    prefix, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["e"] = "REJECT"
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    rejects(engine, f"{prefix}.{altered}.{sig}")


def test_token_signed_with_another_secret_is_rejected(engine, db_url, clock):
    other = Engine(db_url, clock=clock, secret="another-secret-0123456789")
    other.register(approval())
    token = other.token("a1", "APPROVE")
    rejects(engine, token)


@pytest.mark.parametrize("bad", ["", "smt1", "smt1.a.b", "smt2.a.b", "x" * 5000, None, 42])
def test_malformed_token_is_rejected(engine, bad):
    rejects(engine, bad)


def test_token_works_until_just_before_its_expiry(engine, clock):
    token = engine.token("a1", "APPROVE", ttl="24h")
    clock.advance(timedelta(hours=24) - timedelta(seconds=1))
    assert engine.send_token(token).state == "approved"


def test_expired_token_is_rejected_and_nothing_changes(engine, clock):
    token = engine.token("a1", "APPROVE", ttl="24h")
    clock.advance("24h")
    assert "expired" in rejects(engine, token).reason


@pytest.mark.parametrize("ttl", ["500ms", "1s", "1500ms"])
def test_a_token_issued_just_before_a_whole_second_lives_at_least_its_ttl(engine, clock, ttl):
    clock.set(datetime(2030, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC))
    token = engine.token("a1", "APPROVE", ttl=ttl)
    clock.advance(parse_duration(ttl) - timedelta(microseconds=1))
    assert engine.send_token(token).state == "approved"


def test_a_token_expires_less_than_a_second_after_its_ttl(engine, clock):
    clock.set(datetime(2030, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC))
    token = engine.token("a1", "APPROVE", ttl="500ms")
    clock.advance("1500ms")
    assert "expired" in rejects(engine, token).reason


def test_stale_token_after_its_state_was_left_is_rejected(db_url, clock, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    eng = Engine(db_url, clock=clock, secret=SECRET)
    eng.register(
        machine(
            "two-step",
            initial="first",
            states={
                "first": state(on={"OK": "second"}),
                "second": state(on={"OK": "done"}),
                "done": state(final=True),
            },
        )
    )
    eng.start("two-step", instance_id="t1")
    token = eng.token("t1", "OK")
    eng.send("t1", "OK")  # the same event is allowed in the new state; the token is not
    before = (eng.get("t1").as_dict(), len(eng.history("t1")))
    with pytest.raises(TokenInvalid, match="stale"):
        eng.send_token(token)
    assert (eng.get("t1").as_dict(), len(eng.history("t1"))) == before


def test_token_is_stale_after_an_external_self_transition(engine):
    token = engine.token("a1", "APPROVE")
    engine.send("a1", "REOPEN")  # leaves and re-enters `waiting`: a new state entry
    assert engine.get("a1").state == "waiting"
    assert "stale" in rejects(engine, token).reason


def test_token_survives_an_internal_transition(engine):
    token = engine.token("a1", "APPROVE")
    engine.send("a1", "COMMENT", {"text": "looks fine"})
    assert engine.send_token(token).state == "approved"


def test_replayed_token_is_rejected_and_nothing_changes(engine):
    token = engine.token("a1", "COMMENT")  # internal: the state entry stays, only reuse can stop it
    engine.send_token(token, {"text": "first"})
    assert "used" in rejects(engine, token, {"text": "second"}).reason
    assert engine.get("a1").context == {"comments": ["first"]}


def test_replayed_token_after_its_transition_is_rejected(engine):
    token = engine.token("a1", "APPROVE")
    engine.send_token(token)
    rejects(engine, token)


def test_token_with_an_invalid_payload_raises_and_stays_usable(db_url, clock, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    eng = Engine(db_url, clock=clock, secret=SECRET)
    eng.register(
        machine(
            "typed",
            initial="a",
            events={"GO": Amount},
            states={"a": state(on={"GO": "b"}), "b": state(final=True)},
        )
    )
    eng.start("typed", instance_id="t1")
    token = eng.token("t1", "GO")
    with pytest.raises(PayloadInvalid):
        eng.send_token(token, {"cents": "lots"})
    assert len(eng.history("t1")) == 1
    assert eng.send_token(token, {"cents": 5}).state == "b"
    eng.close()


def test_guard_refused_token_is_spent_and_the_refusal_is_in_the_history(db_url, clock, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    eng = Engine(db_url, clock=clock, secret=SECRET)
    eng.register(
        machine(
            "guarded",
            initial="a",
            states={
                "a": state(on={"GO": transition("b", guard=lambda ctx, event: False)}),
                "b": state(final=True),
            },
        )
    )
    eng.start("guarded", instance_id="g1")
    token = eng.token("g1", "GO")
    with pytest.raises(GuardRejected):
        eng.send_token(token, actor="pat")
    last = eng.history("g1")[-1]
    assert (last.event, last.outcome, last.actor) == ("GO", "rejected", "pat")
    assert "GuardRejected" in last.reason
    with pytest.raises(TokenInvalid, match="used"):  # spent: a refusal is an answer, not a retry
        eng.send_token(token)
    assert eng.get("g1").state == "a"
    eng.close()


def test_token_of_a_cancelled_instance_is_rejected(engine):
    token = engine.token("a1", "APPROVE")
    engine.cancel("a1", reason="withdrawn")
    rejects(engine, token)


def test_two_tokens_for_one_entry_are_independent_until_the_state_is_left(engine):
    first = engine.token("a1", "COMMENT")
    second = engine.token("a1", "COMMENT")
    approve = engine.token("a1", "APPROVE")
    engine.send_token(first, {"text": "a"})
    engine.send_token(second, {"text": "b"})
    engine.send_token(approve)
    assert engine.get("a1").context == {"comments": ["a", "b"]}


def test_token_from_one_engine_is_accepted_by_another_with_the_same_secret(engine, db_url, clock):
    web = Engine(db_url, clock=clock, secret=SECRET)
    web.register(approval())
    token = engine.token("a1", "APPROVE")
    assert web.send_token(token).state == "approved"


def test_token_cannot_be_issued_for_an_event_not_allowed_now(engine):
    with pytest.raises(EventNotAllowed):
        engine.token("a1", "SHIP")


def charge(ctx: dict, call) -> dict:
    return {"charged": True}


@pytest.mark.parametrize("event", ["done.charge", "error.charge"])
def test_token_cannot_be_issued_for_an_event_only_the_engine_sends(db_url, clock, monkeypatch, event):
    """A bearer of such a token could fake an effect's result (paid without a charge)."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    eng = Engine(db_url, clock=clock, secret=SECRET)
    eng.register(
        machine(
            "charging",
            initial="a",
            states={
                "a": state(effect=Effect(charge), on={"done.charge": "paid", "error.charge": "failed"}),
                "paid": state(final=True),
                "failed": state(final=True),
            },
        )
    )
    eng.start("charging", instance_id="c1")
    with pytest.raises(InvalidArgument, match="reserved"):
        eng.token("c1", event)
    assert eng.get("c1").state == "a"
    eng.close()


def test_token_cannot_be_issued_for_a_closed_instance(engine):
    engine.send("a1", "APPROVE")
    with pytest.raises(InstanceClosed):
        engine.token("a1", "REJECT")


def test_missing_secret_is_a_configuration_error(db_url, clock, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    eng = Engine(db_url, clock=clock)
    eng.register(approval())
    eng.start("approval", {"comments": []}, instance_id="a1")
    with pytest.raises(ConfigurationError, match=SECRET_ENV):
        eng.token("a1", "APPROVE")
    with pytest.raises(ConfigurationError, match=SECRET_ENV):
        eng.send_token("smt1.e30.x")


def test_secret_comes_from_the_environment(db_url, clock, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    eng = Engine(db_url, clock=clock)
    eng.register(approval())
    eng.start("approval", {"comments": []}, instance_id="a1")
    assert eng.send_token(eng.token("a1", "APPROVE")).state == "approved"


def test_short_secret_is_a_configuration_error(db_url, clock, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    eng = Engine(db_url, clock=clock, secret="short")
    eng.register(approval())
    eng.start("approval", {"comments": []}, instance_id="a1")
    with pytest.raises(ConfigurationError, match="16 bytes"):
        eng.token("a1", "APPROVE")
