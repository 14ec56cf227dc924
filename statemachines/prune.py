"""Retention: delete closed instances, with their history and every other row, in batches.

`engine.prune(before="90d")` removes `completed` and `cancelled` instances last changed before
the cutoff: the instance, its history, receipts, timers, effects and their attempts, spent
tokens and statechart states. Never a live one: `active` and `failed` instances (a failed one can
be retried) are not prunable at all, and neither is a cancelled instance whose compensations are
still running. Each batch is one transaction that locks the instances it deletes and checks
them again under the lock (PostgreSQL skips rows a sender or worker holds at that moment), so
pruning runs safely while the engine serves events; an instance reopened by a rewind before
the batch reached it is no longer closed and stays. A send racing the delete of its instance
gets `InstanceNotFound`, as for any unknown id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from persistence.prune_store import PruneStore
from statemachines import errors
from statemachines.durations import Duration, parse_duration
from statemachines.records import CANCELLED, COMPLETED
from statemachines.runtime import Runtime

PRUNABLE_STATUSES = (COMPLETED, CANCELLED)
MAX_BATCH = 10_000
_LABELS = (
    "instances", "history", "receipts", "timers", "effects", "attempts", "tokens", "sends", "chart_states",
)


@dataclass
class PruneReport:
    """What `prune` removed (or, with `dry_run`, would remove), rows per kind."""

    before: datetime
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_LABELS, 0))
    batches: int = 0

    @property
    def instances(self) -> int:
        return self.counts["instances"]

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before.isoformat(), "dry_run": self.dry_run, "batches": self.batches,
                **self.counts}  # fmt: skip


def cutoff(rt: Runtime, before: Any) -> datetime:
    """`before` as a point in time: an aware datetime as is, a duration as that long ago."""
    if isinstance(before, datetime):
        if before.tzinfo is None:
            raise errors.InvalidArgument("prune before= must be a timezone-aware datetime or a duration")
        try:  # stored times are UTC: a time at either end of the calendar may not have one
            return before.astimezone(UTC)
        except OverflowError:
            raise errors.InvalidArgument(
                f"prune before={before.isoformat()} is outside the years 1-9999 in UTC"
            ) from None
    if isinstance(before, bool) or not isinstance(before, str | int | float | timedelta):
        raise errors.InvalidArgument(
            f"prune before= takes a datetime or a duration like '90d', got {before!r}"
        )
    delta: Duration = before
    now = rt.clock.now()
    try:
        return now - parse_duration(delta)
    except OverflowError:
        raise errors.TimeOutOfRange(f"{now.isoformat()} minus {before!r} is before the year 1") from None


def check_statuses(status: Any) -> tuple[str, ...]:
    if isinstance(status, str):
        statuses: tuple[Any, ...] = (status,)
    elif status is None:
        statuses = ()
    else:
        try:
            statuses = tuple(status)
        except TypeError:
            raise errors.InvalidArgument(
                f"prune status= takes a status or a list of them, got {status!r}"
            ) from None
    wrong = [s for s in statuses if s not in PRUNABLE_STATUSES]
    if not statuses or wrong:
        raise errors.InvalidArgument(
            f"prune deletes closed instances only: status must be among {list(PRUNABLE_STATUSES)},"
            f" got {list(statuses)!r}"
        )
    return tuple(dict.fromkeys(statuses))


def prune(rt: Runtime, before: Any, status: Sequence[str], batch: int, dry_run: bool) -> PruneReport:
    """See the module docstring; returns what was removed."""
    statuses = check_statuses(status)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise errors.InvalidArgument(f"prune batch must be an int from 1 to {MAX_BATCH}, got {batch!r}")
    when = cutoff(rt, before)
    store = PruneStore(rt.db)
    report = PruneReport(when, bool(dry_run))
    if dry_run:
        with rt.read() as cur:
            report.counts.update(store.count(cur, statuses, when))
        return report
    while True:
        with rt.transaction() as cur:
            found = store.claim_batch(cur, statuses, when, batch)
            if not found:
                return report
            states = [
                (s, iid) for iid, chart in found if chart is not None for s in json.loads(chart)["active"]
            ]
            removed = store.delete(cur, [iid for iid, _ in found], states)
        report.batches += 1
        for label, n in removed.items():
            report.counts[label] += n
        # Go on until a batch finds nothing: on PostgreSQL a short batch may only mean that rows
        # held by a sender were skipped, and they may be free now.
