"""`/callbacks/{token}`: callback URLs (`engine.callback_url`) for people and other services.

The token is the credential (no API key): signed, expiring, single-use, bound to the state
entry it was issued in. `POST` with a JSON body applies the event with that payload and answers
the instance as JSON; `GET` shows a form built from the event's payload schema, which posts the
fields back (form-encoded) and gets an HTML page. 403 for a token we did not sign, 410 Gone for
an expired, stale or used one, 409 when a guard refuses (the token is then spent, the refusal
recorded), 422 for a payload that fails its schema (the token is not spent: fix and resend).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from statemachines import errors
from statemachines.web import form
from statemachines.web.models import InstanceOut
from statemachines.web.problems import Problem, classify, responses
from statemachines.web.state import WebState

ACTOR = "callback"
MAX_BODY = 1_000_000
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def router(state: WebState) -> APIRouter:
    engine = state.engine
    api = APIRouter(prefix="/callbacks", tags=["callbacks"])

    def schema_of(machine: str, event: str) -> dict[str, Any] | None:
        model = engine.definition(machine).event_schemas.get(event)
        return model.model_json_schema() if model is not None else None

    @api.get(
        "/{token}",
        response_class=HTMLResponse,
        responses=responses(403, 404, 410),
        operation_id="show_callback",
    )
    def show(token: str) -> HTMLResponse:
        """A form to send the token's event (nothing is spent by looking)."""
        try:
            claims, machine = engine.inspect_token(token)
            snap = engine.get(claims.instance_id)
            schema = schema_of(machine, claims.event)
        except errors.StateMachineError as exc:
            return _html_error(exc)
        body = form.render_form(
            claims.event, machine, claims.instance_id, snap.state, schema, claims.expires_at.isoformat()
        )
        return HTMLResponse(body, headers=_private())

    @api.post(
        "/{token}", response_model=InstanceOut, responses=responses(403, 404, 409, 410, 413, 422, 503),
        operation_id="redeem_callback", openapi_extra={"requestBody": {"required": False, "content": {
            "application/json": {"schema": {"description": "the event's payload"}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        }}},
    )  # fmt: skip
    async def redeem(token: str, request: Request) -> Response:
        """Apply the token's event; the body (JSON) is its payload."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise Problem(413, "Payload too large", f"the payload is limited to {MAX_BODY} bytes")
        if content_type in FORM_TYPES:
            return await _redeem_form(token, request)
        try:
            payload = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            raise Problem(422, "Invalid request", f"the body is not JSON: {exc}") from None
        snap = engine.send_token(token, payload, actor=ACTOR)
        return JSONResponse(InstanceOut.of(snap).model_dump(mode="json"))

    async def _redeem_form(token: str, request: Request) -> Response:
        try:
            claims, machine = engine.inspect_token(token)
            fields = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            payload = form.payload_from_form(schema_of(machine, claims.event), fields)
            snap = engine.send_token(token, payload, actor=ACTOR)
        except errors.StateMachineError as exc:
            return _html_error(exc)
        text = (
            f"<p>Done: <code>{escape(snap.id)}</code> is now in state <code>{escape(snap.state)}</code>"
            f" ({escape(snap.status)}).</p>"
        )
        return HTMLResponse(form.page("Thank you", text), headers=_private())

    return api


def _private() -> dict[str, str]:
    """The page carries a live token: keep it out of caches and referrers."""
    return {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _html_error(exc: errors.StateMachineError) -> HTMLResponse:
    status, title = classify(exc)
    text = {
        403: "This link is not valid.",
        410: "This link has expired or was already used.",
    }.get(status, "The request could not be applied.")
    body = form.page(title, f"<p>{escape(text)}</p><p><small>{escape(str(exc))}</small></p>")
    return HTMLResponse(body, status_code=status, headers=_private())
