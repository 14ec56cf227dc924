"""The hot route, `POST /api/instances/{id}/events`, answered without FastAPI's per-request work.

Why: profiled per request (cProfile, one process, SQLite NORMAL), FastAPI spent about four times
the CPU of `Engine.send` itself around it: matching the request against every route in turn
(the `{id:path}` routes are regular expressions), solving the dependency graph (header, body and
auth parameters, each validated on its own), and a thread-pool hop. On a 2-core machine that
CPU is what limits HTTP throughput.

`FastSend` is a plain ASGI middleware in front of the application. For a `POST` whose path ends
in `/events` under `/api/instances/` it does the same work as the FastAPI route, once:

- the key through `auth.authenticate` (one cached digest lookup) and the `write` scope;
- the JSON body validated once, by `EventRequest.model_validate_json` (no dict in between);
- `engine.send` on one of a few threads of its own (`web/send_threads.py`: the engine blocks on the
  database, and anyio's thread pool cost more CPU than the rest of this path), its errors
  answered by the same problem+json handler the application uses;
- the snapshot serialised once, to bytes (`InstanceOut` through a `TypeAdapter`), and sent as
  two raw ASGI messages with the headers Starlette's `Response` would give it.

Anything it is not sure about (no or insufficient key, a body that is not a valid event, a wrong
content type, a malformed `Idempotency-Key`, a large body) is handed, untouched and with its body
replayed, to the FastAPI application, which answers exactly as before (401/403/413/422 problems).
So behaviour stays defined in one place, the FastAPI route stays in the OpenAPI schema, and only
the accepted requests take the short path. Nothing is handed over after `send` ran: a refused
event is recorded, so it must not be applied twice.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from statemachines import errors
from statemachines.web import problems
from statemachines.web.auth import authenticate
from statemachines.web.models import EventRequest, InstanceOut
from statemachines.web.send_threads import SendThreads, threads_for
from statemachines.web.state import WebState

#: The route's path (FastAPI's `/api/instances/{instance_id:path}/events`: the id may hold "/").
EVENTS_PATH = re.compile(r"^/api/instances/(?P<instance_id>.+)/events$")
#: Larger bodies go the long way (FastAPI applies any body-size limit the application sets).
MAX_FAST_BODY = 1 << 20
IDEMPOTENCY_MAX = 200  # as the route's `Idempotency-Key` header declares
JSON = b"application/json"
#: `InstanceOut` straight to JSON bytes (`model_dump_json` gives a str, encoded again to send it).
SNAPSHOT_JSON = TypeAdapter(InstanceOut)


def _route_path(scope: Scope) -> str:
    """The path within this application (it may be mounted under a prefix)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == "application/json"


class FastSend:
    """ASGI middleware: the accepted `send` requests answered directly, the rest passed on."""

    def __init__(self, app: ASGIApp, state: WebState) -> None:
        self.app = app
        self.state = state
        self.threads = SendThreads(threads_for(state.engine.db.dialect))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = EVENTS_PATH.match(_route_path(scope))
        if match is None:
            await self.app(scope, receive, send)
            return
        body, pending = await _read_body(receive)
        request = Request(scope)
        arguments = None if pending or len(body) > MAX_FAST_BODY else self._arguments(request, body)
        if arguments is None:
            await self.app(scope, _replay(body, pending, receive), send)
            return
        event, key_name, idempotency_key = arguments
        answer = await self._send(request, match["instance_id"], event, key_name, idempotency_key)
        if isinstance(answer, bytes):  # the snapshot: what `Response(answer, media_type=JSON)` sends
            headers = [(b"content-length", str(len(answer)).encode()), (b"content-type", JSON)]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": answer})
        else:
            await answer(scope, receive, send)

    def _arguments(self, request: Request, body: bytes) -> tuple[EventRequest, str, str | None] | None:
        """What the route needs, or None when FastAPI should answer (an error of some kind)."""
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_MAX:
            return None
        if not _is_json(request.headers.get("content-type")):
            return None
        try:
            key = authenticate(self.state, request)
        except Exception:  # e.g. a way of authenticating that needs scope set up further in
            return None  # the application's own stack answers it, as for any other request
        if key is None or not key.allows("write"):
            return None
        try:
            event = EventRequest.model_validate_json(body)
        except ValidationError:
            return None
        request.state.api_key = key
        return event, f"api:{key.name}", idempotency_key

    async def _send(
        self, request: Request, instance_id: str, event: EventRequest, actor: str, idempotency_key: str | None
    ) -> bytes | Response:
        """The snapshot's JSON, or the problem response of an error."""
        engine = self.state.engine
        try:
            snap = await self.threads.run(
                engine.send, instance_id, event.event, event.payload,
                idempotency_key=idempotency_key, actor=actor,
            )  # fmt: skip
        except errors.StateMachineError as exc:
            return problems.engine_error(request, exc)
        except Exception as exc:  # as the application's catch-all handler: a 500 problem, logged
            return problems.unexpected(request, exc)
        return SNAPSHOT_JSON.dump_json(InstanceOut.of(snap))


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body as far as read, and whether more is pending (past `MAX_FAST_BODY`, or the
    client went away: the application then gets the part read, and the rest of the stream)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > MAX_FAST_BODY:
            return b"".join(chunks), True


def _replay(body: bytes, pending: bool, receive: Receive) -> Receive:
    """A `receive` giving the application what was read, then the rest of the stream."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": pending}
            return message
        return await receive()  # the rest of the body, or the server's own messages (a disconnect)

    return replayed
