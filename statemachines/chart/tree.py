"""A statechart's state tree: nodes with dotted paths, kinds, document order and resolved targets.

Built once per definition from a nested `MachineSpec`. The root node stands for the machine itself
(SCXML's `<scxml>` element): path `""`, never part of a configuration. Every name a user wrote
(`initial`, transition targets, history defaults) is resolved here to a `Node`, so the algorithm
never looks a name up at run time; what cannot be resolved is collected in `Tree.problems`
(reported by `statemachines.chart.checks` with every other problem of the definition).

Target resolution (docs/statecharts.md): a full dotted path (`checks.identity.ok`); or a short
name, looked up among the children of the source's parent, then of its grandparent, ... up to the
top level (nearest first); then a name unique in the whole machine. Anything else is unknown or
ambiguous, and the problem names the candidates.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from statemachines.chart.events import Lookup, descriptors, merged
from statemachines.checks import outgoing
from statemachines.spec import MachineSpec, StateSpec

ATOMIC, COMPOUND, PARALLEL, FINAL, HISTORY = "atomic", "compound", "parallel", "final", "history"


@dataclass(eq=False, slots=True)
class Node:
    """One state (or history pseudo-state) of the tree; identity is the object, order its index."""

    path: str
    name: str
    parent: Node | None
    kind: str
    spec: StateSpec
    order: int
    children: list[Node] = field(default_factory=list)
    #: Proper ancestors, innermost first, the root excluded (it is never active).
    ancestors: tuple[Node, ...] = ()
    initial: Node | None = None  # compound states (and the root): the child entered first
    initials: tuple[Node, ...] = ()  # every initial state (several: SCXML's `initial="a b"`)
    default: Node | None = None  # history pseudo-states: entered when nothing is remembered
    transitions: list[ChartTransition] = field(default_factory=list)
    by_event: dict[str | None, list[ChartTransition]] = field(default_factory=dict)
    #: Every proper descendant (for the root: every state): the algorithm's exit sets and
    #: descendant tests are set operations on it.
    descendants: frozenset[Node] = frozenset()
    is_atomic: bool = False  # no child states (SCXML's isAtomicState): atomic and final states
    lineage: tuple[Node, ...] = ()  # itself, then its proper ancestors: where an event is offered
    #: Executable content (`statemachines.chart.content`) run on entry and exit; empty for most.
    enter_content: list[dict] = field(default_factory=list)
    exit_content: list[dict] = field(default_factory=list)

    @property
    def state_children(self) -> list[Node]:
        """Children that are states (SCXML's getChildStates: history pseudo-states excluded)."""
        return [c for c in self.children if c.kind != HISTORY]

    @property
    def history_children(self) -> list[Node]:
        return [c for c in self.children if c.kind == HISTORY]

    def is_descendant_of(self, other: Node) -> bool:
        """Proper descendant (SCXML's isDescendant); every state descends from the root."""
        if other.parent is None:
            return self is not other
        return self.path.startswith(other.path + ".")

    def __repr__(self) -> str:
        return f"<Node {self.path or '(root)'} {self.kind}>"


@dataclass(eq=False, slots=True)
class ChartTransition:
    """One declared arrow with its source and resolved target (None: targetless)."""

    source: Node
    event: str | None  # None: eventless (`always`)
    target: Node | None  # the first target (None: targetless)
    guard: str | None
    actions: tuple[str, ...]
    internal: bool  # SCXML type="internal"
    #: The transition domain when it does not depend on history memory (set on first use).
    domain: Node | None = None
    #: Document order among all transitions of the tree (descriptor matches are merged by it).
    index: int = 0
    cond: str | None = None  # an expression that must hold as well as `guard`
    content: tuple[dict, ...] = ()  # executable content run after `actions`
    targets: tuple[Node, ...] = ()  # every target, in the order declared (SCXML `target="a b"`)

    def __repr__(self) -> str:
        target = self.target.path if self.target is not None else None
        return f"<ChartTransition {self.source.path} --{self.event}--> {target}>"


def _index_keys(event: str | None) -> tuple[str | None, ...]:
    """Where a transition of `on` key `event` is indexed: under each of its descriptors, and under
    the key itself when that differs (an event named exactly `a b`, as charts matched before
    descriptors existed; SCXML event names have no spaces, so nothing else can collide)."""
    if event is None:
        return (None,)
    keys = descriptors(event)
    return keys if keys == (event,) or not event.strip() else (*keys, event)


def _kind(st: StateSpec) -> str:
    if st.history is not None:
        return HISTORY
    if st.final:
        return FINAL
    if st.type == "parallel":
        return PARALLEL
    return COMPOUND if st.states else ATOMIC


class Tree:
    """The resolved tree of a machine; `problems` lists what could not be resolved."""

    def __init__(self, spec: MachineSpec) -> None:
        top = StateSpec(initial=spec.initial, states=spec.states)
        self.name = spec.name
        #: The machine's datamodel, bound when an instance starts (`statemachines.chart.content`);
        #: `late`: a state's own data is bound when it is first entered, not at the start.
        self.data = spec.data
        self.late = spec.binding == "late"
        self.root = Node("", "", None, COMPOUND, top, 0)
        self.nodes: dict[str, Node] = {}
        self.order: list[Node] = []  # document order, the root excluded
        self.problems: list[str] = []
        self._transitions = 0
        self._add_children(self.root)
        self._by_name: dict[str, list[Node]] = {}
        for node in self.order:
            self._by_name.setdefault(node.name, []).append(node)
        for node in [self.root, *self.order]:
            self._resolve_node(node)
        for node in reversed(self.order):
            node.is_atomic = node.kind in (ATOMIC, FINAL)
            node.lineage = (node, *node.ancestors)
            node.descendants = frozenset(c for child in node.children for c in (child, *child.descendants))
        self.root.descendants = frozenset(self.order)
        #: Which declared event descriptors an event name matches (docs/scxml.md).
        self.events = Lookup(k for node in [self.root, *self.order] for k in node.by_event if k is not None)
        #: Whether any state or transition declares executable content, conditions or data: if
        #: not, the algorithm never looks for them.
        self.has_content = any(n.spec.uses_content for n in self.order) or bool(spec.data)
        #: Whether any state declares eventless transitions (if not, none need be looked for).
        self.has_eventless = any(None in node.by_event for node in self.order)

    def _add_children(self, parent: Node) -> None:
        for name, st in parent.spec.states.items():
            path = f"{parent.path}.{name}" if parent.path else name
            node = Node(path, name, parent, _kind(st), st, len(self.order) + 1)
            node.ancestors = (parent, *parent.ancestors) if parent.parent is not None else ()
            parent.children.append(node)
            self.nodes[path] = node
            self.order.append(node)
            self._add_children(node)

    def _resolve_node(self, node: Node) -> None:
        st = node.spec
        where = f"state {node.path!r}" if node.path else "the machine"
        for name in [st.initial] if isinstance(st.initial, str) else st.initial or []:
            child = next((c for c in node.children if c.name == name), None)
            if child is None and "." in name:  # a dotted path below: SCXML's deep initial
                child = self.nodes.get(f"{node.path}.{name}" if node.path else name)
            if child is not None:  # a history child too: its memory, or its default (SCXML)
                node.initials = (*node.initials, child)
                node.initial = node.initials[0]
            elif node.children:
                names = [c.name for c in node.state_children]
                self.problems.append(
                    f"{where}: initial state {name!r} is not one of its children (children: {names})"
                )
        if st.history is not None and st.history.default is not None:
            target = self.resolve(node, st.history.default)
            if isinstance(target, str):
                self.problems.append(f"history {node.path!r}: default {target}")
            else:
                node.default = target
        groups: list[tuple[str | None, list]] = [*outgoing(st), (None, st.always)]
        for event, group in groups:
            for ts in group:
                targets: list[Node] = []
                for name in ts.targets:
                    resolved = self.resolve(node, name)
                    if isinstance(resolved, str):
                        label = f"event {event!r}" if event is not None else "an eventless transition"
                        self.problems.append(f"{where}: {label} targets {resolved}")
                    else:
                        targets.append(resolved)
                if len(targets) != len(ts.targets):
                    continue
                t = ChartTransition(
                    node, event, targets[0] if targets else None, ts.guard, tuple(ts.actions),
                    ts.type == "internal", index=self._transitions, cond=ts.cond,
                    content=tuple(ts.content), targets=tuple(targets),
                )  # fmt: skip
                self._transitions += 1
                node.transitions.append(t)
                for key in _index_keys(event):
                    node.by_event.setdefault(key, []).append(t)
        node.enter_content = st.enter_content
        node.exit_content = st.exit_content

    def resolve(self, source: Node, text: str) -> Node | str:
        """The node `text` names from `source`; or the problem, as text, when there is none."""
        if text in self.nodes:
            return self.nodes[text]
        if "." not in text:
            anc = source.parent
            while anc is not None:
                for child in anc.children:
                    if child.name == text:
                        return child
                anc = anc.parent
            matches = self._by_name.get(text, [])
            if len(matches) == 1:
                return matches[0]
            if matches:
                paths = [m.path for m in matches]
                return f"ambiguous state {text!r}: candidates {paths}; write the full path"
        close = difflib.get_close_matches(text, [*self.nodes, *self._by_name], n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in dict.fromkeys(close))}?" if close else ""
        return f"unknown state {text!r}{hint}"

    def candidates(self, node: Node, keys: tuple[str, ...]) -> list[ChartTransition]:
        """The transitions `node` declares under the descriptors `keys` (`events.keys(name)`),
        in document order."""
        if len(keys) == 1:
            return node.by_event.get(keys[0], [])
        if not keys:
            return []
        groups = [node.by_event[k] for k in keys if k in node.by_event]
        if len(groups) < 2:
            return groups[0] if groups else []
        return merged(groups)  # type: ignore[return-value]

    def node(self, path: str) -> Node | None:
        return self.nodes.get(path)
