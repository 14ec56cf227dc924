"""Definition (and optionally a run) -> `graphviz.Digraph`. Needs no Graphviz binary.

Every label is an HTML-like label built from escaped text, and node ids are `s0`, `s1`, ...: a
state or event name with quotes, backslashes, `<>{}|` or any unicode can never break the DOT.
The returned Digraph renders inline in Jupyter (`_repr_mimebundle_`) and exposes `.source`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import graphviz

from diagrams.model import Chart, Edge, Node, chart_of
from diagrams.run import Run, numbers

FONT = "Helvetica"
INITIAL_ID = "__initial__"
NOTE_ID = "__rejected__"
SHARED_ID = "__shared"  # + a number: the note naming a shared transition's sources
MAX_SHARED_NAMES = 8
MAX_NOTE_LINES = 15

# (fill, border, text in the label) of the current state, by instance status
CURRENT_STYLE = {
    "active": ("#fde68a", "#b45309", "current state"),
    "completed": ("#bbf7d0", "#15803d", "finished here"),
    "cancelled": ("#e5e7eb", "#374151", "cancelled here"),
    "failed": ("#fecaca", "#b91c1c", "failed here"),
}
VISITED_FILL, TAKEN = "#dbeafe", "#1d4ed8"
DIM_LINE, DIM_TEXT = "#9ca3af", "#6b7280"
ERROR, UNKNOWN, NOTE = "#b91c1c", "#b91c1c", "#c2410c"


def draw(definition_or_spec: Any) -> graphviz.Digraph:
    """The definition as a left-to-right state diagram (a `Definition`, `MachineSpec` or dict)."""
    return to_digraph(chart_of(definition_or_spec))


def esc(text: Any) -> str:
    """Text for inside an HTML-like label: markup characters as entities, control chars as spaces."""
    out = []
    for ch in str(text):
        if ch == "\\":
            # Graphviz (2.43, Debian 12) expands escapes such as \N (the node's id) inside HTML-like
            # labels too, after entities are decoded: a doubled backslash is shown as one.
            out.append("&#92;&#92;")
        elif ch in "&<>\"'[]":
            out.append(f"&#{ord(ch)};")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def to_digraph(chart: Chart, run: Run | None = None) -> graphviz.Digraph:
    if chart.is_chart:
        from diagrams.dotchart import chart_digraph

        return chart_digraph(chart, run)
    g = new_graph(chart, run)
    for node in chart.nodes.values():
        g.node(node.id, **node_attrs(chart, node, run))
    initial_edge(g, chart, run)
    groups = chart.shared_edges()
    grouped = {e.index for group in groups for e in group}
    for edge in chart.external_edges:
        if edge.index not in grouped:
            g.edge(
                chart.nodes[edge.source].id,
                chart.nodes[edge.target or edge.source].id,
                **edge_attrs(edge, run),
            )
    for number, group in enumerate(groups):
        shared(g, chart, group, f"{SHARED_ID}{number}", run)
    if run is not None:
        _extra_edges(g, chart, run)
        rejected_note(g, chart, run)
    return g


def new_graph(chart: Chart, run: Run | None) -> graphviz.Digraph:
    """An empty left-to-right graph with the title and the default node and edge styles."""
    g = graphviz.Digraph(comment="statemachines diagram")
    g.attr(
        rankdir="LR",
        fontname=FONT,
        fontsize="13",
        labelloc="t",
        labeljust="l",
        nodesep="0.35",
        ranksep="0.55",
        pad="0.25",
        outputorder="edgesfirst",
        label=title(chart, run),
    )
    g.attr("node", shape="box", style="rounded", fontname=FONT, fontsize="11", margin="0.12,0.06")
    g.attr("edge", fontname=FONT, fontsize="9", arrowsize="0.7")
    return g


def title(chart: Chart, run: Run | None) -> str:
    title = f"<B>{esc(chart.name)}</B>"
    if run is not None:
        who = f" {esc(run.instance_id)}" if run.instance_id is not None else ""
        title += f"   run{who}: {esc(run.summary)}"
    return f"<{title}>"


Row = tuple[str, str]  # (cell markup, TD attributes)


def table(rows: list[Row]) -> str:
    body = "".join(f"<TR><TD{attrs}>{cell}</TD></TR>" for cell, attrs in rows)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{body}</TABLE>>'


def row(cell: str, attrs: str = "") -> Row:
    return (cell, attrs)


def node_attrs(chart: Chart, node: Node, run: Run | None) -> dict[str, str]:
    rows = label_rows(chart, node, run)
    attrs: dict[str, str] = {}
    if node.final:
        attrs.update(shape="doublecircle", margin="0.04")
    if node.initial:
        attrs["penwidth"] = "1.6"
    if not node.known:
        attrs.update(style="rounded,dashed", color=UNKNOWN)
    if run is not None:
        attrs.update(_node_run_style(node, run, rows))
    attrs["label"] = table(rows)
    return attrs


def label_rows(chart: Chart, node: Node, run: Run | None, loops: tuple[Edge, ...] = ()) -> list[Row]:
    """The state's name, then small lines: actions, effects, internal transitions (and `loops`,
    self-transitions drawn as text), the description."""
    rows = [row(f"<B>{esc(node.shown)}</B>")]
    small = [esc(line) for line in node.lines]
    for edge in [*chart.internal_edges(node.name), *loops]:
        text = esc(edge.label + (" \u21bb" if edge.target is not None else ""))
        if run is not None and edge.index in run.taken:
            text += f' <FONT COLOR="{TAKEN}"><B>{esc(edge_numbers(run, edge))}</B></FONT>'
        small.append(text)
    if node.description:
        small.append(f"<I>{esc(node.description)}</I>")
    if not node.known:
        small.append("<I>not in this definition</I>")
    if small:
        rows.append(
            row('<FONT POINT-SIZE="9">' + "<BR/>".join(small) + "</FONT>", ' ALIGN="LEFT" BALIGN="LEFT"')
        )
    return rows


def _node_run_style(node: Node, run: Run, rows: list[Row]) -> dict[str, str]:
    base = "dashed," if not node.known else ""
    rounded = "" if node.final else "rounded,"
    rows += run_rows(node, run)
    if node.name in run.active_states:
        fill, line, _text = CURRENT_STYLE.get(run.status, CURRENT_STYLE["active"])
        return {"style": f"{rounded}{base}filled", "fillcolor": fill, "color": line, "penwidth": "3"}
    if node.name in run.visited:
        return {"style": f"{rounded}{base}filled", "fillcolor": VISITED_FILL, "color": TAKEN}
    return {"color": DIM_LINE, "fontcolor": DIM_TEXT}


def run_rows(node: Node, run: Run) -> list[Row]:
    """`rejected #2`, and `current state` (with the failure) on an active state."""
    rows = []
    rejected = run.rejected_in(node.name)
    if rejected:
        seqs = ", ".join(f"#{r.seq}" for r in rejected[:3]) + (", ..." if len(rejected) > 3 else "")
        rows.append(row(f'<FONT POINT-SIZE="9" COLOR="{NOTE}">rejected {esc(seqs)}</FONT>'))
    if node.name in run.active_states:
        _fill, line, text = CURRENT_STYLE.get(run.status, CURRENT_STYLE["active"])
        rows.append(row(f'<FONT POINT-SIZE="9" COLOR="{line}"><B>{esc(text)}</B></FONT>'))
        if run.failure:
            rows.append(row(f'<FONT POINT-SIZE="8" COLOR="{line}">{esc(_cut(run.failure, 70))}</FONT>'))
    return rows


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def edge_label(lines: list[str]) -> str:
    """A table, not `<BR/>` lines: dot 2.4x sizes `<BR/>` edge labels wrongly and draws edges over them."""
    return table([row(line) for line in lines])


def edge_numbers(run: Run, edge: Edge) -> str:
    return numbers(run.taken[edge.index])


def edge_attrs(edge: Edge, run: Run | None) -> dict[str, str]:
    lines = [esc(edge.title)]
    if edge.detail:
        lines.append(f'<FONT POINT-SIZE="8">{esc(edge.detail)}</FONT>')
    attrs: dict[str, str] = {}
    if edge.timer is not None:
        attrs["style"] = "dashed"
    if edge.is_error:
        attrs.update(color=ERROR, fontcolor=ERROR)
    if run is not None:
        if edge.index in run.taken:
            lines.append(f"<B>{esc(edge_numbers(run, edge))}</B>")
            attrs.update(color=TAKEN, fontcolor=TAKEN, penwidth="2.2")
        else:
            attrs.update(color=DIM_LINE, fontcolor=DIM_TEXT)
    attrs["label"] = edge_label(lines)
    return attrs


#: Where an arrow into a state ends: (node id, extra edge attributes such as a cluster's `lhead`).
Head = Callable[[str], tuple[str, dict[str, str]]]


def _flat_head(chart: Chart) -> Head:
    return lambda name: (chart.nodes[name].id, {})


def shared(
    g: graphviz.Digraph, chart: Chart, group: list[Edge], note: str, run: Run | None, head: Head | None = None
) -> None:
    """One transition taken from many states: a note naming the sources, one labelled arrow.

    No arrow from each source: dot's layout time explodes with many long arrows into one state
    (100 states with `RESET -> first` never finish, even through a junction point), and the
    arrows would hide the machine's real shape. The note lists the sources (the first
    MAX_SHARED_NAMES, then a count).
    """
    first = group[0]
    sources = list(dict.fromkeys(e.source for e in group))
    shown = ", ".join(esc(name) for name in sources[:MAX_SHARED_NAMES])
    more = f" and {len(sources) - MAX_SHARED_NAMES} more" if len(sources) > MAX_SHARED_NAMES else ""
    rows = [
        row(f"<B>from {len(sources)} states</B>", ' ALIGN="LEFT"'),
        row(f'<FONT POINT-SIZE="8">{shown}{esc(more)}</FONT>', ' ALIGN="LEFT" BALIGN="LEFT"'),
    ]
    taken = sorted(seq for e in group for seq in (run.taken.get(e.index, []) if run else []))
    style = {"color": DIM_LINE, "fontcolor": DIM_TEXT} if run is not None and not taken else {}
    g.node(note, label=table(rows), shape="note", fontsize="9", **style)
    attrs = edge_attrs(first, None)
    if run is not None:
        if taken:
            attrs.update(color=TAKEN, fontcolor=TAKEN, penwidth="2.2")
        else:
            attrs.update(color=DIM_LINE, fontcolor=DIM_TEXT)
        if taken:
            lines = [esc(first.title)]
            if first.detail:
                lines.append(f'<FONT POINT-SIZE="8">{esc(first.detail)}</FONT>')
            lines.append(f"<B>{esc(numbers(taken))}</B>")
            attrs["label"] = edge_label(lines)
    head_id, head_attrs = (head or _flat_head(chart))(first.target or first.source)
    g.edge(note, head_id, **attrs, **head_attrs)


def initial_edge(g: graphviz.Digraph, chart: Chart, run: Run | None, head: Head | None = None) -> None:
    """The black dot and the arrow into the initial state, numbered `start #1` in a run."""
    if chart.initial not in chart.nodes:
        return
    g.node(INITIAL_ID, label="", shape="point", width="0.16", style="filled", fillcolor="black")
    attrs: dict[str, str] = {}
    if run is not None and run.start_seqs:
        attrs.update(
            label=edge_label([f"<B>start {esc(numbers(run.start_seqs))}</B>"]),
            color=TAKEN,
            fontcolor=TAKEN,
            penwidth="2.2",
        )
    head_id, head_attrs = (head or _flat_head(chart))(chart.initial)
    g.edge(INITIAL_ID, head_id, **attrs, **head_attrs)


def _extra_edges(g: graphviz.Digraph, chart: Chart, run: Run) -> None:
    """Transitions in the history that this definition does not have (another version, say)."""
    for (source, event, target), seqs in run.extra.items():
        if source is None:
            continue
        label = edge_label([esc(event), "<I>not in this definition</I>", f"<B>{esc(numbers(seqs))}</B>"])
        g.edge(
            chart.nodes[source].id,
            chart.nodes[target].id,
            label=label,
            color=UNKNOWN,
            fontcolor=UNKNOWN,
            style="bold,dashed",
        )


def rejected_note(g: graphviz.Digraph, chart: Chart, run: Run) -> None:
    if not run.rejected:
        return
    rows = [row(f"<B>rejected events ({len(run.rejected)})</B>", ' ALIGN="LEFT"')]
    shown = run.rejected[:MAX_NOTE_LINES]
    rows += [row(esc(r.text), ' ALIGN="LEFT"') for r in shown]
    if len(run.rejected) > len(shown):
        rows.append(row(f"<I>... and {len(run.rejected) - len(shown)} more</I>", ' ALIGN="LEFT"'))
    # no edges to the states: they tangle the layout; each state says "rejected #n" itself
    g.node(
        NOTE_ID,
        label=table(rows),
        shape="note",
        style="filled",
        fillcolor="#fff7ed",
        color=NOTE,
        fontcolor="#7c2d12",
        fontsize="9",
    )
