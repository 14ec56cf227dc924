"""The `Chart` of a statechart: every state of the tree keyed by its full dotted path.

Names are resolved by `statemachines.chart.tree.Tree`, the same resolution the engine runs, so an
arrow is drawn to exactly the state a transition enters (a short target name becomes a full path
here). Each node knows its parent and kind (atomic, final, compound, parallel, history), which is
all the DOT and Mermaid writers need to nest compound states and regions.
"""

from __future__ import annotations

from diagrams.model import Chart, Edge, Node, lines_of
from statemachines.chart.tree import HISTORY, Tree
from statemachines.checks import timer_event
from statemachines.errors import DefinitionError
from statemachines.spec import MachineSpec


def statechart_of(spec: MachineSpec) -> Chart:
    """Nodes in document order (ids `s0`, `s1`, ...), edges per state in declaration order."""
    tree = Tree(spec)
    if tree.problems:
        raise DefinitionError(spec.name, list(tree.problems))
    chart = Chart(spec.name, tree.root.initial.path if tree.root.initial else spec.initial, {}, is_chart=True)
    for i, node in enumerate(tree.order):
        parent = node.parent.path if node.parent is not None and node.parent.path else None
        history = node.spec.history
        chart.nodes[node.path] = Node(
            node.path,
            f"s{i}",
            initial=node.parent is not None and node.parent.initial is node,
            final=node.kind == "final",
            lines=lines_of(node.spec) if node.kind != HISTORY else (),
            description=node.spec.description,
            kind=node.kind,
            parent=parent,
            label=node.name,
            deep=bool(history and history.deep),
            default=node.default.path if node.default is not None else None,
        )
    for node in tree.order:
        timers = {timer_event(label): label for label in node.spec.after}
        for t in node.transitions:
            chart.edges.append(
                Edge(
                    len(chart.edges),
                    node.path,
                    t.target.path if t.target is not None else None,
                    t.event or "",
                    t.guard,
                    t.actions,
                    timers.get(t.event) if t.event is not None else None,
                    eventless=t.event is None,
                )
            )
    return chart


def ancestors(chart: Chart, path: str) -> list[str]:
    """`path`'s proper ancestors, innermost first."""
    out: list[str] = []
    parent = chart.nodes[path].parent
    while parent is not None:
        out.append(parent)
        parent = chart.nodes[parent].parent
    return out


def is_inside(chart: Chart, path: str, container: str) -> bool:
    """`path` is `container` or one of its descendants."""
    return path == container or path.startswith(container + ".")


def drawn_source(chart: Chart, edge: Edge) -> str:
    """Where an arrow is drawn from: its source, except for a join declared on an ancestor.

    `identity: on={"done.state.identity.documents": "verified"}` is drawn from `documents` (the
    state whose finishing raises the event), not from inside `identity`.
    """
    done = edge.event[len("done.state.") :] if edge.is_done else None
    target = edge.target or edge.source
    if done in chart.nodes and is_inside(chart, done, edge.source) and not is_inside(chart, target, done):
        return done
    return edge.source
