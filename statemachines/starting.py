"""How an instance begins: its initial state entered, its first history record, what it arms.

`Engine.start` checks the arguments and builds the context; this writes the instance in one
transaction. A flat machine's start is written here; a statechart's by the chart applier.
"""

from __future__ import annotations

from persistence import Conflict
from statemachines import errors
from statemachines.apply import arms
from statemachines.chart import CompiledChart
from statemachines.compiled import CompiledMachine
from statemachines.records import ACTIVE, APPLIED, COMPLETED, Event, Snapshot
from statemachines.runtime import Runtime


def start_instance(
    rt: Runtime,
    cm: CompiledMachine | CompiledChart,
    machine: str,
    iid: str,
    ctx_json: str,
    actor: str | None,
) -> Snapshot:
    """Create instance `iid` of `cm` with context `ctx_json`: entry actions run, timers and
    effects of the initial state armed, one `start` record. `InstanceExists` if the id is taken."""
    now = rt.clock.now()
    start = Event("start", {}, iid, actor, None, now)
    try:
        if isinstance(cm, CompiledChart):
            chart_step = cm.enter_initial(ctx_json, start)
            with rt.transaction() as cur:
                return rt.applier.charts.start(cur, cm, iid, chart_step, actor, now)
        step = cm.enter_initial(ctx_json, start)
        status = COMPLETED if step.target in cm.final else ACTIVE
        dv = cm.definition.version
        with rt.transaction() as cur:
            armed = status == ACTIVE and arms(cm, step.target)
            rt.store.insert_instance(
                cur, iid, machine, dv, step.target, step.context_json, status, now, armed
            )
            rt.store.insert_history(
                cur, iid, machine, 1, "start", None, step.target, "{}", step.context_json, actor, now,
                APPLIED,
            )  # fmt: skip
            rt.applier.arm(cur, cm, iid, step.target, 1, now)
    except Conflict:
        # The id, most likely; but say so only if it is: a clash on another unique key
        # (an effect key) is a storage problem, not an existing instance.
        with rt.read() as cur:
            exists = rt.store.get_instance(cur, iid) is not None
        if exists:
            raise errors.InstanceExists(iid) from None
        raise errors.StorageError(
            f"starting instance {iid!r} conflicted with a stored row other than an instance"
            " (an effect key of an older format?)"
        ) from None
    return Snapshot(
        iid, machine, step.target, status, step.context_json, 1, now, now, cm.model, step.context, dv,
    )  # fmt: skip
