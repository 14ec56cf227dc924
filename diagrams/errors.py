"""Typed errors of the diagrams package: all are `StateMachineError`s, so one `except` catches them."""

from __future__ import annotations

from statemachines.errors import StateMachineError

INSTALL_HINT = (
    "Install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
    "or a package from https://graphviz.org/download/ (Windows and others), then make sure `dot` "
    "is on PATH. DOT (.dot) and Mermaid (.mmd) output work without it."
)


class DiagramError(StateMachineError):
    """A diagram could not be drawn or written."""


class GraphvizNotInstalled(DiagramError, RuntimeError):
    """Rendering SVG/PNG/PDF needs Graphviz's `dot` program, which is not on PATH."""

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        super().__init__(
            f"rendering {fmt.upper()} needs Graphviz's `dot` program, which is not on PATH. {INSTALL_HINT}"
        )


class UnsupportedFormat(DiagramError, ValueError):
    """The output path's suffix names no format this package writes."""


class RenderFailed(DiagramError):
    """`dot` ran but failed (its stderr is in the message), or did not finish in time."""


class RenderTimeout(RenderFailed, TimeoutError):
    """`dot` was stopped after the time limit (`render(..., timeout=)`, default RENDER_TIMEOUT)."""

    def __init__(self, fmt: str, seconds: float) -> None:
        self.format = fmt
        self.seconds = seconds
        super().__init__(
            f"`dot -T{fmt}` did not finish within {seconds:g}s and was stopped; save as .dot or .mmd"
            " instead, or pass a longer timeout"
        )


class NotDrawable(DiagramError, TypeError):
    """The object passed is not a Definition, a MachineSpec or a spec dict."""
