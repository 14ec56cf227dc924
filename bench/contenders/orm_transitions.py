"""pytransitions + SQLModel: the recipe a user would write without our engine.

One ``transitions.Machine`` built once (``model=None``), events fired unbound
on the ORM row itself, a ``Session`` per event (see ``_orm.OrmRecipe``).
"""

from __future__ import annotations

from typing import Any

from transitions import EventData, Machine

from bench import workload
from bench.contenders._orm import Instance, OrmRecipe, paid_context


def _paid_enough(ev: EventData) -> bool:
    return workload.paid_enough(ev.model.context, ev.kwargs["payload"])


def _record_payment(ev: EventData) -> None:
    ev.model.context = paid_context(ev.model.context, ev.kwargs["payload"])


def build_machine() -> Machine:
    """The order lifecycle as a transitions Machine, built once per process."""
    transitions: list[dict[str, Any]] = []
    for (source, event), dest in workload.TRANSITIONS.items():
        spec: dict[str, Any] = {"trigger": event, "source": source, "dest": dest}
        if event == workload.PAY:
            spec.update(conditions=[_paid_enough], before=[_record_payment])
        transitions.append(spec)
    return Machine(
        model=None,
        states=list(workload.STATES),
        transitions=transitions,
        initial=None,
        auto_transitions=False,
        send_event=True,
    )


MACHINE = build_machine()


def fire(row: Instance, event: str, payload: dict[str, Any]) -> None:
    """Fire ``event`` on the ORM row: transitions sets ``row.state`` itself."""
    if not MACHINE.events[event].trigger(row, payload=payload):
        raise workload.Rejected(f"guard rejected {event} in {row.state}")


class OrmTransitions(OrmRecipe):
    name = "orm_transitions"

    def __init__(self) -> None:
        super().__init__(fire)


def make() -> OrmTransitions:
    return OrmTransitions()
