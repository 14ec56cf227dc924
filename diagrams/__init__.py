"""Graphviz and Mermaid views of statemachines definitions and runs.

    from diagrams import draw, draw_run, to_mermaid, run_to_mermaid, save
    save(draw(orders), "orders.svg")            # the definition
    save(draw_run(engine, "A1"), "A1.png")      # one instance's history on top
    save(to_mermaid(orders), "orders.mmd")      # stateDiagram-v2 for Markdown

DOT and Mermaid need nothing installed; SVG/PNG/PDF need Graphviz's `dot`
(`GraphvizNotInstalled` says how to get it). See docs/diagrams.md.
"""

from diagrams.dot import draw
from diagrams.errors import (
    DiagramError,
    GraphvizNotInstalled,
    NotDrawable,
    RenderFailed,
    RenderTimeout,
    UnsupportedFormat,
)
from diagrams.mermaid import run_to_mermaid, to_mermaid
from diagrams.render import render, require_dot, save
from diagrams.run import draw_run

__all__ = [
    "DiagramError",
    "GraphvizNotInstalled",
    "NotDrawable",
    "RenderFailed",
    "RenderTimeout",
    "UnsupportedFormat",
    "draw",
    "draw_run",
    "render",
    "require_dot",
    "run_to_mermaid",
    "save",
    "to_mermaid",
]
