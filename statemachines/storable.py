"""JSON the engine may store: contexts and payloads that read back as what was written.

JSON has no NaN or Infinity: `json` writes them as bare `NaN` (not JSON at all, so `history
--json` breaks) and pydantic writes them as `null` (so a `float` field no longer validates and
`get()` fails). Values pydantic cannot serialise at all (an `object()`, undecodable bytes, data
nested too deeply) raise its own errors. Here each of these becomes `Unstorable` with a reason,
which the caller turns into `ContextInvalid` or `PayloadInvalid` before anything is written.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ValidationError

_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class Unstorable(ValueError):
    """A value that cannot be stored as JSON and read back; the message says why."""


def dumps(value: Any) -> str:
    """Compact JSON of plain data (dicts, lists, numbers, text), refusing NaN and Infinity."""
    try:
        return _encode(value)
    except RecursionError:
        raise Unstorable("nested too deeply to store as JSON") from None
    except (TypeError, ValueError) as exc:
        path = _non_finite(value)
        if path is not None:
            raise Unstorable(_non_finite_reason(path)) from None
        raise Unstorable(f"not JSON-serialisable: {exc}") from None


def model_text(obj: BaseModel) -> str:
    """The model's JSON; refuses what pydantic would silently write as `null` (NaN, Infinity)."""
    try:
        text = obj.model_dump_json(warnings=False)
    except RecursionError:
        raise Unstorable("nested too deeply to store as JSON") from None
    except Exception as exc:  # pydantic's serialisation errors: object(), undecodable bytes...
        raise Unstorable(f"not JSON-serialisable: {exc}") from None
    if "null" in text:  # the only way a non-finite float shows in pydantic's JSON
        path = _non_finite(obj.model_dump())
        if path is not None:
            raise Unstorable(_non_finite_reason(path))
    return text


def model_round_trip(model: type[BaseModel], obj: BaseModel) -> tuple[BaseModel, str]:
    """`(re-read object, JSON)`: the JSON that will be stored, proven to validate into `model`
    again (so `get()` can always load it); the re-read object is what a reader would see."""
    text = model_text(obj)
    try:
        return model.model_validate_json(text), text
    except ValidationError as exc:
        raise Unstorable(short_errors(exc)) from None
    except RecursionError:
        raise Unstorable("nested too deeply to read back from JSON") from None


def short_errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())


def _non_finite_reason(path: str) -> str:
    return f"{path or 'value'} is NaN or Infinity, which JSON cannot store"


def _non_finite(value: Any, path: str = "") -> str | None:
    """The path of the first NaN/Infinity in plain data, or None."""
    try:
        if isinstance(value, float):
            return None if math.isfinite(value) else path
        if isinstance(value, dict):
            items: Any = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
        elif isinstance(value, list | tuple | set | frozenset):
            items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
        else:
            return None
        for sub_path, item in items:
            found = _non_finite(item, sub_path)
            if found is not None:
                return found
    except RecursionError:
        return None
    return None
