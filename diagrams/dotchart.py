"""Statecharts in Graphviz: compound states as clusters, parallel regions as dashed clusters.

A cluster is not a node, so an arrow to or from a compound state is drawn to an invisible anchor
point inside its cluster and clipped at the cluster's border (`compound=true` with `lhead` /
`ltail`). Graphviz cannot clip an arrow at a cluster that contains its other end (a child's
arrow to its own parent), so there the arrow simply ends at the anchor. A compound state's
transition to itself is written in its label (`EVENT ↻`), like an internal transition.

Shapes: black dot = initial (one per compound state, inside it); double circle = final; small
circle `H` / `H*` = shallow / deep history, with a dotted arrow to its default; dashed arrow =
timer (`after 3d`), from the state that declares it; green arrow = `done.state.X` (a join).
"""

from __future__ import annotations

import graphviz

from diagrams.chartmodel import drawn_source, is_inside
from diagrams.dot import (
    CURRENT_STYLE,
    DIM_LINE,
    DIM_TEXT,
    FONT,
    INITIAL_ID,
    SHARED_ID,
    TAKEN,
    edge_attrs,
    initial_edge,
    label_rows,
    new_graph,
    node_attrs,
    rejected_note,
    run_rows,
    shared,
    table,
)
from diagrams.model import Chart, Edge, Node
from diagrams.run import Run

DONE = "#047857"  # done.state.X arrows: where parallel work joins
VISITED_CLUSTER = "#eff6ff"
ACTIVE_CLUSTER = "#fffbeb"


def cluster_name(node: Node) -> str:
    return f"cluster_{node.id}"


def anchor_id(node: Node) -> str:
    return f"{node.id}_anchor"


def chart_digraph(chart: Chart, run: Run | None = None) -> graphviz.Digraph:
    g = new_graph(chart, run)
    g.attr(compound="true")
    loops = {
        e.index for e in chart.external_edges if e.source == e.target and chart.nodes[e.source].is_cluster
    }
    for node in chart.children(None):
        _add(g, chart, node, run)
    for node in chart.nodes.values():
        if not node.known:
            g.node(node.id, **node_attrs(chart, node, run))
    initial_edge(g, chart, run, lambda name: _end(chart, name, None, "lhead"))
    groups = chart.shared_edges()
    grouped = {e.index for group in groups for e in group}
    for edge in chart.external_edges:
        if edge.index not in grouped and edge.index not in loops:
            _edge(g, chart, edge, run)
    for number, group in enumerate(groups):
        shared(g, chart, group, f"{SHARED_ID}{number}", run, lambda name: _end(chart, name, None, "lhead"))
    for node in chart.nodes.values():
        if node.kind == "history" and node.default is not None:
            head, attrs = _end(chart, node.default, node.name, "lhead")
            g.edge(node.id, head, style="dotted", arrowhead="open", color=DIM_LINE, **attrs)
    if run is not None:
        rejected_note(g, chart, run)
    return g


def _add(g: graphviz.Digraph, chart: Chart, node: Node, run: Run | None) -> None:
    if node.is_cluster:
        _cluster(g, chart, node, run)
    elif node.kind == "history":
        g.node(
            node.id,
            label="H*" if node.deep else "H",
            shape="circle",
            width="0.32",
            fixedsize="true",
            fontsize="10",
            tooltip=f"{'deep ' if node.deep else ''}history {node.name}",
            **({"color": DIM_LINE, "fontcolor": DIM_TEXT} if run is not None else {}),
        )
    else:
        g.node(node.id, **node_attrs(chart, node, run))


def _cluster(g: graphviz.Digraph, chart: Chart, node: Node, run: Run | None) -> None:
    loops = tuple(e for e in chart.external_edges if e.source == e.target == node.name)
    rows = label_rows(chart, node, run, loops)
    region = node.parent is not None and chart.nodes[node.parent].kind == "parallel"
    attrs = {
        "style": "rounded,dashed" if region else "rounded",
        "color": "#64748b" if region else "#334155",
        "penwidth": "1.6" if node.kind == "parallel" else "1.1",
        "fontname": FONT,
        "fontsize": "11",
        "labeljust": "l",
        "labelloc": "t",
        "margin": "10",
    }
    if run is not None:
        rows += run_rows(node, run)
        attrs.update(_cluster_run_style(node, run, attrs["style"]))
    attrs["label"] = table(rows)
    with g.subgraph(name=cluster_name(node)) as c:
        c.attr(**attrs)
        c.node(anchor_id(node), label="", shape="point", style="invis", width="0.01")
        if node.kind == "compound":
            marker = f"{node.id}_initial"
            c.node(marker, label="", shape="point", width="0.12", style="filled", fillcolor="black")
            initial = next((n for n in chart.children(node.name) if n.initial), None)
            if initial is not None:
                head, extra = _end(chart, initial.name, None, "lhead")
                c.edge(marker, head, **extra, **_initial_run_style(initial, run))
        for child in chart.children(node.name):
            _add(c, chart, child, run)


def _cluster_run_style(node: Node, run: Run, style: str) -> dict[str, str]:
    if node.name in run.active_states:
        _fill, line, _text = CURRENT_STYLE.get(run.status, CURRENT_STYLE["active"])
        return {"style": f"{style},filled", "fillcolor": ACTIVE_CLUSTER, "color": line, "penwidth": "2.4"}
    if node.name in run.visited:
        return {"style": f"{style},filled", "fillcolor": VISITED_CLUSTER, "color": TAKEN}
    return {"color": DIM_LINE, "fontcolor": DIM_TEXT}


def _initial_run_style(node: Node, run: Run | None) -> dict[str, str]:
    if run is None:
        return {}
    if node.name in run.visited:
        return {"color": TAKEN, "penwidth": "1.6"}
    return {"color": DIM_LINE}


def _end(chart: Chart, name: str, other: str | None, clip: str) -> tuple[str, dict[str, str]]:
    """The node an arrow attaches to for state `name`, and the cluster clipping (`lhead`/`ltail`).

    No clipping when the arrow's other end (`other`) is inside the cluster: Graphviz refuses it.
    """
    node = chart.nodes[name]
    if not node.is_cluster:
        return node.id, {}
    if other is not None and is_inside(chart, other, name):
        return anchor_id(node), {}
    return anchor_id(node), {clip: cluster_name(node)}


def _edge(g: graphviz.Digraph, chart: Chart, edge: Edge, run: Run | None) -> None:
    target = edge.target or edge.source
    source = drawn_source(chart, edge)
    tail, tail_attrs = _end(chart, source, target, "ltail")
    head, head_attrs = _end(chart, target, source, "lhead")
    attrs = edge_attrs(edge, run)
    if edge.is_done and run is None:
        attrs.update(color=DONE, fontcolor=DONE, penwidth="1.4")
    if edge.eventless and run is None:
        attrs.update(arrowhead="vee")
    g.edge(tail, head, **attrs, **tail_attrs, **head_attrs)


__all__ = ["INITIAL_ID", "anchor_id", "chart_digraph", "cluster_name"]
