"""What a diagram shows, independent of the output format: states and arrows of one spec.

DOT and Mermaid both render a `Chart`, so the two never disagree about what an edge means. Every
state gets a safe id (`s0`, `s1`, ... in declaration order): names are only ever labels, so no
name can break the syntax of either format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from diagrams.errors import NotDrawable
from statemachines.checks import timer_event
from statemachines.definition import Definition
from statemachines.errors import DefinitionError
from statemachines.spec import EffectSpec, MachineSpec, StateSpec

SHARED_MIN = 5  # sources of one shared transition drawn through a junction (see Chart.shared_edges)


@dataclass(frozen=True)
class Edge:
    """One transition of the definition; `target` None is internal (drawn inside the state)."""

    index: int
    source: str
    target: str | None
    event: str
    guard: str | None = None
    actions: tuple[str, ...] = ()
    timer: str | None = None  # the duration label of an `after` timer
    eventless: bool = False  # statecharts: an `always` transition (`event` is "")

    @property
    def title(self) -> str:
        """The trigger as a reader says it: `PAYMENT_RECEIVED`, `after 7d`, `[guard]` or `always`."""
        if self.eventless:
            return f"[{self.guard}]" if self.guard else "always"
        return f"after {self.timer}" if self.timer is not None else self.event

    @property
    def detail(self) -> str:
        """`[guard] / action, action`, or '' when the transition has neither."""
        parts = []
        if self.guard and not self.eventless:
            parts.append(f"[{self.guard}]")
        if self.actions:
            parts.append("/ " + ", ".join(self.actions))
        return " ".join(parts)

    @property
    def label(self) -> str:
        return f"{self.title} {self.detail}".strip()

    @property
    def is_error(self) -> bool:
        return self.event.startswith("error.")

    @property
    def is_done(self) -> bool:
        """A statechart's join: `done.state.X`, raised when X reaches a final state."""
        return self.event.startswith("done.state.")


@dataclass(frozen=True)
class Node:
    name: str
    id: str
    initial: bool = False
    final: bool = False
    known: bool = True  # False: seen in a run's history but not in this definition
    lines: tuple[str, ...] = ()  # entry/exit actions and effects; internal transitions are edges
    description: str | None = None
    # Statecharts (diagrams.chartmodel): `name` is the full dotted path, `label` the state's own name.
    kind: str = "atomic"  # atomic, final, compound, parallel or history
    parent: str | None = None  # the parent's full path; None at the top level
    label: str | None = None  # None: the name itself
    deep: bool = False  # a deep history pseudo-state
    default: str | None = None  # a history pseudo-state's default (full path)

    @property
    def shown(self) -> str:
        """The name drawn on the state: its own name, not its dotted path."""
        return self.label if self.label is not None else self.name

    @property
    def is_cluster(self) -> bool:
        """Compound and parallel states are drawn as containers of their children."""
        return self.kind in ("compound", "parallel")


@dataclass
class Chart:
    name: str
    initial: str
    nodes: dict[str, Node]
    edges: list[Edge] = field(default_factory=list)
    is_chart: bool = False  # nested, parallel or history states: drawn with clusters

    def children(self, parent: str | None) -> list[Node]:
        """The states directly inside `parent` (None: the top level), in declaration order."""
        return [n for n in self.nodes.values() if n.parent == parent and n.known]

    @property
    def external_edges(self) -> list[Edge]:
        return [e for e in self.edges if e.target is not None]

    def shared_edges(self, min_sources: int = SHARED_MIN) -> list[list[Edge]]:
        """Groups of external edges that differ only in their source ("cancel from anywhere").

        Graphviz lays out N labelled arrows into one state in time that explodes with N (100
        states with `RESET -> first` never finish), so the DOT view draws a group as one labelled
        arrow from a note naming the sources. Groups of fewer than `min_sources` stay
        plain arrows; order follows the first edge of each group.
        """
        groups: dict[tuple[Any, ...], list[Edge]] = {}
        for e in self.external_edges:
            if e.target != e.source:  # a self-loop stays on its own state
                groups.setdefault((e.event, e.target, e.guard, e.actions, e.timer), []).append(e)
        return [g for g in groups.values() if len({e.source for e in g}) >= min_sources]

    def internal_edges(self, state: str) -> list[Edge]:
        return [e for e in self.edges if e.target is None and e.source == state]

    def find_edge(self, source: str | None, event: str, target: str) -> Edge | None:
        """The definition's edge a history record took (internal when source == target and no loop)."""
        loop: Edge | None = None
        for e in self.edges:
            if e.source != source or e.event != event:
                continue
            if e.target == target:
                return e
            if e.target is None and target == source and loop is None:
                loop = e
        return loop

    def add_unknown(self, name: str) -> Node:
        """A state a run visited that this definition lacks (an older version, a renamed state)."""
        node = self.nodes.get(name)
        if node is None:
            node = Node(name, f"x{sum(not n.known for n in self.nodes.values())}", known=False)
            self.nodes[name] = node
        return node


def as_spec(definition_or_spec: Any) -> MachineSpec:
    """Accept what users hold: a `Definition`, a `MachineSpec`, or its plain dict (parsed YAML/JSON).

    A malformed dict is a `DefinitionError` listing every problem, like `Definition.from_dict`.
    """
    if isinstance(definition_or_spec, Definition):
        return definition_or_spec.spec
    if isinstance(definition_or_spec, MachineSpec):
        return definition_or_spec
    if isinstance(definition_or_spec, Mapping):
        name = definition_or_spec.get("name")
        try:
            return MachineSpec.model_validate(dict(definition_or_spec))
        except ValidationError as exc:
            problems = [f"{'.'.join(map(str, e['loc'])) or 'definition'}: {e['msg']}" for e in exc.errors()]
            raise DefinitionError(name if isinstance(name, str) else "?", problems) from None
    raise NotDrawable(
        "expected a Definition (from machine(...)), a MachineSpec or a dict, "
        f"got {type(definition_or_spec).__name__}"
    )


def chart_of(definition_or_spec: Any) -> Chart:
    spec = as_spec(definition_or_spec)
    if spec.is_chart:
        from diagrams.chartmodel import statechart_of

        return statechart_of(spec)
    _check_targets(spec)
    chart = Chart(spec.name, spec.initial, {})
    for i, (name, st) in enumerate(spec.states.items()):
        chart.nodes[name] = Node(
            name, f"s{i}", name == spec.initial, st.final, True, lines_of(st), st.description
        )
    for name, st in spec.states.items():
        for event, group in st.on.items():
            for t in group:
                chart.edges.append(Edge(len(chart.edges), name, t.target, event, t.guard, tuple(t.actions)))
        for label, group in st.after.items():
            for t in group:
                chart.edges.append(
                    Edge(
                        len(chart.edges), name, t.target, timer_event(label), t.guard, tuple(t.actions), label
                    )
                )
    return chart


def _check_targets(spec: MachineSpec) -> None:
    """Every arrow needs both ends: a spec dict drawn before it was ever registered may lack one."""
    problems = [
        f"state {name!r}: {trigger!r} goes to unknown state {t.target!r}"
        for name, st in spec.states.items()
        for trigger, group in [*st.on.items(), *((f"after {k}", g) for k, g in st.after.items())]
        for t in group
        if t.target is not None and t.target not in spec.states
    ]
    if problems:
        raise DefinitionError(spec.name, problems)


def lines_of(st: StateSpec) -> tuple[str, ...]:
    lines = [f"entry / {a}" for a in st.on_enter]
    lines += [f"exit / {a}" for a in st.on_exit]
    lines += [_effect_line(e) for e in st.effects]
    return tuple(lines)


def _effect_line(effect: EffectSpec) -> str:
    fn = f" = {effect.fn}" if effect.fn != effect.name else ""
    tries = effect.retry.max_attempts
    return f"effect / {effect.name}{fn} ({tries} {'attempt' if tries == 1 else 'attempts'})"
