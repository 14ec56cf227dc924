"""The SCXML interpretation algorithm (W3C SCXML 1.0, Appendix D), pure: no storage, no clock.

Each function is named after the pseudo-code it implements (`selectTransitions` ->
`select_transitions`, ...) so the code can be read side by side with the standard. The differences
are deliberate and small:

- Event names match declared keys by SCXML's event descriptors (`statemachines.chart.events`:
  `*`, token prefixes, several descriptors per key).
- There is no external queue in memory: one call handles one external event, then the internal
  events and eventless transitions that follow, until the configuration is stable (one
  macrostep). The engine makes that call one database transaction; external events a `<send>`
  produced are returned in `run.sends` and stored, to be delivered in later transactions.
- Entering a top-level final state stops processing (`running = false`) but exits nothing: the
  final configuration is kept, as a flat machine keeps its final state.
- A cap on microsteps per call turns an eventless or done-event loop into `StepLimitExceeded`; so
  does a cap on internal events (a failing eventless `cond` raises `error.execution` each time).
- History memory is keyed by the history pseudo-state's path (a compound may have a shallow and
  a deep history), and holds state paths so it can be stored as JSON.

Guards and actions are the user's callables, `fn(context, event)`, run on a copy of the context
(`ContextCopy`): the caller keeps the copy only if the whole call succeeds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from statemachines.chart import content
from statemachines.chart.tree import COMPOUND, FINAL, HISTORY, PARALLEL, ChartTransition, Node, Tree
from statemachines.errors import ActionFailed, StepLimitExceeded
from statemachines.records import Event


class ContextCopy:
    """The context one call works on, parsed from JSON only when a callable first needs it."""

    __slots__ = ("json", "parse", "parsed")

    def __init__(self, ctx_json: str, parse: Callable[[str], Any]) -> None:
        self.json = ctx_json
        self.parse = parse
        self.parsed: Any = None

    @property
    def value(self) -> Any:
        if self.parsed is None:
            self.parsed = self.parse(self.json)
        return self.parsed


class Interpretation:
    """The working state of one call (SCXML's global variables): mutated by the functions below."""

    def __init__(
        self,
        tree: Tree,
        callables: Mapping[str, Callable[..., Any]],
        configuration: set[Node],
        history: Mapping[str, tuple[str, ...]],
        ctx: ContextCopy,
        event: Event,
        max_microsteps: int,
    ) -> None:
        self.tree = tree
        self.callables = callables
        self.configuration = configuration
        self.history_value: dict[str, tuple[str, ...]] = dict(history)
        self.internal_queue: deque[Event] = deque()
        self.ctx = ctx
        self.external = event  # the event the caller sent (named in errors)
        self.event = event  # the event being processed: external, then internal ones
        self.running = True
        self.max_microsteps = max_microsteps
        self.microsteps = 0
        self.exited: list[str] = []
        self.entered: list[str] = []
        self.moves: list[tuple[str, str]] = []  # ("exit" | "enter", path), in the order they ran
        self.taken: list[tuple[ChartTransition, str | None]] = []  # with the event that took it
        #: Every callable run, in order, with the event it was told: None for the external one,
        #: else (how many internal events were taken so far, name). What `statemachines.chart.plan`
        #: replays.
        self.log: list[tuple[Callable[..., Any], str, tuple[int, str] | None]] = []
        self.internal_taken = 0
        self.guards = 0  # guards evaluated: a step whose later selections ran none can be replayed
        # Executable content (`statemachines.chart.content`): the evaluator (built on first use),
        # the external sends and cancels to store, in order, and whether any content ran (such a
        # step depends on the context, so it is never remembered as a plan).
        self.expressions: Any = None
        self.sends: list[tuple[str, str, str | None, str | None, float]] = []
        self.dynamic = False
        self.content_items = 0
        self.starting = False  # entering the initial configuration: `_event` is not bound yet
        #: Content of the default entries of this microstep (SCXML's statesForDefaultEntry and
        #: defaultHistoryContent): state entered -> blocks to run after its entry content.
        self.default_content: dict[Node, list[Any]] = {}

    def call(self, name: str, where: str) -> Any:
        """Run one user callable; anything it raises becomes ActionFailed naming where."""
        fn = self.callables[name]
        event = self.event
        told = None if event is self.external else (self.internal_taken, event.name)
        self.log.append((fn, where, told))
        try:
            return fn(self.ctx.value, event)
        except Exception as exc:
            raise ActionFailed(self.external.instance_id, self.external.name, where, exc) from exc


#: Internal events one call may process: those enabling nothing take no microstep (a failing
#: eventless `cond` raises `error.execution` at each try, 5.9.1: a loop the microstep cap misses).
#: 10,000 takes ~70 ms to reach, far above any real document's need.
MAX_INTERNAL_EVENTS = 10_000


def _document_order(states: Any) -> list[Node]:
    return sorted(states, key=lambda s: s.order)


def macrostep(run: Interpretation) -> None:
    """mainEventLoop's inner loop: eventless transitions, then internal events, until stable."""
    while run.running:
        enabled = select_eventless_transitions(run)
        if not enabled:
            if not run.internal_queue:
                return
            run.event = run.internal_queue.popleft()
            run.internal_taken += 1
            if run.internal_taken > MAX_INTERNAL_EVENTS:
                last = [f"internal event {run.event.name!r}"]
                raise StepLimitExceeded(run.external.instance_id, run.external.name, run.max_microsteps, last)
            enabled = select_transitions(run, run.event.name)
        if enabled:
            microstep(run, enabled)


def select_transitions(run: Interpretation, event: str | None) -> list[ChartTransition]:
    """selectTransitions / selectEventlessTransitions: innermost first, one per atomic state."""
    enabled: list[ChartTransition] = []
    tree = run.tree
    keys: tuple[Any, ...] = tree.events.keys(event) if event is not None else (None,)
    key = keys[0] if len(keys) == 1 else False  # one matching descriptor: a plain dict probe
    atomic = _document_order(s for s in run.configuration if s.is_atomic)
    for state in atomic:
        for s in state.lineage:  # the state, then its ancestors, innermost first
            found = s.by_event.get(key, ()) if key is not False else tree.candidates(s, keys)
            t = next((t for t in found if condition_match(run, t)), None)
            if t is not None:
                if t not in enabled:
                    enabled.append(t)
                break
    return remove_conflicting_transitions(run, enabled)


def select_transitions_from(run: Interpretation, source: Node, event: str) -> list[ChartTransition]:
    """The first enabled transition that `source` itself declares for `event` (none when `source`
    is not active): how a timer's event reaches the state that armed it."""
    if source not in run.configuration:
        return []
    t = next((t for t in source.by_event.get(event, ()) if condition_match(run, t)), None)
    return [t] if t is not None else []


def select_eventless_transitions(run: Interpretation) -> list[ChartTransition]:
    if not run.tree.has_eventless:
        return []
    return select_transitions(run, None)


def condition_match(run: Interpretation, t: ChartTransition) -> bool:
    """The guard (a callable) and the cond (an expression) must both hold."""
    if t.guard is None and t.cond is None:
        return True
    run.guards += 1
    if t.guard is not None and not run.call(t.guard, f"guard {t.guard!r} of {_arrow(t)}"):
        return False
    return t.cond is None or content.condition(run, t.cond)


def _arrow(t: ChartTransition) -> str:
    """How errors name a transition: `'review.first' --APPROVE-->`."""
    return f"{t.source.path!r} --{t.event if t.event is not None else '(eventless)'}-->"


def remove_conflicting_transitions(
    run: Interpretation, enabled: list[ChartTransition]
) -> list[ChartTransition]:
    """Two transitions conflict when their exit sets intersect: a descendant's preempts an ancestor's,
    otherwise the first in document order wins."""
    if len(enabled) < 2:
        return enabled
    filtered: list[ChartTransition] = []
    exits = {t: compute_exit_set(run, [t]) for t in enabled}
    for t1 in enabled:
        preempted = False
        to_remove: list[ChartTransition] = []
        for t2 in filtered:
            if exits[t1] & exits[t2]:
                if t1.source in t2.source.descendants:
                    to_remove.append(t2)
                else:
                    preempted = True
                    break
        if not preempted:
            filtered = [t for t in filtered if t not in to_remove]
            filtered.append(t1)
    return filtered


def microstep(run: Interpretation, enabled: list[ChartTransition]) -> None:
    run.microsteps += 1
    if run.microsteps > run.max_microsteps:
        last = [repr(t) for t in enabled]
        raise StepLimitExceeded(run.external.instance_id, run.external.name, run.max_microsteps, last)
    exit_states(run, enabled)
    execute_transition_content(run, enabled)
    enter_states(run, enabled)


def exit_states(run: Interpretation, enabled: list[ChartTransition]) -> None:
    """Record history, then run on_exit innermost first (reverse document order)."""
    states_to_exit = sorted(compute_exit_set(run, enabled), key=lambda s: s.order, reverse=True)
    for s in states_to_exit:
        for h in s.history_children:
            if h.spec.history is not None and h.spec.history.deep:
                kept = [s0 for s0 in run.configuration & s.descendants if s0.is_atomic]
            else:
                kept = [s0 for s0 in run.configuration if s0.parent is s]
            run.history_value[h.path] = tuple(k.path for k in _document_order(kept))
    has_content = run.tree.has_content  # one test per call for charts without content
    for s in states_to_exit:
        for name in s.spec.on_exit:
            run.call(name, f"on_exit {name!r} of {s.path!r}")
        if has_content and s.exit_content:
            content.run_block(run, s.exit_content)
        run.configuration.discard(s)
        run.exited.append(s.path)
        run.moves.append(("exit", s.path))


def execute_transition_content(run: Interpretation, enabled: list[ChartTransition]) -> None:
    for t in enabled:
        run.taken.append((t, run.event.name if t.event is not None else None))
        for name in t.actions:
            run.call(name, f"action {name!r} of {_arrow(t)}")
        if t.content:
            content.run_block(run, t.content)


def enter_states(run: Interpretation, enabled: list[ChartTransition]) -> None:
    """Run on_enter outermost first (document order); raise done.state events for final states."""
    states_to_enter: dict[Node, None] = {}
    has_content = run.tree.has_content
    if has_content:
        run.default_content.clear()
    compute_entry_set(run, enabled, states_to_enter)
    for s in _document_order(states_to_enter):
        run.configuration.add(s)
        run.entered.append(s.path)
        run.moves.append(("enter", s.path))
        if has_content and run.tree.late and s.spec.data:
            content.bind_data(run, s.spec.data)
        for name in s.spec.on_enter:
            run.call(name, f"on_enter {name!r} of {s.path!r}")
        if has_content and s.enter_content:
            content.run_block(run, s.enter_content)
        if has_content and s in run.default_content:
            for block in run.default_content[s]:
                content.run_block(run, block)
        if s.kind == FINAL:
            parent = s.parent
            assert parent is not None
            if parent.parent is None:  # a top-level final state: the machine is done
                run.running = False
                continue
            done = internal_event(run.external, f"done.state.{parent.path}")
            if has_content and s.spec.donedata is not None:
                done = replace(done, payload=content.done_data(run, s))
            run.internal_queue.append(done)
            grandparent = parent.parent
            if grandparent.kind == PARALLEL and all(
                is_in_final_state(run, c) for c in grandparent.state_children
            ):
                joined = f"done.state.{grandparent.path}"
                run.internal_queue.append(internal_event(run.external, joined))


def internal_event(external: Event, name: str) -> Event:
    """An event raised during the call (`done.state.<path>`): the external one's instance, actor
    and time, no payload."""
    return Event(name, {}, external.instance_id, external.actor, None, external.at)


def compute_exit_set(run: Interpretation, transitions: list[ChartTransition]) -> set[Node]:
    states_to_exit: set[Node] = set()
    for t in transitions:
        if t.target is not None:
            domain = get_transition_domain(run, t)
            if domain is not None:
                states_to_exit |= run.configuration & domain.descendants
    return states_to_exit


def compute_entry_set(
    run: Interpretation, transitions: list[ChartTransition], states_to_enter: dict[Node, None]
) -> None:
    for t in transitions:
        if t.target is None:
            continue
        for target in t.targets:
            add_descendant_states_to_enter(run, target, states_to_enter)
        ancestor = get_transition_domain(run, t)
        for s in get_effective_target_states(run, t):
            add_ancestor_states_to_enter(run, s, ancestor, states_to_enter)


def _remembered(run: Interpretation, history: Node) -> list[Node]:
    """What a history pseudo-state re-enters: its memory, else its default."""
    paths = run.history_value.get(history.path)
    if paths:
        return [run.tree.nodes[p] for p in paths]
    assert history.default is not None  # the definition checks guarantee it
    return [history.default]


def add_descendant_states_to_enter(
    run: Interpretation, state: Node, states_to_enter: dict[Node, None]
) -> None:
    if state.kind == HISTORY:
        assert state.parent is not None
        targets = _remembered(run, state)
        history = state.spec.history
        if run.tree.has_content and history and history.content and not run.history_value.get(state.path):
            run.default_content.setdefault(state.parent, []).append(history.content)  # the default
        for s in targets:
            add_descendant_states_to_enter(run, s, states_to_enter)
        for s in targets:
            add_ancestor_states_to_enter(run, s, state.parent, states_to_enter)
        return
    states_to_enter[state] = None
    if state.kind == COMPOUND:
        assert state.initial is not None
        if run.tree.has_content and state.spec.initial_content:
            run.default_content.setdefault(state, []).append(state.spec.initial_content)
        for initial in state.initials:
            add_descendant_states_to_enter(run, initial, states_to_enter)
        for initial in state.initials:
            add_ancestor_states_to_enter(run, initial, state, states_to_enter)
    elif state.kind == PARALLEL:
        _enter_regions(run, state, states_to_enter)


def _enter_regions(run: Interpretation, state: Node, states_to_enter: dict[Node, None]) -> None:
    for child in state.state_children:
        if child.descendants.isdisjoint(states_to_enter):
            add_descendant_states_to_enter(run, child, states_to_enter)


def add_ancestor_states_to_enter(
    run: Interpretation, state: Node, ancestor: Node | None, states_to_enter: dict[Node, None]
) -> None:
    for anc in state.ancestors:  # getProperAncestors(state, ancestor), the root never included
        if anc is ancestor:
            break
        states_to_enter[anc] = None
        if anc.kind == PARALLEL:
            _enter_regions(run, anc, states_to_enter)


def is_in_final_state(run: Interpretation, s: Node) -> bool:
    if s.kind == COMPOUND:
        return any(c.kind == FINAL and c in run.configuration for c in s.children)
    if s.kind == PARALLEL:
        return all(is_in_final_state(run, c) for c in s.state_children)
    return False


def get_transition_domain(run: Interpretation, t: ChartTransition) -> Node | None:
    """getTransitionDomain, with one deliberate difference from Appendix D: a history target
    counts as itself, not as the states it remembers. Appendix D's choice makes a transition from
    inside `a` to `a`'s history enter the remembered `a.m` again while it is still active (its
    entry actions run twice, it is never exited); with the pseudo-state as the target the domain
    is `a`, so `a.m` is exited and entered again, as UML and most SCXML engines do. The domain is
    then fixed by the definition, and cached."""
    if t.domain is not None:
        return t.domain
    if t.target is None:
        return None
    tstates = list(t.targets)
    if t.internal and t.source.kind == COMPOUND and all(s in t.source.descendants for s in tstates):
        domain = t.source
    else:
        domain = find_lca([t.source, *tstates], run.tree.root)
    t.domain = domain
    return domain


def get_effective_target_states(run: Interpretation, t: ChartTransition) -> list[Node]:
    if len(t.targets) == 1:  # the common case, without building a list
        target = t.targets[0]
        return _remembered(run, target) if target.kind == HISTORY else [target]
    out: list[Node] = []
    for target in t.targets:
        for s in _remembered(run, target) if target.kind == HISTORY else [target]:
            if s not in out:
                out.append(s)
    return out


def find_lca(states: list[Node], root: Node) -> Node:
    """SCXML's findLCCA: the nearest compound proper ancestor of the first state containing the
    others (parallel states are skipped; the root, SCXML's `<scxml>`, always qualifies)."""
    head, tail = states[0], states[1:]
    for anc in (*head.ancestors, root):
        if anc.kind == COMPOUND and all(s in anc.descendants for s in tail):
            return anc
    return root
