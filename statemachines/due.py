"""When the next piece of durable work comes due: the earliest timer or effect a worker would claim.

A test drives time by jumping the clock straight to this instant (`statemachines.testing.
run_until_idle`); a scheduler could sleep until it. The conditions mirror the worker's claims
(persistence/schedule.py): machine versions this process serves, active instances, effects of the state
entry their instance is in, pending ones at `next_at` and running ones when their lease runs out.
"""

from __future__ import annotations

from datetime import datetime

from persistence.schedule import NEXT_EFFECT, NEXT_TIMER, served_condition, served_params
from persistence.send_queue import NEXT_DUE as _NEXT_SEND
from statemachines.runtime import Runtime


def next_due(rt: Runtime) -> datetime | None:
    """The earliest instant a timer fires or an effect runs (or is retried, or taken over after
    its lease); None when nothing of the served machines is armed."""
    served = rt.served_versions()
    if not served:
        return None
    condition = served_condition(len(served))
    params = served_params(served)
    found: list[datetime] = []
    with rt.read() as cur:
        for template in (NEXT_TIMER, NEXT_EFFECT, _NEXT_SEND):
            cur.execute(rt.db.sql(template.format(served=condition)), params)
            row = cur.fetchone()
            if row is not None and row[0] is not None:
                found.append(rt.db.from_ts(row[0]))
    return min(found, default=None)
