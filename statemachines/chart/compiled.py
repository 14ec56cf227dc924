"""A statechart definition compiled once (`CompiledChart`), then run for every event.

The statechart counterpart of `statemachines.compiled.CompiledMachine`: the engine holds one per
definition version and calls `enter_initial` when an instance starts and `step` for each event.
Both are pure: they take the stored configuration, history memory and context JSON, and return a
`ChartStep` record saying what to write (new configuration, history, context) and what happened
(states exited and entered in order, for cancelling and arming timers and effects; transitions
taken; whether a top-level final state was reached). Nothing is returned when a callable raises or
the event is refused: the caller rolls back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from statemachines import contexts
from statemachines.chart import content
from statemachines.chart.algorithm import (
    ContextCopy,
    Interpretation,
    macrostep,
    microstep,
    select_transitions,
    select_transitions_from,
)
from statemachines.chart.plan import PLAN_CACHE_SIZE, Plan, Plans, run_calls
from statemachines.chart.tree import ChartTransition, Node, Tree
from statemachines.definition import Definition
from statemachines.errors import (
    EventNotAllowed,
    GuardRejected,
    InvalidArgument,
)
from statemachines.records import Event
from statemachines.spec import EffectSpec

#: Microsteps one call may take before `StepLimitExceeded` (an eventless or done-event loop).
MAX_MICROSTEPS = 1000


@dataclass(frozen=True, slots=True)
class Taken:
    """One transition taken during a step; `event` None for an eventless one."""

    source: str
    event: str | None
    target: str | None
    internal: bool


@dataclass(frozen=True, slots=True)
class ChartStep:
    """The outcome of one call, in memory (not yet written)."""

    configuration: tuple[str, ...]  # active atomic states, document order
    active: frozenset[str]  # every active state, compound and parallel ones included
    active_order: tuple[str, ...]  # the same states in document order (what the engine stores)
    history: dict[str, tuple[str, ...]]  # history pseudo-state path -> remembered state paths
    context_json: str
    context: Any  # the parsed, validated context; None when no callable touched it
    exited: tuple[str, ...]  # in exit order (innermost first)
    entered: tuple[str, ...]  # in entry order (outermost first)
    moves: tuple[tuple[str, str], ...]  # ("exit" | "enter", path) in the order they ran
    transitions: tuple[Taken, ...]
    done: bool  # a top-level final state was entered
    microsteps: int
    state: str  # the one-string summary of the configuration (see `state_label`)
    #: External sends and cancels executable content made, in order, for the engine to store:
    #: ("send", sendid, event, data JSON, delay seconds) or ("cancel", sendid, None, None, 0.0).
    sends: tuple[tuple[str, str, str | None, str | None, float], ...] = ()


class CompiledChart:
    """One per definition version; shared by every event and every thread (it holds no run state)."""

    is_chart = True  # the engine writes its steps with `statemachines.chart_apply`

    def __init__(
        self, definition: Definition, *, max_microsteps: int = MAX_MICROSTEPS, plans: int = PLAN_CACHE_SIZE
    ) -> None:
        """`plans`: how many step plans to remember (`statemachines.chart.plan`); 0 runs the
        algorithm on every step (what `bench.chart_memory` compares with other interpreters)."""
        self.definition = definition
        spec = definition.spec
        self.name = spec.name
        self.model = definition.context_model
        self.schemas = definition.event_schemas
        self.callables = definition.callables
        self.max_microsteps = max_microsteps
        self.tree = Tree(spec)
        if self.tree.problems:  # a Definition is checked already; this guards hand-built specs
            raise InvalidArgument(f"machine {self.name!r} cannot be compiled: {self.tree.problems}")
        nodes = self.tree.order
        #: Per full path: the timer labels (`after`) and effects the state declares.
        self.timers: dict[str, list[str]] = {n.path: list(n.spec.after) for n in nodes}
        self.effects: dict[str, list[EffectSpec]] = {n.path: list(n.spec.effects) for n in nodes}
        self.final: frozenset[str] = frozenset(n.path for n in nodes if n.kind == "final")
        #: States declared `compensate=True` (entering one arms compensations: compensation.py).
        self.compensating: frozenset[str] = frozenset(n.path for n in nodes if n.spec.compensate)
        self.top_final: frozenset[str] = frozenset(
            n.path for n in nodes if n.kind == "final" and n.parent is self.tree.root
        )
        self.kinds: dict[str, str] = {n.path: n.kind for n in nodes}
        root = self.tree.root
        self._initial = ChartTransition(root, None, root.initial, None, (), True, targets=root.initials)
        self._parse = self.model.model_validate_json if self.model is not None else json.loads
        #: (configuration, history items, event, source[, enabled transitions when guards chose
        #: them]) -> the plan of the step (`statemachines.chart.plan`).
        self._plans = Plans(plans)

    # Running ------------------------------------------------------------------------------------
    def enter_initial(self, ctx_json: str, event: Event) -> ChartStep:
        """Enter the initial configuration, then whatever done events and eventless transitions follow."""
        run = self._interpretation(set(), {}, ctx_json, event)
        run.starting = True
        if self.tree.has_content:  # the datamodel (SCXML 5.3): early binding binds every state's
            content.bind_data(run, self.tree.data)
            if not self.tree.late:
                for node in self.tree.order:
                    content.bind_data(run, node.spec.data)
        microstep(run, [self._initial])
        run.taken.clear()  # the entry into the machine is not a declared transition
        macrostep(run)
        return self._finish(run)

    def step(
        self,
        configuration: tuple[str, ...],
        history: Mapping[str, tuple[str, ...]],
        ctx_json: str,
        event: Event,
        *,
        source: str | None = None,
    ) -> ChartStep:
        """Apply one external event; raises EventNotAllowed/GuardRejected/ActionFailed/StepLimitExceeded.

        With `source`, only the transitions that state declares for the event are candidates: a
        timer fires the transition of the state that armed it, even when a descendant declares the
        same `after` label (whose own timer is a different row)."""
        key: tuple[Any, ...] = (
            tuple(configuration), tuple((k, tuple(v)) for k, v in history.items()), event.name, source
        )
        plan = self._plans.get(key)
        if plan is not None:  # no guard in the way: the same step as before, on this context
            return self._replay(plan, ContextCopy(ctx_json, self._parse), event)
        active = self.active_nodes(configuration)
        if history:
            named = {*history, *(p for paths in history.values() for p in paths)}
            unknown = sorted(p for p in named if p not in self.tree.nodes)
            if unknown:
                raise InvalidArgument(f"history memory names states {unknown} not in machine {self.name!r}")
        run = self._interpretation(active, history, ctx_json, event)
        if source is None:
            enabled = select_transitions(run, event.name)
        else:
            enabled = select_transitions_from(run, self.tree.nodes[source], event.name)
        if not enabled and not run.internal_queue:  # which error: did a state declare it at all?
            if source is None:
                handled = bool(self._handlers(active, event.name))
            else:
                handled = bool(self.tree.nodes[source].by_event.get(event.name))
            error = GuardRejected if handled else EventNotAllowed
            label = state_label(self.tree, active)
            raise error(event.instance_id, label, event.name, self.allowed_events(configuration))
        if run.guards:  # the guards' verdict is part of what fixes the step
            key = (*key, tuple(enabled))
            plan = self._plans.get(key)
            if plan is not None:
                return self._replay(plan, run.ctx, event)
        guards, ran = run.guards, len(run.log)
        if enabled:
            microstep(run, enabled)
        macrostep(run)  # with nothing enabled: the error.execution its failing conds raised
        step = self._finish(run)
        if run.guards == guards and not run.dynamic:  # nothing later read the context: a plan
            self._plans.keep(key, Plan(step, tuple(run.log[ran:])))
        return step

    def _replay(self, plan: Plan, ctx: ContextCopy, event: Event) -> ChartStep:
        """A remembered step on this call's context: its callables run, nothing else is decided."""
        if plan.calls:
            run_calls(plan, ctx, event)
        ctx_json, value = self._context_out(ctx, event.name)
        s = plan.step
        return ChartStep(
            s.configuration, s.active, s.active_order, s.history, ctx_json, value, s.exited,
            s.entered, s.moves, s.transitions, s.done, s.microsteps, s.state,
        )  # fmt: skip

    def _interpretation(
        self, active: set[Node], history: Mapping[str, tuple[str, ...]], ctx_json: str, event: Event
    ) -> Interpretation:
        ctx = ContextCopy(ctx_json, self._parse)
        return Interpretation(self.tree, self.callables, active, history, ctx, event, self.max_microsteps)

    def _finish(self, run: Interpretation) -> ChartStep:
        ctx_json, ctx = self._context_out(run.ctx, run.external.name)
        conf = sorted(run.configuration, key=_order)
        ordered = tuple(s.path for s in conf)
        atomic = [s for s in conf if s.is_atomic]
        return ChartStep(
            configuration=tuple(s.path for s in atomic),
            active=frozenset(ordered),
            active_order=ordered,
            history=run.history_value,
            context_json=ctx_json,
            context=ctx,
            exited=tuple(run.exited),
            entered=tuple(run.entered),
            moves=tuple(run.moves),
            transitions=tuple(
                Taken(t.source.path, event, t.target.path if t.target else None, t.internal)
                for t, event in run.taken
            ),
            done=not run.running,
            microsteps=run.microsteps,
            state=_label(atomic),
            sends=tuple(run.sends) if run.sends else (),
        )

    # Queries --------------------------------------------------------------------------------------
    def active_nodes(self, configuration: tuple[str, ...] | list[str]) -> set[Node]:
        """The atomic states of a stored configuration with all their ancestors."""
        active: set[Node] = set()
        for path in configuration:
            node = self.tree.nodes.get(path)
            if node is None or not node.is_atomic:
                raise InvalidArgument(f"{path!r} is not an atomic state of machine {self.name!r}")
            active.add(node)
            active.update(node.ancestors)
        return active

    def allowed_events(self, configuration: tuple[str, ...] | list[str]) -> list[str]:
        """Events some active state (or an ancestor) declares in `on`, sorted (timers excluded)."""
        events: set[str] = set()
        for node in self.active_nodes(configuration):
            events.update(node.spec.on)
        return sorted(events)

    def handlers(self, configuration: tuple[str, ...] | list[str], event: str) -> list[str]:
        """The states whose transitions `event` would be offered to and matched, one per atomic state
        (innermost first), guards not evaluated: the states a callback token binds to."""
        return [n.path for n in self._handlers(self.active_nodes(configuration), event)]

    def _handlers(self, active: set[Node], event: str) -> list[Node]:
        found: dict[Node, None] = {}
        keys = self.tree.events.keys(event)
        for state in sorted((s for s in active if s.is_atomic), key=lambda s: s.order):
            for s in (state, *state.ancestors):
                if self.tree.candidates(s, keys):
                    found[s] = None
                    break
        return list(found)

    # Context and payloads (the same rules as flat machines: `statemachines.contexts`) ----------
    def validate_payload(self, event: str, payload: Any) -> Any:
        return contexts.validate_payload(self.schemas, event, payload)

    def new_context(self, context: Any) -> tuple[Any, str]:
        """Validate a context given to `start`: (object, JSON)."""
        return contexts.new_context(self.name, self.model, context)

    def _context_out(self, ctx: ContextCopy, event: str) -> tuple[str, Any]:
        if ctx.parsed is None:  # no callable looked at the context: it is unchanged
            return ctx.json, None
        return contexts.context_out(self.name, self.model, ctx.parsed, event)


def state_label(tree: Tree, active: set[Node] | frozenset[Node]) -> str:
    """`snap.state`: the active atomic state when there is one, else the deepest state that contains
    the whole configuration (`"checks"` while its regions run)."""
    return _label(sorted((s for s in active if s.is_atomic), key=_order))


def _order(node: Node) -> int:
    return node.order


def _label(atomic: list[Node]) -> str:
    """`state_label` of atomic states already in document order."""
    if len(atomic) == 1:
        return atomic[0].path
    if not atomic:
        return ""
    common = atomic[0].ancestors
    for s in atomic[1:]:
        common = tuple(a for a in common if s.is_descendant_of(a))
    return common[0].path if common else ""
