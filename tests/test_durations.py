"""Durations are bounded (positive, finite, at most 100 years) wherever they are written, and
`now + duration` past the year 9999 is a typed error, never an untyped `OverflowError`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from statemachines import (
    DefinitionError,
    Effect,
    Engine,
    InvalidArgument,
    InvalidDuration,
    ManualClock,
    Retry,
    StateMachineError,
    TimeOutOfRange,
    machine,
    state,
)
from statemachines.durations import MAX_DURATION, deadline, format_duration, parse_duration
from statemachines.effects import backoff_delay

SECRET = "test-secret-0123456789abcdef"
TOO_LONG = ["36526d", "10000000d", 10**12, 10**400, timedelta(days=999_999_999), math.inf, "9" * 400 + "s"]
NOT_A_NUMBER = [math.nan, -math.inf]


def noop(ctx, call) -> None:
    return None


def timed(after) -> object:
    return machine("t", initial="a", states={"a": state(after={after: "b"}), "b": state(final=True)})


# parse_duration ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", TOO_LONG, ids=repr)
def test_a_duration_over_100_years_is_invalid(value) -> None:
    with pytest.raises(InvalidDuration, match="longer than the maximum of 36525d"):
        parse_duration(value)


@pytest.mark.parametrize("value", NOT_A_NUMBER, ids=repr)
def test_a_non_finite_duration_is_invalid(value) -> None:
    with pytest.raises(InvalidDuration):
        parse_duration(value)


@pytest.mark.parametrize("value", [-1, "-5s", timedelta(seconds=-1), 0, "0s"], ids=repr)
def test_a_negative_or_zero_duration_is_invalid(value) -> None:
    with pytest.raises(InvalidDuration, match="must be positive"):
        parse_duration(value)


def test_a_duration_under_a_millisecond_is_invalid() -> None:
    with pytest.raises(InvalidDuration, match="at least 1ms"):
        parse_duration(0.0001)


def test_exactly_100_years_is_the_longest_valid_duration() -> None:
    assert parse_duration("36525d") == MAX_DURATION
    assert format_duration(MAX_DURATION) == "36525d"


def test_an_invalid_duration_is_an_invalid_argument_and_a_state_machine_error() -> None:
    assert issubclass(InvalidDuration, InvalidArgument)
    assert issubclass(InvalidDuration, StateMachineError)


def test_deadline_past_the_year_9999_is_time_out_of_range() -> None:
    with pytest.raises(TimeOutOfRange, match="year 9999"):
        deadline(datetime(9999, 12, 1, tzinfo=UTC), "60d")


def test_time_out_of_range_is_a_state_machine_error() -> None:
    assert issubclass(TimeOutOfRange, StateMachineError)


# Definition time ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [v for v in TOO_LONG if v != math.inf], ids=repr)
def test_a_timer_over_100_years_is_a_definition_error(value) -> None:
    with pytest.raises(DefinitionError) as info:
        timed(value)
    assert len(info.value.problems) == 1
    assert "longer than the maximum" in info.value.problems[0]


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=repr)
def test_a_non_finite_timer_is_a_definition_error(value) -> None:
    with pytest.raises(DefinitionError, match="timer of state 'a'"):
        timed(value)


def test_an_effect_lease_over_100_years_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"effect 'noop' of state 'a'.*longer than the maximum"):
        machine(
            "e",
            initial="a",
            states={
                "a": state(effect=Effect(noop, lease="10000000d"), on={"GO": "b"}),
                "b": state(final=True),
            },
        )


@pytest.mark.parametrize("field", ["initial", "max"])
def test_a_retry_delay_over_100_years_is_a_definition_error(field: str) -> None:
    with pytest.raises(DefinitionError, match="longer than the maximum"):
        Retry(**{field: timedelta(days=999_999_999)})


def test_a_retry_delay_over_100_years_as_text_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="longer than the maximum"):
        machine(
            "e",
            initial="a",
            states={
                "a": state(effect=Effect(noop, retry=Retry(max="10000000d")), on={"GO": "b"}),
                "b": state(final=True),
            },
        )


def test_every_bad_duration_of_a_definition_is_listed_at_once() -> None:
    with pytest.raises(DefinitionError) as info:
        machine(
            "e",
            initial="a",
            states={
                "a": state(after={10**12: "b", "nan": "b"}, effect=Effect(noop, lease=math.inf)),
                "b": state(final=True),
            },
        )
    assert len(info.value.problems) == 3


def test_a_timer_over_100_years_in_a_loaded_definition_is_a_definition_error() -> None:
    from statemachines import loads_definition

    text = "name: t\ninitial: a\nstates:\n  a:\n    after:\n      10000000d: b\n  b:\n    final: true\n"
    with pytest.raises(DefinitionError, match="longer than the maximum"):
        loads_definition(text)


# API calls ---------------------------------------------------------------------------------------


@pytest.fixture
def token_engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    eng = Engine(db_url, clock=clock, secret=SECRET)
    eng.register(machine("w", initial="a", states={"a": state(on={"GO": "b"}), "b": state(final=True)}))
    eng.start("w", instance_id="i1")
    yield eng
    eng.close()


@pytest.mark.parametrize("ttl", [*TOO_LONG, math.nan, -math.inf, "banana"], ids=repr)
def test_a_token_ttl_that_is_not_a_bounded_duration_is_an_invalid_argument(token_engine: Engine, ttl) -> None:
    with pytest.raises(InvalidArgument):
        token_engine.token("i1", "GO", ttl=ttl)


def test_a_token_whose_expiry_is_past_the_year_9999_is_time_out_of_range(
    token_engine: Engine, clock: ManualClock
) -> None:
    clock.set(datetime(9999, 12, 1, tzinfo=UTC))
    with pytest.raises(TimeOutOfRange):
        token_engine.token("i1", "GO", ttl="60d")


@pytest.mark.parametrize("busy_timeout", ["2d", math.inf, math.nan, -1], ids=repr)
def test_a_busy_timeout_over_a_day_or_not_finite_is_an_invalid_argument(
    sqlite_url: str, busy_timeout
) -> None:
    with pytest.raises(InvalidArgument):
        Engine(sqlite_url, busy_timeout=busy_timeout)


def test_start_with_a_clock_near_the_year_9999_is_time_out_of_range_and_writes_nothing(
    db_url: str,
) -> None:
    clock = ManualClock(datetime(9999, 12, 1, tzinfo=UTC))
    engine = Engine(db_url, clock=clock)
    try:
        engine.register(timed("60d"))
        with pytest.raises(TimeOutOfRange):
            engine.start("t", instance_id="late")
        assert engine.instances() == []
    finally:
        engine.close()


def test_a_timer_whose_next_timer_is_past_the_year_9999_fails_the_instance_not_the_worker(
    db_url: str,
) -> None:
    clock = ManualClock(datetime(9999, 11, 15, tzinfo=UTC))
    engine = Engine(db_url, clock=clock)
    try:
        engine.register(
            machine(
                "t2",
                initial="a",
                states={
                    "a": state(after={"1d": "b"}),
                    "b": state(after={"60d": "c"}),
                    "c": state(final=True),
                },
            )
        )
        engine.start("t2", instance_id="late")
        clock.advance("1d")
        assert engine.run_due() == 1
        snap = engine.get("late")
        assert (snap.status, snap.state) == ("failed", "a")
        assert "TimeOutOfRange" in (engine.history("late")[-1].reason or "")
    finally:
        engine.close()


def test_a_manual_clock_advanced_past_the_year_9999_is_time_out_of_range() -> None:
    clock = ManualClock(datetime(9999, 12, 1, tzinfo=UTC))
    with pytest.raises(TimeOutOfRange):
        clock.advance("60d")
    assert clock.now() == datetime(9999, 12, 1, tzinfo=UTC)


# Effects -----------------------------------------------------------------------------------------


def test_backoff_after_many_failures_with_a_steep_backoff_is_capped_not_overflowing() -> None:
    retry = Retry(max_attempts=1000, initial="1s", backoff=100.0, max="1h", jitter=0.0)
    assert backoff_delay(retry, 999) == timedelta(hours=1)


def test_backoff_with_full_jitter_on_a_100_year_max_stays_within_100_years() -> None:
    retry = Retry(max_attempts=10, initial="36525d", backoff=1.0, max="36525d", jitter=1.0)

    class Top:
        def random(self) -> float:
            return 1.0

    assert backoff_delay(retry, 1, Top()) == MAX_DURATION  # type: ignore[arg-type]
