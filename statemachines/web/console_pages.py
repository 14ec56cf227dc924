"""What each console page shows, gathered from the engine's public queries (and the console's
own list queries): plain dicts for the templates, no HTTP here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from diagrams import DiagramError
from statemachines import errors
from statemachines.web.console_diagrams import StateCounts, definition_svg, run_svg, state_rows
from statemachines.web.console_queries import STATUSES, ConsoleQueries, Query

COLUMNS = ("id", "machine", "state", "status", "version", "updated")
SVG_CACHE = 64  # machine diagrams remembered (then the memory starts over)
HISTORY_SHOWN = 500  # newest history records on an instance page (the API pages through all)


@dataclass(frozen=True)
class ActionField:
    name: str
    label: str
    required: bool = False
    kind: str = "text"  # the <input> type: "text", or "checkbox" for a yes/no option


@dataclass(frozen=True)
class Action:
    """An instance action beyond cancel and retry that takes arguments from its form."""

    name: str  # the Engine method, and the last segment of the form's URL
    label: str
    scope: str
    fields: tuple[ActionField, ...] = field(default_factory=tuple)


#: The admin actions drawn from this table (cancel and retry have hand-written forms).
FORM_ACTIONS = (
    Action(
        "rewind", "Rewind", "admin",
        (ActionField("to", "to seq or state", True), ActionField("reason", "reason (optional)"),
         ActionField("reopen", "reopen if closed", kind="checkbox")),
    ),
    Action(
        "migrate", "Migrate", "admin",
        (ActionField("version", "version (empty: latest)"), ActionField("reason", "reason (optional)")),
    ),
)  # fmt: skip


def payload_hint(model: Any) -> str | None:
    """`{"amount": number, "note": string}` from an event's payload model, for the form."""
    try:
        schema = model.model_json_schema()
    except Exception:  # a model pydantic cannot describe: no hint, the form still works
        return None
    props = schema.get("properties") or {}
    if not props:
        return None
    parts = [f'"{name}": {spec.get("type", "value")}' for name, spec in props.items()]
    return "{" + ", ".join(parts) + "}"


class Pages:
    """Page data for one engine."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.queries = ConsoleQueries(engine)
        self._svgs: dict[tuple[Any, ...], Any] = {}

    def machines(self, link: str) -> dict[str, Any]:
        """Every stored machine with its versions and its latest definition drawn with counts;
        each state links to `link` (the instances list) filtered to it."""
        machines = []
        for entry in self.queries.machines():
            name = entry["name"]
            rows = self.queries.counts(name)
            item: dict[str, Any] = {**entry, "svg": None, "error": None}
            try:
                spec = self.engine.stored_spec(name)
                item["svg"], counts = self._drawn(spec, entry["versions"][0]["version"], rows, link)
                item["states"] = state_rows(spec, counts)
            except (DiagramError, errors.StateMachineError) as exc:
                counts = StateCounts.of(rows)
                item["error"] = str(exc)
                item["states"] = [{"state": s, **per} for s, per in counts.by_state.items()]
            item["totals"] = {status: counts.total(status) for status in STATUSES}
            machines.append(item)
        return {"machines": machines, "statuses": STATUSES, "nav": "machines"}

    def _drawn(self, spec: Any, version: str, rows: list[tuple[str, str, int]], link: str) -> Any:
        """`definition_svg`, remembered while the version and the counts stay the same: the
        machines page is reloaded far more often than instances move, and `dot` takes tens of
        milliseconds per diagram."""
        key = (spec.name, version, tuple(sorted(rows)), link)
        found = self._svgs.get(key)
        if found is None:
            if len(self._svgs) >= SVG_CACHE:
                self._svgs.clear()
            found = self._svgs[key] = definition_svg(spec, rows, link)
        return found

    def instances(self, params: Any) -> dict[str, Any]:
        query = Query.parse(params)
        page = self.queries.page(query)
        names = [m["name"] for m in self.queries.machines()]
        nav = "failed" if query.status == "failed" else "instances"
        return {
            "query": query,
            "page": page,
            "columns": COLUMNS,
            "statuses": STATUSES,
            "machine_names": names,
            "nav": nav,
        }

    def instance(self, instance_id: str) -> dict[str, Any]:
        engine = self.engine
        status = engine.status(instance_id)
        snapshot = status.snapshot
        history = engine.history(instance_id)
        attempts = engine.effect_attempts(instance_id)
        diagram, diagram_error = None, None
        try:
            diagram = run_svg(engine, instance_id)
        except (DiagramError, errors.StateMachineError) as exc:
            diagram_error = str(exc)
        hints: dict[str, str] = {}
        compiled = engine.runtime.machines.get(snapshot.machine)
        if compiled is not None:
            for event, model in compiled.definition.event_schemas.items():
                hint = payload_hint(model)
                if hint:
                    hints[event] = hint
        return {
            "s": snapshot,
            "status": status,
            "effects": status.effects,
            "attempts": attempts,
            "history": history[-HISTORY_SHOWN:],
            "history_total": len(history),
            "context": json.loads(snapshot.context_json),
            "diagram": diagram,
            "diagram_error": diagram_error,
            "fingerprint": self.queries.fingerprint(instance_id) or "",
            "now": engine.clock.now(),
            "payload_hints": hints,
            "form_actions": FORM_ACTIONS,
            "nav": "instances",
        }
