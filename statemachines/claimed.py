"""How a worker handles a batch of claimed rows (due timers, due sends) in one transaction.

Each row runs in its own savepoint, so one bad row never takes the batch with it: its work is
rolled back and the row is quarantined (its instance failed with the reason); if even that
fails, the row is dropped rather than claimed again forever. A storage failure is the
database's fault, not the row's: it ends the transaction and the whole round is retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from statemachines.runtime import is_storage_failure

Row = tuple[Any, ...]


def each_claimed(
    cur: Any,
    rows: Iterable[Row],
    savepoint: str,
    handle: Callable[[Row], None],
    quarantine: Callable[[Row, Exception], None],
    drop: Callable[[Row, Exception], None],
) -> None:
    """Run `handle` on each row (instance id in `row[1]`), instances in id order: two workers'
    batches then never wait on each other. The sort is stable, so an instance's rows keep their
    claim order."""
    for row in sorted(rows, key=lambda r: r[1]):
        cur.execute(f"SAVEPOINT {savepoint}")
        try:
            handle(row)
        except Exception as exc:
            if is_storage_failure(exc):
                raise
            cur.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
            try:
                quarantine(row, exc)
            except Exception as again:
                if is_storage_failure(again):
                    raise
                cur.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                drop(row, again)
        cur.execute(f"RELEASE SAVEPOINT {savepoint}")
