"""The engine under test: ``statemachines.Engine`` on the shared workload.

Written against the public API in docs/design.md (plain-dict context, guard and
action as named functions).  If ``statemachines`` cannot be imported the
harness lists this contender as skipped and runs the others.  The SQLite
durability level goes through ``Engine(url, sqlite_synchronous=...)``; on
PostgreSQL the engine's tables go to the ``bench_engine`` schema through the
URL's ``options=-csearch_path=...``, never to ``public``::

    python -m bench.harness --contenders raw_sqlite,engine,orm_transitions \\
        --baseline raw_sqlite,orm_transitions
"""

from __future__ import annotations

from typing import Any

from bench import workload
from bench.contenders.base import Target, pg_reset_schema
from statemachines import Engine, machine, state, transition


def paid_enough(ctx: dict[str, Any], event: Any) -> bool:
    return workload.paid_enough(ctx, event.payload)


def record_payment(ctx: dict[str, Any], event: Any) -> None:
    workload.record_payment(ctx, event.payload)


def build_definition() -> Any:
    """The workload's lifecycle as an engine definition (context: a plain dict)."""
    on: dict[str, dict[str, Any]] = {name: {} for name in workload.STATES}
    for (source, event), target in workload.TRANSITIONS.items():
        if event == workload.PAY:
            on[source][event] = transition(target, guard=paid_enough, action=record_payment)
        else:
            on[source][event] = target
    states = {
        name: state(final=True) if name in workload.FINAL else state(on=on[name]) for name in workload.STATES
    }
    return machine(workload.MACHINE, initial=workload.INITIAL, states=states)


class EngineContender:
    name = "engine"
    backends = frozenset({"sqlite", "postgres"})

    def __init__(self) -> None:
        self.engine: Any = None

    def setup(self, target: Target) -> None:
        if target.backend == "sqlite":
            self.engine = Engine(target.sqlalchemy_url, sqlite_synchronous=target.sync)
        else:
            # The engine's tables go to this contender's own schema (search_path).
            pg_reset_schema(target.pg_url, target.schema)
            self.engine = Engine(target.sqlalchemy_url_in_schema)
        self.engine.register(build_definition())

    def start(self, instance_id: str, context: dict[str, Any]) -> None:
        self.engine.start(workload.MACHINE, context, instance_id=instance_id)

    def send(self, instance_id: str, event: str, payload: dict[str, Any]) -> None:
        self.engine.send(instance_id, event, payload)

    def states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        page, offset = 1000, 0
        while True:
            snaps = self.engine.instances(machine=workload.MACHINE, limit=page, offset=offset)
            for snap in snaps:
                counts[snap.state] = counts.get(snap.state, 0) + 1
            if len(snaps) < page:
                return dict(sorted(counts.items()))
            offset += page

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def make() -> EngineContender:
    return EngineContender()
