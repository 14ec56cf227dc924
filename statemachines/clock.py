"""Time is injected: the engine asks its clock, never the wall clock, so tests can jump days."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

from statemachines.durations import Duration, later, parse_duration


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: `clock.advance("7d")`."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime(2030, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime (with tzinfo)")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def advance(self, duration: Duration) -> datetime:
        with self._lock:
            # A test clock moves by any positive timedelta (a microsecond too); text is parsed.
            if not (isinstance(duration, timedelta) and duration > timedelta(0)):
                duration = parse_duration(duration)
            self._now = later(self._now, duration)
            return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock.set needs an aware datetime (with tzinfo)")
        self._now = when.astimezone(UTC)
