"""Reading instances back: one snapshot, one history, a filtered list.

Read-only transactions; no user code runs. Snapshots are typed with the context model of the
instance's own definition version when this process registered it (plain dicts otherwise).
Keyset paging of the same lists is `statemachines.pages`.
"""

from __future__ import annotations

from statemachines import errors
from statemachines.arguments import check_id, check_name, check_page
from statemachines.records import Record, Snapshot
from statemachines.rows import DEF_VERSION, MACHINE, record_from_row, snapshot_from_row
from statemachines.runtime import Runtime


def get(rt: Runtime, instance_id: str) -> Snapshot:
    check_id(instance_id)
    with rt.read() as cur:
        row = rt.store.get_instance(cur, instance_id)
    if row is None:
        raise errors.InstanceNotFound(instance_id)
    return snapshot_from_row(rt.db, row, rt.model_of(row[MACHINE], row[DEF_VERSION]))


def history(rt: Runtime, instance_id: str) -> list[Record]:
    check_id(instance_id)
    with rt.read() as cur:
        rows = rt.store.history(cur, instance_id)
        if not rows and rt.store.get_instance(cur, instance_id) is None:
            raise errors.InstanceNotFound(instance_id)
    return [record_from_row(rt.db, r) for r in rows]


def instances(
    rt: Runtime, machine: str | None, state: str | None, status: str | None, limit: int, offset: int
) -> list[Snapshot]:
    check_page(limit, offset)
    check_filters(machine, state, status)
    with rt.read() as cur:
        rows = rt.store.list_instances(cur, machine, state, status, limit, offset, may_be_chart(rt, machine))
    return [snapshot_from_row(rt.db, r, rt.model_of(r[MACHINE], r[DEF_VERSION])) for r in rows]


def check_filters(machine: str | None, state: str | None, status: str | None) -> None:
    for what, value in (("machine", machine), ("state", state), ("status", status)):
        if value is not None:
            check_name(value, what)


def may_be_chart(rt: Runtime, machine: str | None) -> bool:
    """Whether instances of `machine` (any machine: None) may be statecharts, whose `state`
    filter matches at any depth; a machine whose versions registered here are all flat keeps the
    plain indexed query."""
    if machine is None or machine not in rt.machines:
        return True
    return any(c.is_chart for (n, _), c in rt.versions.items() if n == machine)
