"""Statecharts as Mermaid `stateDiagram-v2`: composite states, `--` between parallel regions.

Mermaid allows no description lines on a composite state, so a compound state's entry/exit
actions, effects and internal transitions go in a note beside it. A history pseudo-state is a
small state labelled `H` (deep: `H*`) whose description names its default. Each arrow is written
in the innermost compound state that contains both its ends (a parallel state's `--` blocks hold
only their regions, so arrows between regions go one level up); `[*] --> x` inside a composite is
its initial state, `x --> [*]` a final child. Everything goes through `mermaid.text`, and every
output is checked by Mermaid's own parser in the tests.
"""

from __future__ import annotations

from diagrams.chartmodel import ancestors, drawn_source, is_inside
from diagrams.mermaid import run_lines, text
from diagrams.model import Chart, Edge, Node
from diagrams.run import Run, numbers

INDENT = "    "


def render_chart(chart: Chart, run: Run | None = None) -> str:
    lines = ["stateDiagram-v2", f"{INDENT}direction LR"]
    comment = f"{chart.name} run {run.instance_id}: {run.summary}" if run is not None else chart.name
    lines.append(f"{INDENT}%% {text(comment)}")
    scopes: dict[str | None, list[Edge]] = {}
    for edge in chart.external_edges:
        if not (edge.source == edge.target and chart.nodes[edge.source].is_cluster):
            scopes.setdefault(_scope(chart, edge), []).append(edge)
    lines += _block(chart, None, 1, scopes, run)
    for node in chart.nodes.values():
        if not node.known:
            lines.append(f'{INDENT}state "{text(node.name + " (not in this definition)")}" as {node.id}')
    if run is not None:
        lines += run_lines(chart, run)
    return "\n".join(lines) + "\n"


def _scope(chart: Chart, edge: Edge) -> str | None:
    """The innermost compound (not parallel) state containing both ends of `edge`, or None (top)."""
    target = edge.target or edge.source
    for candidate in ancestors(chart, drawn_source(chart, edge)):
        inside = is_inside(chart, target, candidate) and candidate != target
        if inside and chart.nodes[candidate].kind == "compound":
            return candidate
    return None


def _block(
    chart: Chart, parent: str | None, depth: int, scopes: dict[str | None, list[Edge]], run: Run | None
) -> list[str]:
    pad = INDENT * depth
    out: list[str] = []
    children = chart.children(parent)
    kind = chart.nodes[parent].kind if parent is not None else "compound"
    initial = next((c for c in children if c.initial), None)
    if kind == "compound" and initial is not None:
        start = ""
        if parent is None and run is not None and run.start_seqs:
            start = f" : {text('start ' + numbers(run.start_seqs))}"
        out.append(f"{pad}[*] --> {initial.id}{start}")
    for i, child in enumerate(children):
        if kind == "parallel" and i > 0:
            out.append(f"{pad}--")
        out += _state(chart, child, depth, scopes, run)
    if kind != "parallel":
        for edge in scopes.get(parent, []):
            label = edge.label
            if run is not None and edge.index in run.taken:
                label += f" \u00b7 {numbers(run.taken[edge.index])}"
            target = chart.nodes[edge.target or edge.source].id
            source = chart.nodes[drawn_source(chart, edge)].id
            out.append(f"{pad}{source} --> {target} : {text(label)}")
        out += [f"{pad}{c.id} --> [*]" for c in children if c.final]
    return out


def _state(
    chart: Chart, node: Node, depth: int, scopes: dict[str | None, list[Edge]], run: Run | None
) -> list[str]:
    pad = INDENT * depth
    if node.kind == "history":
        default = chart.nodes[node.default].shown if node.default in chart.nodes else "?"
        what = "deep history" if node.deep else "history"
        return [
            f'{pad}state "{"H*" if node.deep else "H"}" as {node.id}',
            f"{pad}{node.id} : {text(f'{what} {node.shown}, default {default}')}",
        ]
    details = list(node.lines)
    loops = [e for e in chart.external_edges if e.source == e.target == node.name and node.is_cluster]
    details += [_internal(e, run) + (" \u21bb" if e.target is not None else "") for e in loops]
    details += [_internal(e, run) for e in chart.internal_edges(node.name)]
    if node.description:
        details.append(node.description)
    if not node.is_cluster:
        out = [f'{pad}state "{text(node.shown)}" as {node.id}']
        return out + [f"{pad}{node.id} : {text(d)}" for d in details]
    out = [f'{pad}state "{text(node.shown)}" as {node.id} {{']
    out += _block(chart, node.name, depth + 1, scopes, run)
    out.append(f"{pad}}}")
    if details:
        out.append(f"{pad}note left of {node.id}")
        out += [f"{pad}{INDENT}{text(d)}" for d in details]
        out.append(f"{pad}end note")
    return out


def _internal(edge: Edge, run: Run | None) -> str:
    if run is not None and edge.index in run.taken:
        return f"{edge.label} \u00b7 {numbers(run.taken[edge.index])}"
    return edge.label
