"""Diagrams for the console as inline SVG: a definition with live counts, and one instance's run.

Counts are drawn by the diagram itself, not painted on afterwards: each state's node is declared
a second time in the DOT source with a count badge (`xlabel`), a fill whose strength grows with
the number of instances there, and a link to the instances list filtered to that state. DOT
merges repeated node statements, so the layout code of `diagrams` is reused untouched. Names are
never written into these extra attributes (only numbers and URL-quoted links), and every label
`diagrams` writes is escaped there, so a state named `<script>` is text in the SVG.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import graphviz
from markupsafe import Markup

from diagrams import draw_run, render
from diagrams.dot import to_digraph
from diagrams.model import chart_of

RENDER_TIMEOUT = 10.0  # seconds: a page must not hang on one pathological layout
ACTIVE_BADGE, FAILED_BADGE, DONE_BADGE = "#1d4ed8", "#b91c1c", "#4b5563"
# Fills from light to strong blue, by the share of the machine's active instances in the state.
FILLS = ("#eff6ff", "#dbeafe", "#bfdbfe", "#93c5fd", "#60a5fa")
FAILED_FILL = "#fee2e2"


@dataclass
class StateCounts:
    """Instances per state and status for one machine: {state: {status: n}}."""

    by_state: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: list[tuple[str, str, int]]) -> StateCounts:
        counts = cls()
        for state, status, n in rows:
            per = counts.by_state.setdefault(state, {})
            per[status] = per.get(status, 0) + n
        return counts

    def get(self, state: str, status: str) -> int:
        return self.by_state.get(state, {}).get(status, 0)

    def total(self, status: str) -> int:
        return sum(per.get(status, 0) for per in self.by_state.values())


def _badge(active: int, failed: int, completed: int) -> str:
    """An HTML-like xlabel with the active (blue), failed (red) and completed (grey) counts:
    numbers only."""
    cells = []
    if active:
        cells.append(
            f'<TD BGCOLOR="{ACTIVE_BADGE}"><FONT COLOR="white" POINT-SIZE="10"> {active} </FONT></TD>'
        )
    if failed:
        cells.append(
            f'<TD BGCOLOR="{FAILED_BADGE}"><FONT COLOR="white" POINT-SIZE="10"> {failed} failed </FONT></TD>'
        )
    if completed:
        cells.append(
            f'<TD BGCOLOR="{DONE_BADGE}"><FONT COLOR="white" POINT-SIZE="10"> {completed} done </FONT></TD>'
        )
    table = '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="1">'
    return f"<{table}<TR>{''.join(cells)}</TR></TABLE>>"


def _fill(active: int, most: int) -> str:
    if most <= 0 or active <= 0:
        return "white"
    step = min(len(FILLS) - 1, (active * len(FILLS) - 1) // most)
    return FILLS[step]


def counted_graph(spec: Any, counts: StateCounts, link: str) -> graphviz.Digraph:
    """The definition diagram with each atomic state's active and failed counts as a badge and
    a fill, and each state linking to `link` + `?machine=...&state=...`."""
    chart = chart_of(spec)
    g = to_digraph(chart)
    most = max((counts.get(n.name, "active") for n in chart.nodes.values()), default=0)
    for node in chart.nodes.values():
        if node.is_cluster or node.kind == "history":
            continue
        active, failed = counts.get(node.name, "active"), counts.get(node.name, "failed")
        completed = counts.get(node.name, "completed")
        attrs = {
            "id": f"state-{node.id}",
            "URL": link + "?" + urlencode({"machine": chart.name, "state": node.name}).replace("&", "&amp;"),
            "target": "_top",
            "tooltip": f"{active} active, {failed} failed, {completed} completed",
        }
        if active or failed or completed:
            attrs["xlabel"] = _badge(active, failed, completed)
            style = "filled" if node.final else "rounded,filled"
            attrs.update(style=style, fillcolor=FAILED_FILL if failed and not active else _fill(active, most))
        g.node(node.id, **attrs)
    return g


_HEAD = re.compile(r"^.*?(?=<svg\b)", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_OPEN = re.compile(r"<svg\b")


def inline_svg(graph: graphviz.Digraph) -> Markup:
    """`dot`'s SVG ready to sit inside HTML: no XML prolog or comments, shrunk (never grown) to
    fit its box by the stylesheet.

    Marked safe because every text in it was escaped twice over: by `diagrams` into the DOT
    label and by Graphviz into the SVG."""
    svg = render(graph, "svg", timeout=RENDER_TIMEOUT).decode("utf-8")
    svg = _COMMENT.sub("", _HEAD.sub("", svg, count=1))
    svg = _OPEN.sub('<svg class="diagram" preserveAspectRatio="xMinYMin meet"', svg, count=1)
    return Markup(svg)


def definition_svg(spec: Any, rows: list[tuple[str, str, int]], link: str) -> tuple[Markup, StateCounts]:
    counts = StateCounts.of(rows)
    return inline_svg(counted_graph(spec, counts, link)), counts


def run_svg(engine: Any, instance_id: str) -> Markup:
    """The run diagram of one instance (its definition as stored, history on top)."""
    return inline_svg(draw_run(engine, instance_id))


def state_rows(spec: Any, counts: StateCounts) -> list[Mapping[str, Any]]:
    """One row per state of the definition, in declaration order, with its counts per status;
    states no longer in the definition but still holding instances come last."""
    chart = chart_of(spec)
    names = [n.name for n in chart.nodes.values() if n.kind != "history"]
    names += [s for s in counts.by_state if s not in chart.nodes]
    return [{"state": name, **counts.by_state.get(name, {})} for name in names]
