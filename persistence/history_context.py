"""A history record's context, stored only as far as the event changed it (schema step 9).

Every history row used to carry the whole context as it was after its event, although most
events change only the state, and those that change the context mostly change a field or two:
with realistic contexts (hundreds of bytes) those copies were most of the bytes a durable event
wrote, and on SQLite, where `sm_history` is a B-tree keyed by (instance_id, seq), wide rows fill
its pages sooner and every full page rebalances three or four pages (bench/RESULTS.md section
21). So a row stores, as text:

- `UNCHANGED` (the empty string) when its event left the context as it was;
- an edit of the previous context, `+<kept head>.<kept tail>.<new middle>`: the lengths of the
  prefix and suffix the two texts share and the text between them. Plain string operations, no
  JSON parsing: applying the edit gives back the exact text the engine wrote;
- the whole context otherwise: the first row (a start), rows written by a rewind or a migration,
  a changed context shorter than `EDIT_FROM` characters (an edit would save little and cost a
  few microseconds), an edit that would not be shorter, and every row whose seq is a multiple
  of `FULL_EVERY`, so the context as of any seq is resolved from at most `FULL_EVERY` rows.

A stored context is JSON text, which is never empty and never starts with `+`, so the markers
cannot be mistaken for one; the column keeps its NOT NULL constraint and existing databases need
no table rebuild (their rows all hold whole contexts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The `context` of a history row whose event did not change the context.
UNCHANGED = ""
#: The first character of an edited context.
EDIT = "+"
#: A changed context shorter than this is stored whole rather than as an edit.
EDIT_FROM = 256
#: Rows whose seq is a multiple of this store the whole context.
FULL_EVERY = 16
#: Position of `context` in a row of `persistence.store.HISTORY_COLUMNS`.
CONTEXT_AT = 5


def recorded(context: str, previous: str | None, seq: int) -> str:
    """What history row `seq` stores for `context`, the context after its event, when `previous`
    was the context before it (None: not known to the caller, so the whole context)."""
    if previous is None or seq % FULL_EVERY == 0:
        return context
    if context == previous:
        return UNCHANGED
    if len(context) < EDIT_FROM:
        return context
    head = _shared_head(context, previous)
    tail = _shared_tail(context, previous, min(len(context), len(previous)) - head)
    edit = f"{EDIT}{head}.{tail}.{context[head : len(context) - tail]}"
    return edit if len(edit) < len(context) else context


def is_whole(stored: str) -> bool:
    """Whether a stored context is the whole context (not unchanged, not an edit)."""
    return stored != UNCHANGED and not stored.startswith(EDIT)


def first_whole_seq(seq: int) -> int:
    """The seq at or before `seq` from which the context as of `seq` can be resolved."""
    return max(1, seq - seq % FULL_EVERY)


def resolve(rows: Sequence[tuple[Any, ...]], before: str | None = None) -> list[tuple[Any, ...]]:
    """History rows in seq order with every context made whole; `before` is the context as of the
    row just before the first one (needed when the rows start mid-history)."""
    out: list[tuple[Any, ...]] = []
    current = before
    for row in rows:
        stored = row[CONTEXT_AT]
        if not is_whole(stored):
            if current is None:
                raise ValueError(f"history row {row[0]} stores no whole context and none precedes it")
            current = _applied(stored, current)
            row = (*row[:CONTEXT_AT], current, *row[CONTEXT_AT + 1 :])
        else:
            current = stored
        out.append(row)
    return out


def _applied(stored: str, current: str) -> str:
    if stored == UNCHANGED:
        return current
    head, tail, middle = stored[1:].split(".", 2)
    return current[: int(head)] + middle + current[len(current) - int(tail) :]


# The shared head and tail: growing chunks are compared until one differs, then that chunk is
# halved down to the first difference. Slice comparisons run in C and copy about as many
# characters as are shared, so the cost follows where the change is, not the context's size
# (a few microseconds; bench/RESULTS.md section 21).


def _shared_head(a: str, b: str) -> int:
    """The length of the longest common prefix of `a` and `b`."""
    limit = min(len(a), len(b))
    lo, step = 0, 16
    while True:
        hi = min(lo + step, limit)
        if lo >= hi:
            return lo
        if a[lo:hi] != b[lo:hi]:
            break
        lo, step = hi, step * 2
    while hi - lo > 1:  # the first difference is in [lo, hi)
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _shared_tail(a: str, b: str, limit: int) -> int:
    """The length of the longest common suffix, at most `limit` (so it does not overlap the head)."""
    na, nb = len(a), len(b)
    lo, step = 0, 16
    while True:
        hi = min(lo + step, limit)
        if lo >= hi:
            return lo
        if a[na - hi : na - lo] != b[nb - hi : nb - lo]:
            break
        lo, step = hi, step * 2
    while hi - lo > 1:  # the first difference from the end is in [lo, hi)
        mid = (lo + hi) // 2
        if a[na - mid : na - lo] == b[nb - mid : nb - lo]:
            lo = mid
        else:
            hi = mid
    return lo
