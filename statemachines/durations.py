"""Durations as people write them in definitions: `500ms`, `20s`, `15m`, `24h`, `7d`."""

from __future__ import annotations

import re
from datetime import timedelta

from statemachines.errors import InvalidDuration

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")

Duration = str | timedelta | int | float


def parse_duration(value: Duration) -> timedelta:
    """Turn a duration (text, timedelta, or a number of seconds) into a positive timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise InvalidDuration(f"duration must be text like '7d' or a timedelta, not {value!r}")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if not match:
            raise InvalidDuration(
                f"bad duration {value!r}: expected a number and a unit (ms, s, m, h, d),"
                " e.g. '500ms', '20s', '15m', '24h', '7d'"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise InvalidDuration(f"duration must be text like '7d' or a timedelta, not {value!r}")
    if seconds <= 0:
        raise InvalidDuration(f"duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(value: Duration) -> str:
    """The shortest canonical text for a duration (`timedelta(days=7)` -> `7d`)."""
    if isinstance(value, str):
        parse_duration(value)
        return value.strip().replace(" ", "")
    total_ms = round(parse_duration(value).total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if total_ms % size == 0:
            return f"{total_ms // size}{unit}"
    return f"{total_ms}ms"
