"""Effect outcomes in the audit trail: a history record that moves nothing.

An effect's final outcome (`done.<name>`, `error.<name>`) is applied as an event when the state
has a transition for it; when it has none, it is still written down here, with outcome
`recorded`: source and target the current state, context, state and version unchanged, the seq
taken like any record's. So "was the tracking mail sent?" is answered by `history` alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from statemachines.rows import LAST_SEQ, STATUS
from statemachines.runtime import Runtime

#: History outcome of an effect result (or a compensation's) that moved nothing.
RECORDED = "recorded"


def record(
    rt: Runtime,
    cur: Any,
    instance_id: str,
    event: str,
    payload: Any,
    now: datetime,
    *,
    actor: str,
    outcome: str = RECORDED,
    reason: str | None = None,
) -> int | None:
    """Write one record for the (locked) instance, status kept; returns its seq (None when the
    instance is gone)."""
    row = rt.store.lock_instance(cur, instance_id, None)
    if row is None:
        return None
    rt.applier.set_status(
        cur, row, row[STATUS], event, outcome, now, reason=reason, payload=payload, actor=actor
    )
    return int(row[LAST_SEQ]) + 1

