"""Writing diagrams to files: the format comes from the suffix; only SVG/PNG/PDF need `dot`.

`dot` is looked up before anything is run, so a missing Graphviz is reported as
`GraphvizNotInstalled` with install instructions instead of a bare `FileNotFoundError`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import graphviz

from diagrams.dot import draw
from diagrams.errors import GraphvizNotInstalled, RenderFailed, UnsupportedFormat
from diagrams.mermaid import to_mermaid

BINARY_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
DOT_SUFFIXES = {".dot", ".gv"}
MERMAID_SUFFIXES = {".mmd", ".mermaid"}
SUFFIXES = sorted([*BINARY_FORMATS, *DOT_SUFFIXES, *MERMAID_SUFFIXES])


def require_dot(fmt: str = "svg") -> str:
    """The path of Graphviz's `dot`, or `GraphvizNotInstalled` saying how to install it."""
    found = shutil.which("dot")
    if found is None:
        raise GraphvizNotInstalled(fmt)
    return found


def render(graph: graphviz.Digraph, fmt: str) -> bytes:
    """`graph` rendered by `dot` as `fmt` (svg, png, pdf, json, ...)."""
    require_dot(fmt)
    try:
        data: bytes = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound as exc:
        raise GraphvizNotInstalled(fmt) from exc
    except graphviz.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        raise RenderFailed(f"`dot -T{fmt}` failed: {stderr or exc}") from exc
    return data


def save(graph_or_mermaid_text: Any, path: str | os.PathLike[str]) -> Path:
    """Write a Digraph (or Mermaid text) to `path`: .dot/.gv, .svg, .png, .pdf or .mmd.

    A `Definition` or `MachineSpec` is drawn first, so `save(orders, "orders.svg")` works too.
    Parent directories are created. Returns the path written.
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise UnsupportedFormat(f"cannot write {out.name!r}: use one of {', '.join(SUFFIXES)}")
    obj = graph_or_mermaid_text
    if suffix in MERMAID_SUFFIXES:
        data = (obj if isinstance(obj, str) else _mermaid_of(obj)).encode()
    elif isinstance(obj, str):
        raise UnsupportedFormat(
            f"cannot write Mermaid text as {suffix}: save Mermaid as .mmd, or pass draw(...) for {suffix}"
        )
    else:
        graph = obj if isinstance(obj, graphviz.Digraph | graphviz.Graph) else draw(obj)
        data = graph.source.encode() if suffix in DOT_SUFFIXES else render(graph, BINARY_FORMATS[suffix])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def _mermaid_of(obj: Any) -> str:
    if isinstance(obj, graphviz.Digraph | graphviz.Graph):
        raise UnsupportedFormat(
            "a Graphviz graph cannot be saved as Mermaid: use to_mermaid(definition) or run_to_mermaid(...)"
        )
    return to_mermaid(obj)
