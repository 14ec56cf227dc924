"""Definition-time checks of a statechart (nested, parallel, history, eventless states), all at once.

`statemachines.checks.find_problems` hands a spec here when it uses any statechart feature; flat
machines keep their own checks. Every problem is a sentence naming the state by its full path.
Loops of eventless transitions cannot be found reliably here (guards decide them at run time):
the microstep cap turns them into `StepLimitExceeded`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection

from statemachines.chart.events import descriptors, platform_descriptor
from statemachines.chart.tree import COMPOUND, FINAL, HISTORY, PARALLEL, Node, Tree
from statemachines.checks import (
    compensation_problems,
    duration_problems,
    event_problem,
    outgoing,
    shadow_problem,
)
from statemachines.names import did_you_mean, name_problem
from statemachines.spec import MachineSpec, TransitionSpec


def chart_problems(spec: MachineSpec, known_callables: Collection[str]) -> list[str]:
    """Every problem of a statechart definition (empty when it is valid)."""
    problems = [p for p in [name_problem("the machine", spec.name)] if p]
    if not spec.states:
        return [*problems, "no states declared"]
    tree = Tree(spec)
    problems.extend(tree.problems)
    if tree.has_content and importlib.util.find_spec("simpleeval") is None:
        problems.append("executable content needs the simpleeval package: pip install 'statemachines[scxml]'")
    # SCXML documents (a declared binding) may keep unreachable states and dead transitions:
    # the standard takes the first enabled transition in document order and never the others.
    document = spec.binding is not None
    for node in tree.order:
        problems.extend(_node_problems(node, tree.has_content, document))
    if not document:
        problems.extend(_unreachable(tree))
    for missing in sorted(spec.callable_names() - set(known_callables)):
        suggestion = did_you_mean(missing, known_callables)
        problems.append(f"callable {missing!r} is not in the registry{suggestion}")
    used = {ev for _path, st in spec.walk() for ev in st.on}
    for event in sorted(set(spec.events) - used):
        problems.append(
            f"payload schema declared for event {event!r}, which no state handles{did_you_mean(event, used)}"
        )
    return problems


def _node_problems(node: Node, content: bool, document: bool) -> list[str]:
    st = node.spec
    where = f"state {node.path!r}"
    problems: list[str] = []
    if not node.name.strip():
        problems.append(
            f"a state in {node.parent.path if node.parent else 'the machine'!r} has an empty name"
        )
    if "." in node.name:
        problems.append(f"{where}: '.' is reserved as the path separator and cannot be part of a name")
    if node.name.strip():  # the full path is what the database stores and indexes
        problems.extend(p for p in [name_problem("a state", node.path)] if p)
    problems.extend(_event_problems(where, node, content))
    busy = bool(st.on or st.after or st.effects or st.always)
    if node.kind == HISTORY:
        problems.extend(_history_problems(node))
    elif node.kind == FINAL:
        if st.states:
            problems.append(f"final {where} has child states")
        if busy:
            problems.append(f"final {where} has outgoing transitions, timers or effects")
        if node.parent is not None and node.parent.kind == PARALLEL:
            problems.append(f"final {where} is a region of a parallel state; put it inside a region")
    elif node.kind == PARALLEL:
        if not node.state_children:
            problems.append(f"parallel {where} has no regions")
        if st.initial is not None:
            problems.append(f"parallel {where} declares an initial state; every region is entered")
    elif node.kind == COMPOUND and st.initial is None:
        problems.append(f"compound {where} has no initial state")
    elif not st.states and st.initial is not None:
        problems.append(f"{where} declares an initial state but has no child states")
    if st.type is not None and node.kind != PARALLEL:
        problems.append(f"{where} is declared {st.type} but is a {node.kind} state")
    for event, group in [*outgoing(st), ("(eventless)", st.always)]:
        problems.extend(_group_problems(where, event, group, document))
    for ts in st.always:
        if ts.target is None and ts.guard is None and ts.cond is None:
            problems.append(f"{where}: an unguarded targetless eventless transition would loop forever")
    names = [e.name for e in st.effects]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{where} declares effect {dup!r} twice")
    problems.extend(duration_problems(where, node.spec))
    problems.extend(compensation_problems(where, st))
    return problems


def _event_problems(where: str, node: Node, content: bool) -> list[str]:
    """The flat rules for the events of `on` (names, reserved `after.`), with the statechart's
    scope: `done.x`/`error.x` for an effect of this state or of a state inside it, and
    `done.state.<path>` for this state or a compound or parallel state inside it. In a chart
    with executable content, `<raise>` and `<send>` may produce any other `done.x`/`error.x`,
    and `done.state.<path>` may be taken after its state was left (it waits on the internal
    queue behind the event that left it): any compound or parallel state of the chart counts."""
    below = [node, *sorted(node.descendants, key=lambda n: n.order)]
    effects = [e.name for n in below for e in n.spec.effects]
    if node.spec.compensate:
        effects.append("compensation")
    if content:  # the done event stays queued when its state is left: anyone may take it
        root = node
        while root.parent is not None:
            root = root.parent
        below = sorted(root.descendants, key=lambda n: n.order)
    done_states = [n.path for n in below if n.kind in (COMPOUND, PARALLEL)]
    problems = [
        event_problem(where, descriptor, effects, done_states, nested=True)
        for key in node.spec.on
        for descriptor in (descriptors(key) or (key,))
        if not platform_descriptor(descriptor) and not (content and _raisable(descriptor))
    ]
    problems += [name_problem(f"{where}: an effect", eff.name) for eff in node.spec.effects]
    return [p for p in problems if p]


def _raisable(descriptor: str) -> bool:
    """A `done.x`/`error.x` descriptor content can raise (not `done.state.<path>`, which only a
    state completing raises: still checked against the states)."""
    return descriptor.startswith(("done.", "error.")) and not descriptor.startswith("done.state.")


def _history_problems(node: Node) -> list[str]:
    st = node.spec
    where = f"history {node.path!r}"
    problems: list[str] = []
    parent = node.parent
    if parent is None or parent.parent is None or parent.kind not in (COMPOUND, PARALLEL):
        problems.append(f"{where} must be a child of a compound or parallel state")
    if st.states:
        problems.append(f"{where} has child states")
    if st.on or st.after or st.effects or st.always or st.on_enter or st.on_exit or st.final:
        problems.append(f"{where} is a pseudo-state: no transitions, timers, effects, callbacks or final")
    if st.type is not None or st.initial is not None:
        problems.append(f"{where} cannot also be a parallel or compound state")
    assert st.history is not None
    if st.history.default is None:
        problems.append(f"{where} has no default (the state entered before anything is remembered)")
    elif node.default is not None and parent is not None:
        default = node.default
        if not default.is_descendant_of(parent) or default.kind == HISTORY:
            problems.append(
                f"{where}: default {default.path!r} is not a state inside its parent {parent.path!r}"
            )
    return problems


def _group_problems(where: str, event: str, group: list[TransitionSpec], document: bool) -> list[str]:
    problems: list[str] = []
    if not event.strip():
        problems.append(f"{where} has an event with an empty name")
    if not group and event != "(eventless)":
        problems.append(f"{where}: event {event!r} has no transition")
    shadowed = None if document else shadow_problem(where, event, group)
    if shadowed is not None:
        problems.append(shadowed)
    return problems


def _unreachable(tree: Tree) -> list[str]:
    """States no sequence of transitions can enter, starting from the machine's initial state."""
    seen: set[Node] = set()
    todo: list[Node] = [tree.root]

    def reach(node: Node | None) -> None:
        while node is not None and node.parent is not None and node not in seen:
            seen.add(node)
            todo.append(node)
            node = node.parent  # entering a state enters its ancestors

    while todo:
        node = todo.pop()
        for initial in node.initials:
            reach(initial)
        reach(node.default)
        if node.kind == PARALLEL or (node.kind == COMPOUND and node.initial is None):
            # (a missing or unknown initial is reported already: do not bury it under its children)
            for child in node.state_children:
                reach(child)
        for t in node.transitions:
            for target in t.targets:
                reach(target)
    return [
        f"state {node.path!r} is unreachable from the initial state"
        for node in tree.order
        if node not in seen and node.kind != HISTORY  # a pseudo-state nothing targets is harmless
    ]
