"""Which names a definition may use: one length limit, storable text, nothing `transitions` or the
engine reads specially; and "did you mean" suggestions for names that are not there.

Names end up in indexed database columns (states, events, effects) and in `send()` arguments,
so a definition may only declare names that every database stores and every call accepts.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: The longest name anywhere: machines, states, events, effects, instance ids. 200 characters
#: (at most 800 bytes of UTF-8) stay well under PostgreSQL's btree row limit in every index.
MAX_NAME_LENGTH = 200

#: State names `transitions` expands: `*` as a source means every state, `=` as a target means
#: "back to the source". Declared as state names they would leak events into every state.
WILDCARD_STATES = ("*", "=")

#: Event names `transitions` refuses: the attribute holding the current state on its model.
MODEL_ATTRIBUTE_EVENTS = ("state",)


def storable(text: str) -> bool:
    """Text both databases can store: no NUL, valid UTF-8 (no lone surrogates, which is what
    undecodable bytes become in Python)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def name_problem(what: str, name: str, limit: int = MAX_NAME_LENGTH) -> str | None:
    """Why `name` cannot be used as the name of `what` ("a state", "state 'a': an event"...)."""
    if not name.strip():
        return f"{what} has an empty name"
    if len(name) > limit:
        return (
            f"{what} {name[:40]!r}... is {len(name)} characters long; names are limited to {limit} characters"
        )
    if not storable(name):
        return f"{what} {name[:40]!r} contains NUL or a lone surrogate, which databases cannot store"
    return None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`"; did you mean 'shipped'?"` for the closest candidate, or `""` when none is close."""
    match = closest(name, candidates)
    return f"; did you mean {match!r}?" if match is not None else ""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, [c for c in candidates if c != name], n=1, cutoff=0.6)
    return matches[0] if matches else None
