"""A definition compiled once into a `transitions.Machine`, then fired unbound for every event.

`transitions` owns the semantics (guard order, exit/enter callbacks, internal transitions); we own
atomicity. Each event runs against a throwaway `_Run` (state + lazily parsed context copy), so a
failing action can never leave shared state behind: the database transaction is the unit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from transitions import Machine, State, Transition

from statemachines import contexts
from statemachines.checks import outgoing
from statemachines.definition import Definition
from statemachines.errors import (
    ActionFailed,
    ConfigurationError,
    EventNotAllowed,
    GuardRejected,
)
from statemachines.records import Event


class _Run:
    """The model `transitions` moves for one event: state, context copy, event, what was taken."""

    __slots__ = ("_ctx", "_ctx_json", "_model", "event", "ran", "state", "taken", "where")

    def __init__(self, state: str, ctx_json: str, model: type[BaseModel] | None, event: Event):
        self.state = state
        self._ctx_json = ctx_json
        self._ctx: Any = None
        self._model = model
        self.event = event
        self.taken: Transition | None = None
        self.where = "transition"
        self.ran: list[str] = []  # every guard and action run, for errors about the context

    @property
    def ctx(self) -> Any:
        if self._ctx is None:
            self._ctx = (
                self._model.model_validate_json(self._ctx_json)
                if self._model is not None
                else json.loads(self._ctx_json)
            )
        return self._ctx


class _ActionTransition(Transition):
    """Runs its actions between the source's exit and the target's entry (UML order)."""

    actions: list[Callable[[Any], None]]

    def _change_state(self, event_data: Any) -> None:
        machine = event_data.machine
        machine.get_state(self.source).exit(event_data)
        machine.callbacks(self.actions, event_data)
        machine.set_state(self.dest, event_data.model)
        event_data.update(event_data.model.state)
        machine.get_state(self.dest).enter(event_data)


class _Machine(Machine):
    transition_cls = _ActionTransition


def _record_taken(event_data: Any) -> None:
    event_data.model.taken = event_data.transition


def _wrap(fn: Callable[..., Any], where: str, *, is_guard: bool = False) -> Callable[[Any], Any]:
    def call(event_data: Any) -> Any:
        run: _Run = event_data.model
        run.where = where
        run.ran.append(where)
        result = fn(run.ctx, run.event)
        return bool(result) if is_guard else None

    call.__name__ = where
    return call


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of applying one event in memory (not yet written)."""

    source: str
    target: str
    internal: bool
    context_json: str
    context: Any  # the parsed context after actions, or None when nothing touched it


class CompiledMachine:
    """One per definition version; shared by every event and every thread."""

    is_chart = False

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        spec = definition.spec
        if spec.is_chart:  # `statemachines.chart.CompiledChart` runs these (see `compile_machine`)
            raise ConfigurationError(
                f"machine {spec.name!r} is a statechart (nested, parallel, history or eventless states):"
                " compile it with statemachines.chart.CompiledChart"
            )
        self.name = spec.name
        self.model = definition.context_model
        self.schemas = definition.event_schemas
        fns = definition.callables
        self._machine = _Machine(
            model=None,
            states=[
                State(
                    name,
                    on_enter=[_wrap(fns[n], f"on_enter {n!r} of {name!r}") for n in st.on_enter],
                    on_exit=[_wrap(fns[n], f"on_exit {n!r} of {name!r}") for n in st.on_exit],
                )
                for name, st in spec.states.items()
            ],
            initial=spec.initial,
            send_event=True,
            auto_transitions=False,
            before_state_change=[_record_taken],
        )
        self._enter_initial = [
            _wrap(fns[n], f"on_enter {n!r} of {spec.initial!r}") for n in spec.states[spec.initial].on_enter
        ]
        self.allowed: dict[str, list[str]] = {}
        for name, st in spec.states.items():
            self.allowed[name] = sorted(st.on)
            for event, group in outgoing(st):
                for t in group:
                    self._add(event, name, t.target, t.guard, t.actions, fns)
        self.final = {name for name, st in spec.states.items() if st.final}
        #: States declared `compensate=True` (entering one arms compensations: compensation.py).
        self.compensating = frozenset(name for name, st in spec.states.items() if st.compensate)
        self.timers = {name: list(st.after) for name, st in spec.states.items()}
        self.effects = {name: list(st.effects) for name, st in spec.states.items()}

    def _add(
        self,
        event: str,
        source: str,
        target: str | None,
        guard: str | None,
        actions: list[str],
        fns: dict[str, Callable[..., Any]],
    ) -> None:
        wrapped = [_wrap(fns[a], f"action {a!r} of {source!r} --{event}-->") for a in actions]
        conditions = [_wrap(fns[guard], f"guard {guard!r}", is_guard=True)] if guard else []
        before = wrapped if target is None else []
        self._machine.add_transition(event, source, target, conditions=conditions, before=before)
        self._machine.events[event].transitions[source][-1].actions = wrapped

    def handles(self, state: str, event: str) -> bool:
        ev = self._machine.events.get(event)
        return ev is not None and state in ev.transitions

    def validate_payload(self, event: str, payload: Any) -> Any:
        """The payload the schema makes of it; a model must be storable JSON (no NaN/Infinity)."""
        return contexts.validate_payload(self.schemas, event, payload)

    def new_context(self, context: Any) -> tuple[Any, str]:
        """Validate a context given to `start`: (object, JSON), see `contexts.new_context`."""
        return contexts.new_context(self.name, self.model, context)

    def enter_initial(self, ctx_json: str, event: Event) -> Step:
        run = _Run(self.definition.spec.initial, ctx_json, self.model, event)
        try:
            for call in self._enter_initial:
                call(_FakeEventData(run))
        except Exception as exc:
            raise ActionFailed(event.instance_id, event.name, run.where, exc) from exc
        return self._finish(run, run.state, internal=False)

    def step(self, state: str, ctx_json: str, event: Event) -> Step:
        """Apply one event in memory; raises EventNotAllowed/GuardRejected/ActionFailed/..."""
        ev = self._machine.events.get(event.name)
        if ev is None or state not in ev.transitions:
            raise EventNotAllowed(event.instance_id, state, event.name, self.allowed.get(state, []))
        run = _Run(state, ctx_json, self.model, event)
        try:
            ok = ev.trigger(run)
        except Exception as exc:
            raise ActionFailed(event.instance_id, event.name, run.where, exc) from exc
        if not ok:
            raise GuardRejected(event.instance_id, state, event.name, self.allowed.get(state, []))
        taken = run.taken
        internal = taken is not None and taken.dest is None
        return self._finish(run, state, internal=internal)

    def _finish(self, run: _Run, source: str, *, internal: bool) -> Step:
        if run._ctx is None:  # no callback looked at the context: it is unchanged
            return Step(source, run.state, internal, run._ctx_json, None)
        text, ctx = contexts.context_out(self.name, self.model, run._ctx, run.event.name, run.ran)
        return Step(source, run.state, internal, text, ctx)


class _FakeEventData:
    """Just enough of `transitions.EventData` for entry callbacks run outside a transition."""

    __slots__ = ("model",)

    def __init__(self, model: _Run) -> None:
        self.model = model
