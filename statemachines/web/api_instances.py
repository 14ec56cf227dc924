"""`/api/instances`: start, list (keyset pages), read, send events, cancel, retry.

Scopes: `read` for every GET, `write` to start, send and cancel, `admin` to retry (a redrive
re-runs failed effects). The actor recorded in the history is `api:<key name>`.

Instance ids may contain `/` (percent-encoded by the client): the id parameter is a path, and
the routes with a suffix (`/status`, `/events`, ...) are declared before the bare one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response

from diagrams import draw_run, render
from statemachines import errors
from statemachines.arguments import check_id
from statemachines.web.auth import require
from statemachines.web.keys import ApiKey
from statemachines.web.models import (
    CancelRequest,
    EventRequest,
    HistoryPage,
    InstanceOut,
    InstancePage,
    RecordOut,
    StartRequest,
    StatusOut,
)
from statemachines.web.problems import Problem, responses
from statemachines.web.state import WebState

SVG = "image/svg+xml"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", min_length=1, max_length=200,
        description="a key naming this request: sent again, it returns the first result instead of"
        " applying the event twice; reused for a different request: 409",
    ),
]  # fmt: skip
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Cursor = Annotated[str | None, Query(max_length=1024, description="next_cursor of the previous page")]


def actor(key: ApiKey) -> str:
    return f"api:{key.name}"


def router(state: WebState) -> APIRouter:
    engine = state.engine
    api = APIRouter(prefix="/api/instances", tags=["instances"])
    read, write, admin = Depends(require("read")), Depends(require("write")), Depends(require("admin"))

    @api.post(
        "", status_code=201, response_model=InstanceOut, responses=responses(401, 403, 404, 409, 422, 503),
        operation_id="start_instance",
    )  # fmt: skip
    def start(body: StartRequest, request: Request, key: ApiKey = write) -> InstanceOut:
        """Start an instance of a machine in its initial state (409 if the id is taken)."""
        snap = engine.start(body.machine, body.context, instance_id=body.id, actor=actor(key))
        return InstanceOut.of(snap)

    @api.get("", response_model=InstancePage, responses=responses(401, 403, 422, 503))
    def instances(
        machine: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        state: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        status: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
        key: ApiKey = read,
    ) -> InstancePage:
        """Instances in creation order, filtered; page with `next_cursor` (keyset, not OFFSET)."""
        page = engine.instances_page(machine=machine, state=state, status=status, limit=limit, cursor=cursor)
        return InstancePage(items=[InstanceOut.of(s) for s in page.items], next_cursor=page.next_cursor)

    @api.get("/{instance_id:path}/status", response_model=StatusOut, responses=responses(401, 403, 404, 503))
    def status(instance_id: str, key: ApiKey = read) -> StatusOut:
        """The instance and what it waits on: events accepted now, pending timers and effects."""
        return StatusOut.of(engine.status(instance_id))

    @api.get(
        "/{instance_id:path}/history", response_model=HistoryPage, responses=responses(401, 403, 404, 422)
    )
    def history(
        instance_id: str, limit: Limit = 100, cursor: Cursor = None, key: ApiKey = read
    ) -> HistoryPage:
        """The audit trail in seq order, one keyset page at a time."""
        page = engine.history_page(instance_id, limit=limit, cursor=cursor)
        return HistoryPage(items=[RecordOut.of(r) for r in page.items], next_cursor=page.next_cursor)

    @api.get(
        "/{instance_id:path}/diagram.svg", response_class=Response, responses={
            200: {"content": {SVG: {"schema": {"type": "string"}}}}, **responses(401, 403, 404, 503)},
    )  # fmt: skip
    def diagram(instance_id: str, key: ApiKey = read) -> Response:
        """The definition diagram with this instance's run drawn on it (needs Graphviz)."""
        return Response(render(draw_run(engine, instance_id), "svg"), media_type=SVG)

    @api.post(
        "/{instance_id:path}/events", response_model=InstanceOut,
        responses=responses(401, 403, 404, 409, 422, 503), operation_id="send_event",
    )  # fmt: skip
    def send(
        instance_id: str, body: EventRequest, idempotency_key: IdempotencyKey = None, key: ApiKey = write
    ) -> Response:
        """Apply one event atomically. 409: the state does not accept it, a guard refused it (the
        refusal is recorded), or the instance is closed; 422: the payload fails its schema."""
        snap = engine.send(
            instance_id, body.event, body.payload, idempotency_key=idempotency_key, actor=actor(key)
        )
        # The hot route: serialized once here, not validated again against the response model.
        return Response(InstanceOut.of(snap).model_dump_json(), media_type="application/json")

    @api.post(
        "/{instance_id:path}/cancel", response_model=InstanceOut, responses=responses(401, 403, 404, 409, 422)
    )
    def cancel(
        instance_id: str, body: Annotated[CancelRequest | None, Body()] = None, key: ApiKey = write
    ) -> InstanceOut:
        """Close the instance as cancelled (timers and effects dropped, audited)."""
        reason = body.reason if body is not None else None
        return InstanceOut.of(engine.cancel(instance_id, reason, actor=actor(key)))

    @api.post(
        "/{instance_id:path}/retry", response_model=InstanceOut, responses=responses(401, 403, 404, 409, 422)
    )
    def retry(instance_id: str, key: ApiKey = admin) -> InstanceOut:
        """Redrive a failed instance: failed effects re-armed, due timers fire again (409 unless failed)."""
        check_id(instance_id)  # a malformed id stays a 422; the engine's refusal below is a 409
        try:
            return InstanceOut.of(engine.retry(instance_id, actor=actor(key)))
        except errors.InvalidArgument as exc:  # the instance is not failed: a conflict with its state
            raise Problem(409, "Instance not failed", str(exc), instance_id=instance_id) from None

    @api.get("/{instance_id:path}", response_model=InstanceOut, responses=responses(401, 403, 404))
    def get(instance_id: str, key: ApiKey = read) -> InstanceOut:
        """The instance as stored now."""
        return InstanceOut.of(engine.get(instance_id))

    return api
