"""Durations as people write them in definitions: `500ms`, `20s`, `15m`, `24h`, `7d`.

Every duration is bounded: positive, finite and at most `MAX_DURATION` (100 years). Without a
bound, `now + duration` overflows `datetime` (year 9999) far from where the duration was written:
at `start`, in a worker claiming an effect, when a token is issued. With it, a bad duration is
refused where it is declared, and `deadline` turns the one overflow left (a clock near year
9999) into a typed error.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from statemachines.errors import InvalidDuration, TimeOutOfRange

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")

Duration = str | timedelta | int | float

#: The longest duration anywhere (timers, leases, retry delays, token ttls): 100 years.
MAX_DURATION = timedelta(days=36525)

#: The longest an engine waits for a database lock: one day (SQLite keeps it in a C int of ms).
MAX_BUSY_TIMEOUT = timedelta(days=1)


def parse_duration(value: Duration, *, maximum: timedelta = MAX_DURATION) -> timedelta:
    """Turn a duration (text, timedelta, or a number of seconds) into a positive timedelta of at
    most `maximum`; anything else raises `InvalidDuration` naming the value."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise InvalidDuration(f"duration must be text like '7d' or a timedelta, not {value!r}")
    elif isinstance(value, int | float):
        seconds = _seconds(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if not match:
            raise InvalidDuration(
                f"bad duration {value[:50]!r}: expected a number and a unit (ms, s, m, h, d),"
                " e.g. '500ms', '20s', '15m', '24h', '7d'"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise InvalidDuration(f"duration must be text like '7d' or a timedelta, not {value!r}")
    if math.isnan(seconds):
        raise InvalidDuration(f"duration must be a number, got {_short(value)}")
    if seconds <= 0:
        raise InvalidDuration(f"duration must be positive, got {_short(value)}")
    if seconds < 0.001:  # durations are kept in whole milliseconds
        raise InvalidDuration(f"duration must be at least 1ms, got {_short(value)}")
    if seconds > maximum.total_seconds():
        limit = format_seconds(maximum.total_seconds()) + (" (100 years)" if maximum == MAX_DURATION else "")
        raise InvalidDuration(f"duration {_short(value)} is longer than the maximum of {limit}")
    return timedelta(seconds=seconds)


def deadline(now: datetime, duration: Duration) -> datetime:
    """`now + duration`, or `TimeOutOfRange` when that is past the last representable time."""
    return later(now, parse_duration(duration))


def later(now: datetime, delta: timedelta) -> datetime:
    """`now + delta` for an already checked delta; `TimeOutOfRange` past the year 9999."""
    try:
        return now + delta
    except OverflowError:
        raise TimeOutOfRange(
            f"{now.isoformat()} + {format_seconds(delta.total_seconds())} is past the year 9999:"
            " is the clock right?"
        ) from None


def format_duration(value: Duration) -> str:
    """The shortest canonical text for a duration (`timedelta(days=7)` -> `7d`)."""
    if isinstance(value, str):
        parse_duration(value)
        return value.strip().replace(" ", "")
    return format_seconds(parse_duration(value).total_seconds())


def format_seconds(seconds: float) -> str:
    """`604800.0` -> `7d`; whole milliseconds (a duration's precision)."""
    total_ms = round(seconds * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if total_ms % size == 0:
            return f"{total_ms // size}{unit}"
    return f"{total_ms}ms"


def _seconds(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an int too large for a float is far beyond any maximum
        return math.inf


def _short(value: Duration) -> str:
    text = repr(value.strip() if isinstance(value, str) else value)
    return text if len(text) <= 40 else f"{text[:37]}..."
