"""`explore`: walk every event sequence a definition allows, in memory, and report what is wrong.

The definition checks (statemachines.checks) look at the declared graph; this runs it. Breadth
first from the initial state, it sends every event the current state declares (timers and effect
results included) and records which transitions were taken. What it reports:

- transitions never taken (a guard that is never true, an event shadowed by an earlier guard);
- dead ends: non-final states it reached but could never leave;
- states from which no final state can be reached (only when the machine declares one).

Two modes. Given a `context`, guards and actions run for real on copies of it (nothing is
stored), with the payloads of `payloads` (an event's value is one payload, or a list of payloads
to try each). Without one, guards are not evaluated: at each event, every way its guards could
come out is tried (none true, or each one true), and actions do not run: the structure alone.
Statecharts (nested states) are explored over configurations with `statemachines.chart`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from statemachines.checks import outgoing
from statemachines.definition import Definition
from statemachines.errors import (
    ContextInvalid,
    EventRejected,
    InvalidArgument,
    PayloadInvalid,
    StateMachineError,
)
from statemachines.records import Event
from statemachines.spec import MachineSpec

MAX_DEPTH = 1000
#: Configurations (with their context, in the concrete mode) explored before giving up.
DEFAULT_MAX_STATES = 20_000
_ID = "explore"

Arrow = tuple[str, str | None, str | None]  # (source, event (None: eventless), target (None: internal))
Node = tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...], str]  # config, history, context


@dataclass
class Report:
    """What `explore` found; `problems` is empty when nothing is wrong."""

    machine: str
    depth: int
    mode: str  # "concrete" (guards evaluated on a context) or "structural"
    complete: bool  # every reachable configuration was explored within the depth and size limits
    reached: list[str] = field(default_factory=list)  # states ever active, document order
    unreachable_states: list[str] = field(default_factory=list)
    unreachable_transitions: list[str] = field(default_factory=list)
    dead_ends: list[str] = field(default_factory=list)
    no_final: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # callables that raised (concrete mode)
    not_explored: list[str] = field(default_factory=list)  # events skipped: payload needed

    @property
    def problems(self) -> list[str]:
        return [
            *(f"state never reached: {s}" for s in self.unreachable_states),
            *(f"transition never taken: {t}" for t in self.unreachable_transitions),
            *(f"dead end (non-final, no way out): {s}" for s in self.dead_ends),
            *(f"no final state reachable from: {s}" for s in self.no_final),
            *(f"error: {e}" for e in self.errors),
        ]

    def __str__(self) -> str:
        how = (
            "guards evaluated on the given context"
            if self.mode == "concrete"
            else ("guards not evaluated (every outcome tried), actions not run")
        )
        scope = "complete" if self.complete else f"within {self.depth} events or the size limit"
        lines = [f"machine {self.machine!r}: explored to depth {self.depth} ({how}; {scope})"]
        problems = self.problems
        lines += [f"  - {p}" for p in problems] if problems else ["  no problems found"]
        lines += [f"  note: {n}" for n in self.not_explored]
        if self.not_explored:
            lines.append(
                "  note: unreachable states and transitions are not reported when events went unsent"
            )
        return "\n".join(lines)


def explore(
    definition: Definition | MachineSpec,
    depth: int = 20,
    context: Any = None,
    payloads: Mapping[str, Any] | None = None,
    *,
    max_states: int = DEFAULT_MAX_STATES,
) -> Report:
    """Explore event sequences of up to `depth` events; see the module docstring for the modes.

    A `MachineSpec` (a definition without its callables, e.g. a YAML file alone) is explored
    structurally; a `context` then is refused."""
    if not isinstance(depth, int) or isinstance(depth, bool) or not 0 <= depth <= MAX_DEPTH:
        raise InvalidArgument(f"depth must be an integer from 0 to {MAX_DEPTH}, got {depth!r}")
    if not isinstance(max_states, int) or isinstance(max_states, bool) or max_states < 1:
        raise InvalidArgument(f"max_states must be an integer >= 1, got {max_states!r}")
    if payloads is not None and not isinstance(payloads, Mapping):
        raise InvalidArgument(f"payloads must map event names to payloads, got {type(payloads).__name__}")
    if isinstance(definition, MachineSpec):
        if context is not None:
            raise InvalidArgument("a context needs the definition's callables: pass a Definition")
        spec = definition
    elif isinstance(definition, Definition):
        spec = definition.spec
    else:
        raise InvalidArgument(
            f"explore() takes a Definition or a MachineSpec, got {type(definition).__name__}"
        )
    concrete = context is not None
    guards = _Valuation()
    if concrete:
        assert isinstance(definition, Definition)
        runner = _runner(definition)
    else:
        runner = _runner(_structural(spec, guards))
    return _Search(spec, runner, guards, concrete, payloads or {}, depth, max_states).run(context)


class _Valuation:
    """The guards that answer True in the structural mode, set before each tried step."""

    def __init__(self) -> None:
        self.true: frozenset[str] = frozenset()

    def guard(self, name: str) -> Callable[[Any, Any], bool]:
        return lambda _ctx, _event: name in self.true


def _structural(spec: MachineSpec, guards: _Valuation) -> Definition:
    """The same machine with stand-in callables: guards read the valuation, actions do nothing,
    no context model or payload schema (any payload is accepted)."""
    guard_names = {t.guard for _p, st in spec.walk() for _e, g in _groups(st) for t in g if t.guard}
    stubs: dict[str, Callable[..., Any]] = {n: (lambda _ctx, _ev: None) for n in spec.callable_names()}
    stubs.update({n: guards.guard(n) for n in guard_names})
    return Definition(spec, stubs)


def _groups(st: Any) -> list[tuple[str | None, list[Any]]]:
    return [*outgoing(st), *([(None, list(st.always))] if st.always else [])]


@dataclass(frozen=True)
class _Moved:
    node: Node
    arrows: tuple[Arrow, ...]
    final: bool
    active: frozenset[str]


class _Runner:
    """Flat and chart machines behind one interface: start, step, declared arrows, events."""

    final_states: frozenset[str]
    arrows: list[Arrow]
    states: list[str]

    def start(self, ctx_json: str) -> _Moved:
        raise NotImplementedError

    def step(self, node: Node, event: str, payload: Any) -> _Moved:
        raise NotImplementedError

    def events(self, node: Node) -> dict[str, set[str]]:
        """Events to try in a configuration, each with the guards that decide it."""
        raise NotImplementedError

    def new_context(self, context: Any) -> str:
        raise NotImplementedError

    def validate_payload(self, event: str, payload: Any) -> Any:
        raise NotImplementedError


def _runner(definition: Definition) -> _Runner:
    return _ChartRunner(definition) if definition.spec.is_chart else _FlatRunner(definition)


class _FlatRunner(_Runner):
    def __init__(self, definition: Definition) -> None:
        from statemachines.compiled import CompiledMachine

        self.cm = CompiledMachine(definition)
        spec = definition.spec
        self.specs = spec.states
        self.states = list(spec.states)
        self.final_states = frozenset(self.cm.final)
        self.arrows = [(s, e, t.target) for s, st in spec.states.items() for e, g in outgoing(st) for t in g]

    def new_context(self, context: Any) -> str:
        return self.cm.new_context(context)[1]

    def validate_payload(self, event: str, payload: Any) -> Any:
        return self.cm.validate_payload(event, payload)

    def start(self, ctx_json: str) -> _Moved:
        step = self.cm.enter_initial(ctx_json, Event("start", {}, _ID))
        return self._moved(step, ())

    def step(self, node: Node, event: str, payload: Any) -> _Moved:
        step = self.cm.step(node[0][0], node[2], Event(event, payload, _ID))
        return self._moved(step, ((step.source, event, None if step.internal else step.target),))

    def _moved(self, step: Any, arrows: tuple[Arrow, ...]) -> _Moved:
        node: Node = ((step.target,), (), step.context_json)
        return _Moved(node, arrows, step.target in self.final_states, frozenset([step.target]))

    def events(self, node: Node) -> dict[str, set[str]]:
        st = self.specs[node[0][0]]
        effects = {e.name for e in st.effects} | ({"compensation"} if st.compensate else set())
        return {e: {t.guard for t in g if t.guard} for e, g in outgoing(st) if _sendable(e, effects)}


class _ChartRunner(_Runner):
    def __init__(self, definition: Definition) -> None:
        from statemachines.chart import CompiledChart

        self.chart = CompiledChart(definition)
        order = self.chart.tree.order
        self.states = [n.path for n in order if n.kind != "history"]
        self.final_states = frozenset(self.chart.top_final)
        self.arrows = [
            (n.path, t.event, t.target.path if t.target is not None else None)
            for n in order
            for t in n.transitions
        ]
        #: Eventless transitions may fire after any event: their guards are tried with every event.
        self.eventless_guards = {t.guard for n in order for t in n.transitions if t.event is None and t.guard}

    def new_context(self, context: Any) -> str:
        model, name = self.chart.model, self.chart.name
        try:
            if model is None:
                return json.dumps(dict(context or {}), separators=(",", ":"), allow_nan=False)
            if isinstance(context, model):
                context = context.model_dump()
            return model.model_validate(context).model_dump_json()
        except (ValidationError, TypeError, ValueError) as exc:
            raise ContextInvalid(name, str(exc)) from None

    def validate_payload(self, event: str, payload: Any) -> Any:
        return self.chart.validate_payload(event, payload)

    def start(self, ctx_json: str) -> _Moved:
        return self._moved(self.chart.enter_initial(ctx_json, Event("start", {}, _ID)))

    def step(self, node: Node, event: str, payload: Any) -> _Moved:
        return self._moved(self.chart.step(node[0], dict(node[1]), node[2], Event(event, payload, _ID)))

    def _moved(self, step: Any) -> _Moved:
        node: Node = (step.configuration, tuple(sorted(step.history.items())), step.context_json)
        arrows = tuple((t.source, t.event, t.target) for t in step.transitions)
        return _Moved(node, arrows, step.done, step.active | set(step.entered))  # entered: left at once too

    def events(self, node: Node) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        active = sorted(self.chart.active_nodes(node[0]), key=lambda n: n.order)
        effects = {e.name for n in active for e in n.spec.effects}
        effects |= {"compensation" for n in active if n.spec.compensate}  # `done.compensation`
        for n in active:
            for event, group in outgoing(n.spec):
                if not _sendable(event, effects):
                    continue
                found.setdefault(event, set(self.eventless_guards)).update(t.guard for t in group if t.guard)
        return found


class _Search:
    """The breadth-first walk and the graph it observes (between configurations)."""

    def __init__(
        self,
        spec: MachineSpec,
        runner: _Runner,
        guards: _Valuation,
        concrete: bool,
        payloads: Mapping[str, Any],
        depth: int,
        max_states: int,
    ) -> None:
        self.spec, self.runner, self.guards, self.concrete = spec, runner, guards, concrete
        self.payloads, self.depth, self.max_states = payloads, depth, max_states
        self.taken: set[Arrow] = set()
        self.active: set[str] = set()
        self.edges: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        self.expanded: set[tuple[str, ...]] = set()
        self.final: set[tuple[str, ...]] = set()
        self.errors: dict[str, None] = {}
        self.skipped: dict[str, None] = {}
        self.unsent: set[str] = set()  # events whose payload could not be built

    def run(self, context: Any) -> Report:
        report = Report(self.spec.name, self.depth, "concrete" if self.concrete else "structural", True)
        try:
            ctx_json = self.runner.new_context(context) if self.concrete else "{}"
            first = self.runner.start(ctx_json)
        except StateMachineError as exc:
            report.errors.append(f"start: {type(exc).__name__}: {exc}")
            return report
        self._arrive(first)
        seen = {first.node}
        frontier: deque[tuple[Node, int]] = deque([(first.node, 0)])
        while frontier:
            node, level = frontier.popleft()
            if node[0] in self.final:  # the instance is completed: nothing more can happen
                continue
            if level >= self.depth or len(seen) >= self.max_states:
                report.complete = False
                continue
            self.expanded.add(node[0])
            self.edges.setdefault(node[0], set())
            for moved in self._successors(node):
                self.edges[node[0]].add(moved.node[0])
                if moved.node not in seen:
                    seen.add(moved.node)
                    frontier.append((moved.node, level + 1))
        self._conclude(report)
        return report

    def _arrive(self, moved: _Moved) -> None:
        self.taken.update(moved.arrows)
        self.active.update(moved.active)
        if moved.final:
            self.final.add(moved.node[0])

    def _successors(self, node: Node) -> list[_Moved]:
        out: list[_Moved] = []
        for event, guards in self.runner.events(node).items():
            if self.concrete:
                tries = [(frozenset(), p) for p in self._payloads(event)]
            else:
                tries = [(frozenset(), {}), *((frozenset([g]), {}) for g in sorted(guards))]
            for true, payload in tries:
                self.guards.true = true
                where = f"{event} in {_label(node)}"
                try:
                    moved = self.runner.step(node, event, payload)
                except EventRejected:
                    continue
                except StateMachineError as exc:
                    self.errors.setdefault(f"{where}: {type(exc).__name__}: {exc}", None)
                    continue
                self._arrive(moved)
                out.append(moved)
        return out

    def _payloads(self, event: str) -> list[Any]:
        given = self.payloads.get(event)
        candidates = given if isinstance(given, list) else [given]
        valid = []
        for payload in candidates:
            try:
                valid.append(self.runner.validate_payload(event, payload))
            except PayloadInvalid as exc:
                note = f"event {event!r} not sent: {exc} (give it a payload in `payloads`)"
                self.skipped.setdefault(note, None)
                self.unsent.add(event)
        return valid

    def _conclude(self, report: Report) -> None:
        runner = self.runner
        report.reached = [s for s in runner.states if s in self.active]
        if not self.unsent:  # else what lies behind an unsent event would look unreachable
            report.unreachable_states = [s for s in runner.states if s not in self.active]
            report.unreachable_transitions = [
                _arrow(a) for a in dict.fromkeys(runner.arrows) if a not in self.taken
            ]
        report.dead_ends = [
            _config(c)
            for c in sorted(self.expanded)
            if c not in self.final and not (self.edges.get(c, set()) - {c})
        ]
        if runner.final_states:
            can_finish = set(self.final) | {c for c in self.edges if c not in self.expanded}
            changed = True
            while changed:
                changed = False
                for c, targets in self.edges.items():
                    if c not in can_finish and targets & can_finish:
                        can_finish.add(c)
                        changed = True
            report.no_final = [_config(c) for c in sorted(self.expanded) if c not in can_finish]
        report.errors = [*report.errors, *self.errors]
        report.not_explored = list(self.skipped)


def _sendable(event: str, effects: set[str]) -> bool:
    """Whether an event can happen in a state: `done.<x>`/`error.<x>` only as the result of an
    effect `x` the state runs, or `done.compensation` of a compensating state (passed in `effects`
    as "compensation"; `done.state.<id>` is the statechart's own, never sent); the rest (events,
    timers) always."""
    kind, _, name = event.partition(".")
    return kind not in ("done", "error") or name in effects


def _config(configuration: tuple[str, ...]) -> str:
    return " + ".join(configuration)


def _label(node: Node) -> str:
    return _config(node[0])


def _arrow(arrow: Arrow) -> str:
    source, event, target = arrow
    return f"{source} --{event if event is not None else '(always)'}--> {target or '(internal)'}"
