"""`create_app(engine)`: the FastAPI application of the service, to run with `statemachines
serve` or to mount into an existing FastAPI app (`app.mount("/workflows", create_app(engine))`).

It serves `/api` (JSON, API keys), `/callbacks` (callback URLs: the token is the credential),
`/healthz`, `/metrics` (Prometheus), and the console when `statemachines/web/console.py` is
present. Every error is RFC 9457 problem+json (`statemachines.web.problems`).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from statemachines.engine import Engine
from statemachines.web import api_instances, api_machines, callbacks, problems
from statemachines.web.keys import KeyStore
from statemachines.web.metrics import CONTENT_TYPE
from statemachines.web.models import Health
from statemachines.web.openapi import typed_schema
from statemachines.web.state import WebState

SESSION_SECRET_ENV = "STATEMACHINES_SESSION_SECRET"
CONSOLE_MODULE = "statemachines.web.console"


def session_secret_from(value: str | bytes | None) -> bytes:
    """The console's cookie signing key: given, else $STATEMACHINES_SESSION_SECRET, else random
    per process (sessions then end on restart and do not span replicas: set it in production)."""
    value = value if value is not None else os.environ.get(SESSION_SECRET_ENV)
    if value is None or value == "":
        return secrets.token_bytes(32)
    return value.encode() if isinstance(value, str) else value


def create_app(
    engine: Engine, *, session_secret: str | bytes | None = None, base_url: str | None = None
) -> FastAPI:
    """The service for `engine` and the machines registered with it."""
    app = FastAPI(
        title="statemachines",
        version="1",
        description="Durable state machines over HTTP: start instances, send events, read history.",
    )
    state = WebState(
        engine=engine,
        keys=KeyStore(engine),
        session_secret=session_secret_from(session_secret),
        base_url=base_url if base_url is not None else os.environ.get("STATEMACHINES_BASE_URL"),
    )
    app.state.web = state
    problems.install(app)
    app.include_router(api_machines.router(state))
    app.include_router(api_instances.router(state))
    app.include_router(callbacks.router(state))

    @app.get("/healthz", response_model=Health, tags=["service"], responses=problems.responses(503))
    def healthz() -> Any:
        """Ready when the database answers a query (503 otherwise): for load balancers."""
        try:
            with engine.runtime.read() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
        except Exception as exc:  # any failure to query is "not ready", never a 500
            body = {"status": "unavailable", "database": engine.db.dialect, "machines": 0, "detail": str(exc)}
            return JSONResponse(body, status_code=503)
        return Health(status="ok", database=engine.db.dialect, machines=len(engine.runtime.machines))

    @app.get(
        "/metrics", response_class=Response, tags=["service"],
        responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
    )  # fmt: skip
    def metrics(request: Request) -> Response:
        """Prometheus metrics of this process (text exposition format)."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    if importlib.util.find_spec(CONSOLE_MODULE) is not None:
        console = importlib.import_module(CONSOLE_MODULE)
        app.include_router(console.router(state))

    app.openapi = lambda: typed_schema(app, engine)  # type: ignore[method-assign]
    return app
