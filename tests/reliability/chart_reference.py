"""A small, slow, obviously-correct reference interpreter of statecharts, for model-based tests.

Written straight from docs/statecharts.md and W3C SCXML (section 3.13 and the pseudo-code of
Appendix D), independently of `statemachines.chart`: a recursive walk over a tree built from the
plain spec dict, nothing cached or precomputed, every set recomputed from the configuration when
it is needed. The procedures keep Appendix D's names so each can be held against the standard.

Callables are drawn from a tiny vocabulary (`reliability.chart_vocabulary`) that both this
interpreter and the engine under test run: actions append a tag to `ctx["log"]` or touch the
counter `ctx["n"]`, guards test the counter's parity or a payload flag. So the whole observable trace (exits,
transition actions and entries in order, done events, configuration, history memory, rejection
kind, step-limit error) ends up in the context and the result, where it can be compared.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reliability.chart_vocabulary import Crash, check_guard, run_action

# The tree -------------------------------------------------------------------------------------------
ROOT, ATOMIC, COMPOUND, PARALLEL = "root", "atomic", "compound", "parallel"
FINAL, HISTORY = "final", "history"


@dataclass(eq=False)
class RefState:
    path: str
    name: str
    parent: RefState | None
    kind: str
    body: dict[str, Any]
    order: int
    children: list[RefState] = field(default_factory=list)
    transitions: list[RefTransition] = field(default_factory=list)


@dataclass(eq=False)
class RefTransition:
    source: RefState
    event: str | None  # None: eventless
    target: RefState | None
    guard: str | None
    actions: list[str]
    internal: bool


def kind_of(body: Mapping[str, Any]) -> str:
    if body.get("history") is not None:
        return HISTORY
    if body.get("final"):
        return FINAL
    if body.get("type") == "parallel":
        return PARALLEL
    return COMPOUND if body.get("states") else ATOMIC


class RefChart:
    """The tree of a spec dict (the `MachineSpec` shape), with every target resolved."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.root = RefState("", "", None, ROOT, {"initial": spec["initial"], "states": spec["states"]}, 0)
        self.states: list[RefState] = []  # document order
        self._build(self.root)
        self.by_path = {s.path: s for s in self.states}
        for s in self.states:
            for event, group in s.body.get("on", {}).items():
                s.transitions.extend(self._transition(s, event, t) for t in group)
            s.transitions.extend(self._transition(s, None, t) for t in s.body.get("always", []))

    def _build(self, parent: RefState) -> None:
        for name, body in parent.body.get("states", {}).items():
            path = f"{parent.path}.{name}" if parent.path else name
            child = RefState(path, name, parent, kind_of(body), body, len(self.states) + 1)
            parent.children.append(child)
            self.states.append(child)
            self._build(child)

    def _transition(self, source: RefState, event: str | None, t: Mapping[str, Any]) -> RefTransition:
        target = None if t.get("target") is None else self.resolve(source, t["target"])
        internal = t.get("type") == "internal"
        return RefTransition(source, event, target, t.get("guard"), list(t.get("actions", [])), internal)

    def resolve(self, source: RefState, text: str) -> RefState:
        """docs/statecharts.md: a full path; else a child of the source's parent, grandparent, ...
        (nearest first); else the one state of that name in the machine."""
        if text in self.by_path:
            return self.by_path[text]
        anc = source.parent
        while anc is not None:
            for child in anc.children:
                if child.name == text:
                    return child
            anc = anc.parent
        named = [s for s in self.states if s.name == text]
        if len(named) != 1:
            raise LookupError(f"{text!r} from {source.path!r}: {len(named)} states of that name")
        return named[0]

    def initial_child(self, s: RefState) -> RefState:
        return next(c for c in s.children if c.name == s.body["initial"])

    def history_default(self, h: RefState) -> RefState:
        assert h.parent is not None
        return self.resolve(h, h.body["history"]["default"])


# Predicates (Appendix D's helpers, recursive and uncached) --------------------------------------------
def is_descendant(s: RefState, ancestor: RefState) -> bool:
    p = s.parent
    while p is not None:
        if p is ancestor:
            return True
        p = p.parent
    return False


def proper_ancestors(s: RefState, upto: RefState | None = None) -> list[RefState]:
    """Ancestors of `s`, innermost first, stopping before `upto` (None: up to and with the root)."""
    out = []
    p = s.parent
    while p is not None and p is not upto:
        out.append(p)
        p = p.parent
    return out


def child_states(s: RefState) -> list[RefState]:
    return [c for c in s.children if c.kind != HISTORY]


def is_atomic(s: RefState) -> bool:
    return s.kind in (ATOMIC, FINAL)


def summary(atomic: list[RefState]) -> str:
    """docs/statecharts.md: the active atomic state when there is one, else the deepest state that
    contains the whole configuration ("" when only the machine itself does)."""
    if len(atomic) == 1:
        return atomic[0].path
    for anc in proper_ancestors(atomic[0]) if atomic else []:
        if anc.kind != ROOT and all(is_descendant(s, anc) for s in atomic):
            return anc.path
    return ""


class RefError(Exception):
    """The kind of error the engine must raise: EventNotAllowed, GuardRejected, ActionFailed or
    StepLimitExceeded."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class RefResult:
    configuration: tuple[str, ...]  # active atomic states, document order
    active: frozenset[str]
    history: dict[str, tuple[str, ...]]
    context: dict[str, Any]
    moves: list[tuple[str, str]]
    done: bool
    microsteps: int
    state: str  # the one-string summary (`snap.state`)


class Interpreter:
    """One call (start or one external event) on a copy of the stored values; raises `RefError`."""

    def __init__(
        self,
        chart: RefChart,
        configuration: tuple[str, ...],
        history: Mapping[str, tuple[str, ...]],
        ctx: Mapping[str, Any],
        max_microsteps: int,
    ) -> None:
        self.chart = chart
        self.config: set[RefState] = set()
        for path in configuration:
            s = chart.by_path[path]
            self.config.add(s)
            self.config.update(a for a in proper_ancestors(s) if a is not chart.root)
        self.history = {h: [chart.by_path[p] for p in paths] for h, paths in history.items()}
        self.ctx = copy.deepcopy(dict(ctx))
        self.max_microsteps = max_microsteps
        self.microsteps = 0
        self.running = True
        self.queue: list[tuple[str, dict[str, Any]]] = []
        self.payload: Any = {}
        self.moves: list[tuple[str, str]] = []

    # Callables
    def act(self, names: list[str]) -> None:
        for name in names:
            try:
                run_action(name, self.ctx)
            except Crash:
                raise RefError("ActionFailed") from None

    def guard_holds(self, t: RefTransition, payload: Any) -> bool:
        return t.guard is None or check_guard(t.guard, self.ctx, payload)

    # Calls
    def start(self) -> RefResult:
        root = self.chart.root
        to_enter: list[RefState] = []
        self.add_descendant_states_to_enter(self.chart.initial_child(root), to_enter)
        self.microstep([], initial=to_enter)
        self.macrostep()
        return self.result()

    def send(self, event: str, payload: Any) -> RefResult:
        self.payload = payload
        enabled = self.select_transitions(event, payload)
        if not enabled:
            declared = any(event in s.body.get("on", {}) for s in self.config)
            raise RefError("GuardRejected" if declared else "EventNotAllowed")
        self.microstep(enabled)
        self.macrostep()
        return self.result()

    def result(self) -> RefResult:
        conf = sorted(self.config, key=lambda s: s.order)
        atomic = [s for s in conf if is_atomic(s)]
        return RefResult(
            configuration=tuple(s.path for s in conf if is_atomic(s)),
            active=frozenset(s.path for s in conf),
            history={h: tuple(s.path for s in states) for h, states in self.history.items()},
            context=self.ctx,
            moves=self.moves,
            done=not self.running,
            microsteps=self.microsteps,
            state=summary(atomic),
        )

    # Appendix D
    def macrostep(self) -> None:
        while self.running:
            enabled = self.select_transitions(None, self.payload)
            if not enabled:
                if not self.queue:
                    return
                event, self.payload = self.queue.pop(0)
                enabled = self.select_transitions(event, self.payload)
            if enabled:
                self.microstep(enabled)

    def select_transitions(self, event: str | None, payload: Any) -> list[RefTransition]:
        """Per active atomic state (document order), the first enabled transition of the state or
        of its nearest ancestor; then conflicts removed. `event` None selects eventless ones."""
        enabled: list[RefTransition] = []
        for atomic in sorted((s for s in self.config if is_atomic(s)), key=lambda s: s.order):
            chosen = None
            for s in [atomic, *proper_ancestors(atomic)]:
                chosen = next(
                    (t for t in s.transitions if t.event == event and self.guard_holds(t, payload)), None
                )
                if chosen is not None:
                    break
            if chosen is not None and chosen not in enabled:
                enabled.append(chosen)
        return self.remove_conflicting_transitions(enabled)

    def remove_conflicting_transitions(self, enabled: list[RefTransition]) -> list[RefTransition]:
        filtered: list[RefTransition] = []
        for t1 in enabled:
            preempted = False
            to_remove = []
            for t2 in filtered:
                if self.compute_exit_set([t1]) & self.compute_exit_set([t2]):
                    if is_descendant(t1.source, t2.source):
                        to_remove.append(t2)
                    else:
                        preempted = True
                        break
            if not preempted:
                filtered = [t for t in filtered if t not in to_remove]
                filtered.append(t1)
        return filtered

    def microstep(self, transitions: list[RefTransition], initial: list[RefState] | None = None) -> None:
        self.microsteps += 1
        if self.microsteps > self.max_microsteps:
            raise RefError("StepLimitExceeded")
        self.exit_states(transitions)
        for t in transitions:  # executeTransitionContent
            self.act(t.actions)
        self.enter_states(transitions, initial or [])

    def exit_states(self, transitions: list[RefTransition]) -> None:
        leaving = sorted(self.compute_exit_set(transitions), key=lambda s: s.order, reverse=True)
        for s in leaving:
            for h in s.children:
                if h.kind != HISTORY:
                    continue
                if h.body["history"].get("deep"):
                    remembered = [a for a in self.config if is_atomic(a) and is_descendant(a, s)]
                else:
                    remembered = [c for c in self.config if c.parent is s]
                self.history[h.path] = sorted(remembered, key=lambda x: x.order)
        for s in leaving:
            self.act(s.body.get("on_exit", []))
            self.moves.append(("exit", s.path))
            self.config.discard(s)

    def compute_exit_set(self, transitions: list[RefTransition]) -> set[RefState]:
        out: set[RefState] = set()
        for t in transitions:
            if t.target is not None:
                domain = self.get_transition_domain(t)
                out.update(s for s in self.config if domain is not None and is_descendant(s, domain))
        return out

    def get_effective_target_states(self, t: RefTransition) -> list[RefState]:
        if t.target is None:
            return []
        return self.effective(t.target)

    def effective(self, s: RefState) -> list[RefState]:
        if s.kind != HISTORY:
            return [s]
        remembered = self.history.get(s.path)
        if remembered:
            return list(remembered)
        return self.effective(self.chart.history_default(s))

    def get_transition_domain(self, t: RefTransition) -> RefState | None:
        # A history target counts as itself (not as what it remembers): see docs/statecharts.md.
        if t.target is None:
            return None
        targets = [t.target]
        if t.internal and t.source.kind == COMPOUND and all(is_descendant(s, t.source) for s in targets):
            return t.source
        return self.find_lcca([t.source, *targets])

    def find_lcca(self, states: list[RefState]) -> RefState:
        for anc in proper_ancestors(states[0]):
            if anc.kind in (COMPOUND, ROOT) and all(is_descendant(s, anc) for s in states[1:]):
                return anc
        raise AssertionError("the root contains every state")

    def enter_states(self, transitions: list[RefTransition], to_enter: list[RefState]) -> None:
        self.compute_entry_set(transitions, to_enter)
        for s in sorted(to_enter, key=lambda x: x.order):
            self.config.add(s)
            self.moves.append(("enter", s.path))
            self.act(s.body.get("on_enter", []))
            if s.kind != FINAL:
                continue
            parent = s.parent
            assert parent is not None
            if parent.kind == ROOT:
                self.running = False
                continue
            self.queue.append((f"done.state.{parent.path}", {}))
            grandparent = parent.parent
            if (
                grandparent is not None
                and grandparent.kind == PARALLEL
                and all(self.is_in_final_state(c) for c in child_states(grandparent))
            ):
                self.queue.append((f"done.state.{grandparent.path}", {}))

    def is_in_final_state(self, s: RefState) -> bool:
        if s.kind == COMPOUND:
            return any(c.kind == FINAL and c in self.config for c in child_states(s))
        if s.kind == PARALLEL:
            return all(self.is_in_final_state(c) for c in child_states(s))
        return False

    def compute_entry_set(self, transitions: list[RefTransition], to_enter: list[RefState]) -> None:
        for t in transitions:
            if t.target is None:
                continue
            self.add_descendant_states_to_enter(t.target, to_enter)
            domain = self.get_transition_domain(t)
            for s in self.get_effective_target_states(t):
                self.add_ancestor_states_to_enter(s, domain, to_enter)

    def add_descendant_states_to_enter(self, s: RefState, to_enter: list[RefState]) -> None:
        if s.kind == HISTORY:
            assert s.parent is not None
            targets = self.history.get(s.path) or [self.chart.history_default(s)]
            for t in targets:
                self.add_descendant_states_to_enter(t, to_enter)
            for t in targets:
                self.add_ancestor_states_to_enter(t, s.parent, to_enter)
            return
        if s not in to_enter:
            to_enter.append(s)
        if s.kind == COMPOUND:
            first = self.chart.initial_child(s)
            self.add_descendant_states_to_enter(first, to_enter)
            self.add_ancestor_states_to_enter(first, s, to_enter)
        elif s.kind == PARALLEL:
            self.enter_missing_regions(s, to_enter)

    def add_ancestor_states_to_enter(
        self, s: RefState, ancestor: RefState | None, to_enter: list[RefState]
    ) -> None:
        for anc in proper_ancestors(s, ancestor):
            if anc.kind == ROOT:
                continue
            if anc not in to_enter:
                to_enter.append(anc)
            if anc.kind == PARALLEL:
                self.enter_missing_regions(anc, to_enter)

    def enter_missing_regions(self, parallel: RefState, to_enter: list[RefState]) -> None:
        for region in child_states(parallel):
            if not any(is_descendant(x, region) for x in to_enter):
                self.add_descendant_states_to_enter(region, to_enter)


def reference_start(chart: RefChart, ctx: Mapping[str, Any], max_microsteps: int) -> RefResult:
    return Interpreter(chart, (), {}, ctx, max_microsteps).start()


def reference_send(
    chart: RefChart,
    before: RefResult,
    event: str,
    payload: Any,
    max_microsteps: int,
) -> RefResult:
    """The result of one external event on `before` (left untouched); raises `RefError`."""
    run = Interpreter(chart, before.configuration, before.history, before.context, max_microsteps)
    return run.send(event, payload)
