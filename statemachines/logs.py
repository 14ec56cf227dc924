"""Worker logs: text lines for people (the default), or one JSON object per line for machines.

Timers and effects log each action with its facts attached (`extra=action(...)`): the machine,
instance, event, outcome and duration. The text format shows the message as before; the JSON
format (`statemachines worker --log-format json`) writes those facts as fields, with timestamp and
level, so log pipelines need no parsing. The `transitions` library's own lines stay out either way.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
_FIELD = "statemachines_action"


def action(
    kind: str,
    machine: str | None,
    instance: str,
    event: str,
    outcome: str,
    started: float | None = None,
    **more: Any,
) -> dict[str, Any]:
    """The `extra=` of one action's log line; `started` is a `time.perf_counter()` reading."""
    facts: dict[str, Any] = {
        "action": kind,
        "machine": machine,
        "instance": instance,
        "event": event,
        "outcome": outcome,
    }
    if started is not None:
        facts["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    facts.update(more)
    return {_FIELD: facts}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp (UTC, ISO 8601), level, logger, message, the action's
    facts when it has some, and the traceback (`exception`) when one was logged."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(getattr(record, _FIELD, None) or {})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def configure_logging(log_format: str = "text") -> None:
    """INFO lines for the worker's own loggers, on stderr; the `transitions` library stays at
    WARNING (at INFO it logs every callback it runs, with user function reprs: noise).

    Called by the CLI only: importing `statemachines` never touches the root logger."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, got {log_format!r}")
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("transitions").setLevel(logging.WARNING)
