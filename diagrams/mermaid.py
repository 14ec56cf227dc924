"""Mermaid `stateDiagram-v2` text, for Markdown that GitHub renders without Graphviz.

States are declared as `state "label" as s0` and every label goes through `text()`, which writes
the characters Mermaid's parser or its HTML labels would misread as entity codes (`#59;` for `;`)
and folds newlines: a quote, `;`, `:::`, `%%{`, `<b>` or `&amp;` in a name cannot break the text.
Everything else stays readable in the .mmd file (checked against Mermaid's own parser).
"""

from __future__ import annotations

from typing import Any

from diagrams.model import Chart, Edge, chart_of
from diagrams.run import Run, load, numbers

UNSAFE = set('";<>&%`')
CLASSES = {
    "visited": "fill:#dbeafe,stroke:#1d4ed8",
    "unvisited": "color:#6b7280,stroke:#9ca3af",
    "current": "fill:#fde68a,stroke:#b45309,stroke-width:3px",
    "completed": "fill:#bbf7d0,stroke:#15803d,stroke-width:3px",
    "cancelled": "fill:#e5e7eb,stroke:#374151,stroke-width:3px",
    "failed": "fill:#fecaca,stroke:#b91c1c,stroke-width:3px",
}


def text(value: Any) -> str:
    """A label Mermaid shows as written: unsafe characters become `#<code point>;` entity codes."""
    s = " ".join(str(value).split())
    out = []
    for i, ch in enumerate(s):
        colons = ch == ":" and (s[i - 1 : i] == ":" or s[i + 1 : i + 2] == ":")  # `:::` is a class
        out.append(f"#{ord(ch)};" if ch in UNSAFE or colons or ord(ch) < 32 or ord(ch) == 127 else ch)
    return "".join(out)


def to_mermaid(definition_or_spec: Any) -> str:
    """The definition as `stateDiagram-v2` text (a `Definition`, `MachineSpec` or dict)."""
    return render(chart_of(definition_or_spec))


def run_to_mermaid(
    engine_or_history: Any,
    instance_id: str | None = None,
    *,
    spec: Any = None,
    status: str | None = None,
) -> str:
    """The run variant: visited/current states classed, taken edges numbered, rejections in notes."""
    chart, run = load(engine_or_history, instance_id, spec=spec, status=status)
    return render(chart, run)


def render(chart: Chart, run: Run | None = None) -> str:
    if chart.is_chart:
        from diagrams.mermaidchart import render_chart

        return render_chart(chart, run)
    lines = ["stateDiagram-v2", "    direction LR"]
    comment = f"{chart.name} run {run.instance_id}: {run.summary}" if run is not None else chart.name
    lines.append(f"    %% {text(comment)}")
    for node in chart.nodes.values():
        label = node.name if node.known else f"{node.name} (not in this definition)"
        lines.append(f'    state "{text(label)}" as {node.id}')
        details = list(node.lines)
        details += [_internal(e, run) for e in chart.internal_edges(node.name)]
        if node.description:
            details.append(node.description)
        lines += [f"    {node.id} : {text(d)}" for d in details]
    if chart.initial in chart.nodes:
        start = f" : {text('start ' + numbers(run.start_seqs))}" if run and run.start_seqs else ""
        lines.append(f"    [*] --> {chart.nodes[chart.initial].id}{start}")
    for edge in chart.external_edges:
        label = edge.label
        if run is not None and edge.index in run.taken:
            label += f" \u00b7 {numbers(run.taken[edge.index])}"
        target = chart.nodes[edge.target or edge.source].id
        lines.append(f"    {chart.nodes[edge.source].id} --> {target} : {text(label)}")
    if run is not None:
        for (source, event, target), seqs in run.extra.items():
            if source is not None:
                label = f"{event} (not in this definition) \u00b7 {numbers(seqs)}"
                lines.append(f"    {chart.nodes[source].id} --> {chart.nodes[target].id} : {text(label)}")
    lines += [f"    {n.id} --> [*]" for n in chart.nodes.values() if n.final]
    if run is not None:
        lines += run_lines(chart, run)
    return "\n".join(lines) + "\n"


def _internal(edge: Edge, run: Run | None) -> str:
    if run is not None and edge.index in run.taken:
        return f"{edge.label} \u00b7 {numbers(run.taken[edge.index])}"
    return edge.label


def run_lines(chart: Chart, run: Run) -> list[str]:
    """The run overlay of a diagram, flat or statechart: class lines for the states drawn as
    current (`run.active_states`), visited or not, and a note per state with rejections or the
    failure. History pseudo-states (charts only) are never classed."""
    lines = [f"    classDef {name} {style}" for name, style in CLASSES.items()]
    groups: dict[str, list[str]] = {}
    for node in chart.nodes.values():
        if node.kind == "history":
            continue
        if node.name in run.active_states:
            cls = run.status if run.status in CLASSES and run.status != "active" else "current"
        else:
            cls = "visited" if node.name in run.visited else "unvisited"
        groups.setdefault(cls, []).append(node.id)
    lines += [f"    class {','.join(ids)} {cls}" for cls, ids in groups.items()]
    by_state: dict[str, list[str]] = {}
    for r in run.rejected:
        if r.state in chart.nodes:
            by_state.setdefault(r.state, []).append(f"rejected {r.text}")
    if run.failure and run.current in chart.nodes:
        by_state.setdefault(run.current, []).append(f"failed: {run.failure}")
    for state, texts in by_state.items():
        lines.append(f"    note right of {chart.nodes[state].id}")
        lines += [f"        {text(t)}" for t in texts]
        lines.append("    end note")
    return lines
