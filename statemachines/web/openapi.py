"""The OpenAPI schema, typed per machine: request bodies name each machine's context model and
each event's payload model, where the definition declares one.

Routes take generic bodies (`StartRequest`, `EventRequest`) and the engine validates them, so
that a payload error is the engine's 422 naming the field and an event the state refuses is a
409 (a schema-first validation could not tell those apart across machines). The schema
documents the precise types: the start body is `oneOf` one variant per machine (`machine` is a
constant, `context` its model), and the event body `anyOf` one variant per declared payload
model, plus the generic variant for events without one.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from statemachines.engine import Engine
from statemachines.web.problems import MEDIA_TYPE, ProblemDetail

REF = "#/components/schemas/{model}"


def _component(components: dict[str, Any], machine: str, model: type[BaseModel]) -> dict[str, Any]:
    """Register `model` (and the models it uses) as components; returns a $ref to it."""
    schema = model.model_json_schema(ref_template=REF)
    defs = schema.pop("$defs", {})
    name = model.__name__
    if name in components and components[name] != schema:  # two machines, two models, one name
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{machine}.{model.__name__}")
    for def_name, definition in defs.items():
        components.setdefault(def_name, definition)
    components[name] = schema
    return {"$ref": REF.format(model=name)}


def _body(operation: dict[str, Any], schema: dict[str, Any]) -> None:
    operation["requestBody"]["content"]["application/json"]["schema"] = schema


#: Error statuses every operation may answer, besides those its route declares: a malformed
#: request (422) and an unavailable database (503) anywhere; no key, a missing scope or an unknown
#: path segment under /api.
ALWAYS, API = ("422", "503"), ("401", "403", "404")


def _problems(operation: dict[str, Any], path: str, components: dict[str, Any]) -> None:
    """Every error response of `operation` is documented as problem+json (RFC 9457)."""
    responses = operation.setdefault("responses", {})
    body = ("400",) if "requestBody" in operation else ()  # a body that cannot be parsed at all
    for status in (*ALWAYS, *body, *(API if path.startswith("/api/") else ())):
        responses.setdefault(status, {"description": "problem"})
    for status, response in responses.items():
        if int(status) >= 400:
            response["content"] = {MEDIA_TYPE: {"schema": {"$ref": REF.format(model="ProblemDetail")}}}
    components.setdefault("ProblemDetail", ProblemDetail.model_json_schema(ref_template=REF))


HTML = {"text/html": {"schema": {"type": "string"}}}


def _html_too(operation: dict[str, Any]) -> None:
    """Callback pages answer people in HTML: GET always, POST when a form was submitted."""
    for response in operation["responses"].values():
        if operation.get("operationId") == "show_callback":
            response["content"] = dict(HTML)
        else:
            response.setdefault("content", {}).update(HTML)


def typed_schema(app: FastAPI, engine: Engine) -> dict[str, Any]:
    """The app's schema with the start and event bodies typed per machine (cached on the app)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    starts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for name in sorted(engine.runtime.machines):
        definition = engine.definition(name)
        context: dict[str, Any] = {}
        if definition.context_model is not None:
            context = _component(components, name, definition.context_model)
        starts.append({
            "type": "object", "title": f"start {name}", "additionalProperties": False,
            "properties": {
                "machine": {"const": name},
                "context": context,
                "id": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
            },
            "required": ["machine"],
        })  # fmt: skip
        for event, model in sorted(definition.event_schemas.items()):
            events.append({
                "type": "object", "title": f"{name}: {event}", "additionalProperties": False,
                "properties": {"event": {"const": event}, "payload": _component(components, name, model)},
                "required": ["event", "payload"],
            })  # fmt: skip
    schema["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "an API key (`statemachines keys create`)",
        }
    }
    paths = schema.get("paths", {})
    for path, path_item in paths.items():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            if path.startswith("/api/"):
                operation["security"] = [{"bearer": []}]
            _problems(operation, path, components)
            if path.startswith("/callbacks/"):
                _html_too(operation)
            if operation.get("operationId") == "start_instance" and starts:
                _body(operation, {"oneOf": starts} if len(starts) > 1 else starts[0])
            elif operation.get("operationId") == "send_event" and events:
                _body(operation, {"anyOf": [*events, {"$ref": REF.format(model="EventRequest")}]})
    app.openapi_schema = schema
    return schema
