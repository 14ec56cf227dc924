"""A history record's context, stored only when the event changed it (schema step 9).

Every history row used to carry the whole context as it was after its event, although most
events change only the state: with realistic contexts (hundreds of bytes) that copy was most of
the bytes a durable event wrote, and on SQLite, where `sm_history` is a B-tree keyed by
(instance_id, seq), wide rows fill its pages sooner and every full page rebalances three or four
pages (bench/RESULTS.md section 21). A row whose event left the context as it was stores
`UNCHANGED` instead; readers resolve it to the context of the nearest earlier row that has one.

`UNCHANGED` is the empty string rather than NULL so that the column keeps its NOT NULL
constraint and existing databases need no table rebuild (SQLite cannot relax NOT NULL in place):
a stored context is always JSON text, never empty, so the marker cannot be mistaken for one.
The first row of an instance (its start) always has the context, and so does every row written
by a rewind or a migration, so an earlier row with one always exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The `context` of a history row whose event did not change the context.
UNCHANGED = ""

#: Position of `context` in a row of `persistence.store.HISTORY_COLUMNS`.
CONTEXT_AT = 5


def recorded(context: str, previous: str | None) -> str:
    """What a history row stores for `context`, the context after its event, when `previous` was
    the context before it (None: unknown, so the context is stored)."""
    return UNCHANGED if context == previous else context


def resolve(rows: Sequence[tuple[Any, ...]], before: str | None = None) -> list[tuple[Any, ...]]:
    """History rows in seq order with every `UNCHANGED` context replaced by the context it stands
    for; `before` is the context as of the row just before the first one (needed when the rows
    start mid-history and the first one is unchanged)."""
    out: list[tuple[Any, ...]] = []
    current = before
    for row in rows:
        context = row[CONTEXT_AT]
        if context == UNCHANGED:
            row = (*row[:CONTEXT_AT], current, *row[CONTEXT_AT + 1 :])
        else:
            current = context
        out.append(row)
    return out
