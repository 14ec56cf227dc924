"""Contexts and payloads as the engine stores them: validated, and proven storable as JSON.

One set of rules for every kind of machine: `CompiledMachine` (flat, on `transitions`) and
`CompiledChart` (statecharts) both call these, so a context or payload refused by one is refused
by the other, with the same error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from statemachines.errors import ContextInvalid, PayloadInvalid
from statemachines.storable import Unstorable, dumps, model_round_trip, model_text, short_errors


def validate_payload(schemas: Mapping[str, type[BaseModel]], event: str, payload: Any) -> Any:
    """The payload the event's schema makes of it (no schema: the payload, `{}` for None); a
    model must be storable JSON (no NaN/Infinity)."""
    schema = schemas.get(event)
    if schema is None:
        value = {} if payload is None else payload
    else:
        try:
            if isinstance(payload, schema):
                payload = payload.model_dump()
            value = schema.model_validate(payload if payload is not None else {})
        except ValidationError as exc:
            raise PayloadInvalid(event, short_errors(exc)) from None
        except RecursionError:
            raise PayloadInvalid(event, "nested too deeply") from None
    if isinstance(value, BaseModel):
        try:
            model_text(value)
        except Unstorable as exc:
            raise PayloadInvalid(event, str(exc)) from None
    return value


def new_context(machine: str, model: type[BaseModel] | None, context: Any) -> tuple[Any, str]:
    """Validate a context given to `start`; returns (object, JSON), the JSON proven to read
    back into the context model (or, without one, to be plain JSON without NaN/Infinity)."""
    if model is None:
        if isinstance(context, BaseModel):
            context = json.loads(plain_json(machine, context))
        if context is not None and not isinstance(context, Mapping):
            raise ContextInvalid(
                machine,
                f"a machine without a context model takes a dict, got {type(context).__name__}",
            )
        ctx = dict(context or {})
        return ctx, plain_json(machine, ctx)
    try:
        if isinstance(context, model):
            context = context.model_dump()
        ctx = model.model_validate(context if context is not None else {})
        return model_round_trip(model, ctx)
    except ValidationError as exc:
        raise ContextInvalid(machine, short_errors(exc)) from None
    except RecursionError:
        raise ContextInvalid(machine, "nested too deeply") from None
    except Unstorable as exc:
        raise ContextInvalid(machine, str(exc)) from None


def context_out(
    machine: str,
    model: type[BaseModel] | None,
    ctx: Any,
    event: str | None = None,
    callbacks: list[str] | None = None,
) -> tuple[str, Any]:
    """(JSON, object) of a context after callbacks changed it, proven storable (and, with a
    model, to validate again: the object returned is the re-read one)."""
    if model is None:
        return plain_json(machine, ctx, event, callbacks), ctx
    try:
        checked, text = model_round_trip(model, ctx)
    except Unstorable as exc:
        raise ContextInvalid(machine, str(exc), event=event, callbacks=callbacks or ()) from None
    return text, checked


def plain_json(machine: str, ctx: Any, event: str | None = None, callbacks: list[str] | None = None) -> str:
    """JSON of a context without a model (or of a model given for one): storable or refused."""
    try:
        return model_text(ctx) if isinstance(ctx, BaseModel) else dumps(ctx)
    except Unstorable as exc:
        if event is None:
            raise ContextInvalid(machine, str(exc)) from None
        raise ContextInvalid(machine, str(exc), event=event, callbacks=callbacks or ()) from None
