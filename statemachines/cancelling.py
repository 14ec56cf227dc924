"""Giving up on an instance: `cancel` closes it where it stands, audited.

The state and context are kept (the record says where it stopped); its timers, effects and the
events it sent itself are dropped. `cancel(compensate=True)` also queues compensations
(`statemachines.compensation`).
"""

from __future__ import annotations

from statemachines import compensation, errors
from statemachines.records import ACTIVE, CANCELLED, FAILED, Snapshot
from statemachines.rows import (
    CONTEXT,
    CREATED,
    DEF_VERSION,
    MACHINE,
    STATE,
    STATUS,
    VERSION,
    configuration_of,
)
from statemachines.runtime import Runtime


def cancel(
    rt: Runtime, instance_id: str, reason: str | None, actor: str | None, compensate: bool = False
) -> Snapshot:
    """Close an active or failed instance as `cancelled` in one transaction; `InstanceClosed`
    for one already completed or cancelled. With `compensate`, the compensations of its
    succeeded effects are queued in the same transaction (docs/rewind-and-compensation.md)."""
    with rt.transaction() as cur:
        row = rt.store.lock_instance(cur, instance_id, None)
        if row is None:
            raise errors.InstanceNotFound(instance_id)
        if row[STATUS] not in (ACTIVE, FAILED):
            raise errors.InstanceClosed(instance_id, row[STATUS], row[STATE])
        now = rt.clock.now()
        payload = {"reason": reason, "compensate": True} if compensate else {"reason": reason}
        rt.applier.set_status(
            cur, row, CANCELLED, "cancel", CANCELLED, now,
            reason=reason, payload=payload, actor=actor,
        )  # fmt: skip
        rt.applier.disarm(cur, instance_id, now)
        rt.applier.drop_sent(cur, row)
        if compensate:
            compensation.compensate_cancelled(rt, cur, row, now)
    return Snapshot(
        instance_id,
        row[MACHINE],
        row[STATE],
        CANCELLED,
        row[CONTEXT],
        row[VERSION],
        rt.db.from_ts(row[CREATED]),
        now,
        rt.model_of(row[MACHINE], row[DEF_VERSION]),
        definition_version=row[DEF_VERSION],
        configuration=configuration_of(row),
    )
