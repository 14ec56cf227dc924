"""RFC 9457 problem details: every error of the API as `application/problem+json`.

Engine errors map to statuses by what they mean to a client: 404 for an unknown instance or
machine, 409 when the instance's state refuses the request (event not allowed, guard refused,
instance closed or already existing, idempotency key reused), 422 for bad input (payload,
context, argument), 503 when the database is unavailable (retry later). Bad input never yields
a 500: a 500 means a fault on the server's side (an action raised, a storage error).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from diagrams.errors import GraphvizNotInstalled, RenderTimeout
from statemachines import errors

log = logging.getLogger("statemachines.web")
MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://statemachines.dev/problems/"


class ProblemDetail(BaseModel):
    """The body of every error response (RFC 9457); extra members say more (e.g. `allowed`)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class Problem(Exception):
    """Raised by routes for an error response that is not an engine error."""

    def __init__(
        self, status: int, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


#: (error type, status, title), most specific first.
_MAP: tuple[tuple[type[BaseException], int, str], ...] = (
    (errors.UnknownMachine, 404, "Unknown machine"),
    (errors.InstanceNotFound, 404, "Instance not found"),
    (errors.GuardRejected, 409, "Guard rejected"),
    (errors.EventNotAllowed, 409, "Event not allowed"),
    (errors.EventRejected, 409, "Event rejected"),
    (errors.InstanceClosed, 409, "Instance closed"),
    (errors.InstanceExists, 409, "Instance exists"),
    (errors.IdempotencyKeyReused, 409, "Idempotency key reused"),
    (errors.TokenForged, 403, "Forged token"),
    (errors.TokenInvalid, 410, "Token gone"),
    (errors.PayloadInvalid, 422, "Invalid payload"),
    (errors.ContextInvalid, 422, "Invalid context"),
    (errors.InvalidArgument, 422, "Invalid argument"),
    (errors.DefinitionError, 422, "Invalid definition"),
    (errors.TimeOutOfRange, 422, "Time out of range"),
    (errors.StorageUnavailable, 503, "Storage unavailable"),
    (GraphvizNotInstalled, 503, "Graphviz not installed"),
    (RenderTimeout, 503, "Diagram render timed out"),
)

#: Extra members copied from an error onto its problem, when it has them.
_FIELDS = ("instance_id", "state", "event", "allowed", "status", "machine")


def slug(title: str) -> str:
    return title.lower().replace(" ", "-")


def problem_response(
    status: int, title: str, detail: str, request: Request | None = None,
    headers: dict[str, str] | None = None, **extra: Any,
) -> JSONResponse:  # fmt: skip
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug(title),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def classify(exc: errors.StateMachineError) -> tuple[int, str]:
    """The status and title of an engine error (500 for a fault on the server's side)."""
    for kind, status, title in _MAP:
        if isinstance(exc, kind):
            return status, title
    return 500, type(exc).__name__


def engine_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.StateMachineError)
    status, title = classify(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    extra = {f: getattr(exc, f) for f in _FIELDS if f != "status" and hasattr(exc, f)}
    if isinstance(exc, errors.InstanceClosed):
        extra["instance_status"] = exc.status
    headers = {"Retry-After": "1"} if status == 503 else None
    return problem_response(status, title, str(exc), request, headers, **extra)


def route_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.title, exc.detail, request, exc.headers, **exc.extra)


def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "HTTP error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names the first route's methods; a path can have several
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(exc.status_code, title, str(exc.detail), request, headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
        if match == Match.FULL:
            break
    return sorted(methods)


def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems) or "invalid request"
    return problem_response(422, "Invalid request", detail, request, errors=problems)


def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "Internal error", "the server failed; see its log", request)


def install(app: FastAPI) -> None:
    """Answer every error of `app` as problem+json."""
    app.add_exception_handler(errors.StateMachineError, engine_error)
    app.add_exception_handler(Problem, route_problem)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


#: OpenAPI `responses=` for the statuses a route can answer with a problem (the schema's
#: post-processing in `statemachines.web.openapi` gives each the problem+json content).
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ProblemDetail, "description": "problem (RFC 9457)"} for s in statuses}
