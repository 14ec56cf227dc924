"""Checks of the arguments the engine's public methods take, before anything is read or written.

Ids, event names and keys end up in indexed columns and free text (an actor, a reason) in text
columns: both must be storable by every database, so a bad argument is refused here with
`InvalidArgument` naming it, rather than failing half-way inside a transaction.
"""

from __future__ import annotations

import reprlib
from typing import Any

from statemachines import errors
from statemachines.checks import RESERVED_PREFIXES
from statemachines.names import MAX_NAME_LENGTH, storable

MAX_ID_LENGTH = MAX_NAME_LENGTH  # one limit for every name: definitions declare none longer


def check_name(value: Any, what: str) -> str:
    """`value` as a name (machine, version, event, key): a non-empty storable string within the limit."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH or not storable(value):
        raise errors.InvalidArgument(
            f"{what} must be a non-empty string of at most {MAX_ID_LENGTH} characters"
            f" without NUL or lone surrogates, got {reprlib.repr(value)}"
        )
    return value


def check_id(value: Any) -> str:
    """`value` as an instance id."""
    return check_name(value, "instance id")


def check_text(value: Any, what: str) -> None:
    """Free text stored as such (an actor, a reason): None, or a string of storable text."""
    if value is not None and (not isinstance(value, str) or not storable(value)):
        raise errors.InvalidArgument(
            f"{what} must be a string without NUL or lone surrogates, got {reprlib.repr(value)}"
        )


def check_not_reserved(event: str) -> None:
    """Events the engine sends itself can neither be sent nor carried by a token: no faking a
    timer or an effect's result."""
    if event.startswith(RESERVED_PREFIXES):
        raise errors.InvalidArgument(
            f"event {event!r} is reserved: events starting with {', '.join(RESERVED_PREFIXES)}"
            " are sent by the engine itself (timers and effects)"
        )


def check_page(limit: Any, offset: Any) -> None:
    """`limit` and `offset` of a listing: integers (not bools) that fit a signed 64-bit column."""
    for number in (limit, offset):
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 2**63:
            got = reprlib.repr(number)
            raise errors.InvalidArgument(f"limit and offset must be integers >= 0, got {got}")
