"""A small HTML form built from an event's payload schema, for the person behind a callback URL.

Fields follow the JSON schema of the payload model: text for strings, number inputs for numbers,
a checkbox for booleans, a select for enums, a JSON textarea for anything else (or for the whole
payload when the event declares no model). Every string that reaches the page is escaped.
`payload_from_form` turns the submitted fields back into the JSON payload the engine validates.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from statemachines.errors import PayloadInvalid

RAW = "__payload__"  # the field holding a whole JSON payload (no schema, or a complex one)


def _kind(prop: dict[str, Any]) -> tuple[str, bool]:
    """(kind, nullable) of a property: string, integer, number, boolean, enum or json."""
    options = prop.get("anyOf")
    nullable = False
    if isinstance(options, list):
        rest = [o for o in options if o.get("type") != "null"]
        nullable = len(rest) < len(options)
        if len(rest) != 1:
            return "json", nullable
        prop = rest[0]
    if "enum" in prop:
        return "enum", nullable
    kind = prop.get("type")
    return (kind if kind in ("string", "integer", "number", "boolean") else "json"), nullable


def fields(schema: dict[str, Any] | None) -> list[tuple[str, str, bool, dict[str, Any]]]:
    """(name, kind, required, property) per field; one raw JSON field without a usable schema."""
    if not schema or schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        return [(RAW, "json", False, {"title": "payload (JSON)"})]
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        kind, nullable = _kind(prop if isinstance(prop, dict) else {})
        out.append((name, kind, name in required and not nullable, prop))
    return out


def _input(name: str, kind: str, required: bool, prop: dict[str, Any]) -> str:
    n = escape(name)
    req = " required" if required else ""
    if kind == "boolean":
        return f'<input type="checkbox" name="{n}" value="true">'
    if kind == "enum":
        options = prop.get("enum") or next(o for o in prop["anyOf"] if "enum" in o)["enum"]
        opts = "".join(f'<option value="{escape(json.dumps(o))}">{escape(str(o))}</option>' for o in options)
        return f'<select name="{n}"{req}>{opts}</select>'
    if kind in ("integer", "number"):
        step = "1" if kind == "integer" else "any"
        return f'<input type="number" step="{step}" name="{n}"{req}>'
    if kind == "string":
        return f'<input type="text" name="{n}"{req}>'
    return f'<textarea name="{n}" rows="4" cols="40"{req}></textarea>'


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}"
        "label{display:block;margin:.6em 0}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def render_form(
    event: str, machine: str, instance_id: str, state: str, schema: dict[str, Any] | None, expires: str
) -> str:
    """The page a callback URL shows: what it will do, and a field per payload property."""
    rows = []
    for name, kind, required, prop in fields(schema):
        label = escape(str(prop.get("title") or name)) + (" *" if required else "")
        rows.append(f"<label>{label} {_input(name, kind, required, prop)}</label>")
    intro = (
        f"<p>Send <strong>{escape(event)}</strong> to <code>{escape(instance_id)}</code>"
        f" ({escape(machine)}, now in state <code>{escape(state)}</code>). This link works once,"
        f" until {escape(expires)}.</p>"
    )
    form = f'<form method="post">{"".join(rows)}<button type="submit">{escape(event)}</button></form>'
    return page(f"{event}: {instance_id}", intro + form)


def payload_from_form(schema: dict[str, Any] | None, form: dict[str, str]) -> Any:
    """The JSON payload the submitted fields mean; `PayloadInvalid` for a field that is not."""
    spec = fields(schema)
    if spec[0][0] == RAW:
        text = form.get(RAW, "").strip()
        return _json(RAW, text) if text else None
    payload: dict[str, Any] = {}
    for name, kind, _required, _prop in spec:
        raw = form.get(name)
        if kind == "boolean":
            payload[name] = raw is not None
            continue
        if raw is None or raw == "":
            continue  # omitted: the model's default, or the engine's 422 naming the field
        if kind == "integer":
            payload[name] = _number(name, raw, int)
        elif kind == "number":
            payload[name] = _number(name, raw, float)
        elif kind in ("enum", "json"):
            payload[name] = _json(name, raw)
        else:
            payload[name] = raw
    return payload


def _number(name: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise PayloadInvalid(
            name, f"field {name!r}: {raw!r} is not a{'n integer' if kind is int else ' number'}"
        ) from None


def _json(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise PayloadInvalid(name, f"field {name!r} is not valid JSON: {exc}") from None
