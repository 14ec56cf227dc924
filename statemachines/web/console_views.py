"""Rendering console pages: one Jinja2 environment with autoescaping always on, the filters the
templates use, the security headers every page carries, and the static files.

Autoescape is set to True outright (not chosen by file suffix), so every value a template prints
is escaped unless it is `Markup`; the only `Markup` the console makes is Graphviz's SVG, whose
texts Graphviz escaped. The Content-Security-Policy allows scripts from this server only, so
even a string that escaped escaping could not run.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def pretty(value: Any) -> str:
    """JSON with indentation for reading (a pydantic model is dumped first)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def span(delta: timedelta) -> str:
    """A time left as a person reads it: `3d 4h`, `5m 10s`, `overdue 2s`."""
    seconds = int(delta.total_seconds())
    prefix = "overdue " if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n][:2]
    return prefix + (" ".join(parts) or "0s")


def ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} ms"


def path_quote(value: Any) -> str:
    """One URL path segment: every reserved character quoted, `/` included."""
    return quote(str(value), safe="")


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pretty=pretty, when=when, span=span, ms=ms, q=path_quote)
    return env


class Views:
    """Renders templates into responses under the console's URL prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.env = make_environment()

    def base(self, request: Request) -> str:
        """The console's URL path, behind whatever the app is mounted under (`root_path`)."""
        return request.scope.get("root_path", "").rstrip("/") + self.prefix

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("session", None)
        context.setdefault("error", None)
        context.setdefault("notice", None)
        context.setdefault("nav", None)
        html = self.env.get_template(name).render(base=self.base(request), **context)
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    def message(
        self, request: Request, status_code: int, heading: str, text: str, **context: Any
    ) -> HTMLResponse:
        context.setdefault("login_link", False)
        return self.page(request, "message.html", status_code, heading=heading, text=text, **context)

    @staticmethod
    def static(name: str) -> Response:
        """A file of static/ by its exact name (no paths: only the files that are there)."""
        path = STATIC / name
        kind = STATIC_TYPES.get(path.suffix)
        if kind is None or "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            path.read_bytes(),
            media_type=kind,
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )
