"""Writing diagrams to files: the format comes from the suffix; only SVG/PNG/PDF need `dot`.

`dot` is looked up before anything is run, so a missing Graphviz is reported as
`GraphvizNotInstalled` with install instructions instead of a bare `FileNotFoundError`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import graphviz

from diagrams.dot import draw
from diagrams.errors import GraphvizNotInstalled, RenderFailed, RenderTimeout, UnsupportedFormat
from diagrams.mermaid import to_mermaid

BINARY_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
DOT_SUFFIXES = {".dot", ".gv"}
MERMAID_SUFFIXES = {".mmd", ".mermaid"}
RENDER_TIMEOUT = 60.0  # seconds `dot` may take for one image
SUFFIXES = sorted([*BINARY_FORMATS, *DOT_SUFFIXES, *MERMAID_SUFFIXES])


def require_dot(fmt: str = "svg") -> str:
    """The path of Graphviz's `dot`, or `GraphvizNotInstalled` saying how to install it."""
    found = shutil.which("dot")
    if found is None:
        raise GraphvizNotInstalled(fmt)
    return found


def render(graph: graphviz.Digraph, fmt: str, *, timeout: float | None = None) -> bytes:
    """`graph` rendered by `dot` as `fmt` (svg, png, pdf, json, ...).

    `dot` is stopped after `timeout` seconds (default RENDER_TIMEOUT) with `RenderTimeout`: some
    graphs make its layout run for hours, and a CLI or a web request must not hang on one.
    """
    dot = require_dot(fmt)
    limit = RENDER_TIMEOUT if timeout is None else timeout
    try:
        proc = subprocess.run(
            [dot, f"-T{fmt}"], input=graph.source.encode(), capture_output=True, timeout=limit, check=False
        )
    except subprocess.TimeoutExpired:  # `run` has killed and reaped it
        raise RenderTimeout(fmt, limit) from None
    except FileNotFoundError as exc:  # removed between the lookup and the run
        raise GraphvizNotInstalled(fmt) from exc
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace").strip()
        raise RenderFailed(f"`dot -T{fmt}` failed: {stderr or f'exit status {proc.returncode}'}")
    return proc.stdout


def save(graph_or_mermaid_text: Any, path: str | os.PathLike[str], *, timeout: float | None = None) -> Path:
    """Write a Digraph (or Mermaid text) to `path`: .dot/.gv, .svg, .png, .pdf or .mmd.

    A `Definition` or `MachineSpec` is drawn first, so `save(orders, "orders.svg")` works too.
    Parent directories are created. Returns the path written. `timeout` limits `dot` (see
    `render`); nothing is written when it fails.
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
        data = (
            graph.source.encode()
            if suffix in DOT_SUFFIXES
            else render(graph, BINARY_FORMATS[suffix], timeout=timeout)
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def _mermaid_of(obj: Any) -> str:
    if isinstance(obj, graphviz.Digraph | graphviz.Graph):
        raise UnsupportedFormat(
            "a Graphviz graph cannot be saved as Mermaid: use to_mermaid(definition) or run_to_mermaid(...)"
        )
    return to_mermaid(obj)
