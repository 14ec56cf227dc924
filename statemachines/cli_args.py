"""argparse types for the command line's numbers and durations: finite and in range.

Every number and duration is checked while parsing, so a bad value is a usage mistake (exit 2,
argparse's message naming the option) and never reaches the engine as an OverflowError, an
"internal error" or a NaN sleep that busy-loops a worker.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from statemachines.durations import parse_duration
from statemachines.errors import StateMachineError

MAX_ROWS = 2**63 - 1  # --limit/--offset: what a database integer holds
MAX_BATCH = 10_000  # items a worker claims per round
MAX_SECONDS = 3600.0  # --idle, --max-idle, --timeout


def int_in(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: expected {low} to {high}")
        return value

    return parse


def seconds(text: str) -> float:
    """A finite number of seconds in (0, MAX_SECONDS]: `inf` and `nan` are refused (nan would busy-loop)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range: expected seconds > 0 and <= {MAX_SECONDS:g}"
        )
    return value


def ttl(text: str) -> str:
    """A duration (`15m`, `24h`, `7d`) within the engine's bounds (at most 100 years); the engine
    parses it again."""
    try:
        parse_duration(text)
    except StateMachineError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
