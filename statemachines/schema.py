"""The JSON Schema of the YAML/JSON definition format, for editors (`statemachines schema`).

Built from the pydantic spec models (statemachines.spec), then widened to what people write by
hand: the spec models accept shorthands (a transition written as its target's name, `action` for
one action, a single name where a list is expected, `effect` for one effect, an empty state) that
pydantic's own schema, which describes the normalised shape, would flag. Every property carries
a description (the reference is docs/definitions.md) so editors show help while typing.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from statemachines.spec import MachineSpec

SCHEMA_ID = "https://statemachines.dev/schema/definition.json"

#: (definition, property) -> help text. A property without one fails the tests.
DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("Machine", "name"): "The machine's name: how the engine, the CLI and the database refer to it.",
    ("Machine", "initial"): "The state a new instance starts in (a top-level state).",
    ("Machine", "states"): "Every state by name. A state with nothing to declare may be left empty.",
    ("Machine", "context"): "Registry name of the pydantic model of the instance's context (optional).",
    ("Machine", "events"): "Payload schemas: event name -> registry name of a pydantic model.",
    ("Machine", "description"): "Free text, shown in diagrams and documentation.",
    ("Machine", "version"): "A readable name for this version (default: a hash of the spec). Instances "
    "stay on the version they started on; see docs/versions.md.",
    ("State", "on"): "Transitions by event name: a target name, a transition, or a list of them "
    "(the first whose guard passes is taken). Quote `on` in YAML: a bare on: reads as true.",
    ("State", "after"): "Durable timers: duration (`30s`, `15m`, `24h`, `7d`) -> transition, fired as "
    "the event `after.<duration>` when the instance is still in this state entry.",
    ("State", "on_enter"): "Registry name(s) of actions run when the state is entered.",
    ("State", "on_exit"): "Registry name(s) of actions run when the state is left.",
    ("State", "effects"): "Side effects run after commit by a worker, at least once, with retries; "
    "they answer with the events `done.<name>` or `error.<name>`.",
    ("State", "effect"): "One effect (shorthand for `effects` with one item).",
    ("State", "final"): "A final state: entering it completes the instance (or, nested, its parent).",
    ("State", "description"): "Free text, shown in diagrams.",
    ("State", "initial"): "Statecharts: the child state entered first (compound states).",
    ("State", "states"): "Statecharts: child states, making this a compound (or parallel) state.",
    ("State", "type"): "Statecharts: `parallel` runs every child state (region) at once.",
    ("State", "history"): "Statecharts: makes this a history pseudo-state of its parent.",
    ("State", "always"): "Statecharts: eventless transitions, taken as soon as their guard holds.",
    ("State", "compensate"): "Entering it undoes the instance's succeeded effects (their `compensate` "
    "callables, newest first), then sends it `done.compensation`.",
    ("State", "max_rewinds"): "How many times an instance may be rewound to this state.",
    ("Transition", "target"): "The state entered; null for an internal transition (actions only, "
    "the state is not left). A short name or a dotted path in statecharts.",
    ("Transition", "guard"): "Registry name of a guard `(context, event) -> bool`; the transition is "
    "taken only when it returns true.",
    ("Transition", "actions"): "Registry name(s) of actions `(context, event)` run during the transition.",
    ("Transition", "action"): "One action (shorthand for `actions`).",
    ("Transition", "type"): "Statecharts: `internal` does not exit a compound source whose descendant "
    "is the target; `external` (the default) does.",
    ("Machine", "data"): "Executable content: the datamodel, data id -> expression, bound when an "
    "instance starts (docs/scxml.md).",
    ("Machine", "binding"): "Executable content: `late` binds a state's `data` when it is first "
    "entered; `early` (the default) binds all data at the start.",
    ("State", "enter_content"): "Executable content run on entry, after `on_enter` (docs/scxml.md).",
    ("State", "exit_content"): "Executable content run on exit, after `on_exit` (docs/scxml.md).",
    ("State", "data"): "Executable content: data this state declares, id -> expression.",
    ("State", "donedata"): "Executable content: the data of the done event a final state raises, "
    "`{params: [...]}` or `{content: {expr: ...}}`.",
    ("State", "initial_content"): "Executable content run when the state is entered through its "
    "`initial` (SCXML's <initial> transition), after `enter_content`.",
    ("History", "content"): "Executable content run when the history's default is taken.",
    ("Transition", "cond"): "Executable content: an expression that must hold (as well as `guard`).",
    ("Transition", "content"): "Executable content run after `actions` (docs/scxml.md).",
    ("Effect", "name"): "The effect's name, in `done.<name>`/`error.<name>` (default: `fn`).",
    ("Effect", "fn"): "Registry name of the function `(context, call) -> result` run by the worker.",
    ("Effect", "retry"): "How failed attempts are retried before `error.<name>` is sent.",
    ("Effect", "lease"): "How long one attempt may run before another worker may take it over.",
    ("Effect", "compensate"): "Registry name of `undo(context, call)`, run once this effect has "
    "succeeded and a `compensate: true` state is entered (a saga).",
    ("Retry", "max_attempts"): "Attempts in all, the first included.",
    ("Retry", "initial"): "Delay before the second attempt (a duration: `1s`, `5m`, ...).",
    ("Retry", "backoff"): "Each further delay is the previous one times this factor.",
    ("Retry", "max"): "The longest delay between two attempts.",
    ("Retry", "jitter"): "Up to this fraction is added at random to each delay (never subtracted).",
    ("History", "default"): "The state entered when the parent has no history yet.",
    ("History", "deep"): "Remember the whole nested configuration, not only the direct child.",
}

_TITLES = {
    "MachineSpec": "Machine",
    "StateSpec": "State",
    "TransitionSpec": "Transition",
    "EffectSpec": "Effect",
    "RetrySpec": "Retry",
    "HistorySpec": "History",
}
_NAMES = {"type": "string", "minLength": 1}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _one_or_many(item: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [item, {"type": "array", "items": item}]}


def definition_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a definition file, shorthands included."""
    raw = MachineSpec.model_json_schema(ref_template="#/$defs/{model}")
    defs = {_TITLES[k]: copy.deepcopy(v) for k, v in raw.pop("$defs").items()}
    defs["Machine"] = raw
    text = json.dumps(defs)
    for old, new in _TITLES.items():
        text = text.replace(f'"#/$defs/{old}"', f'"#/$defs/{new}"')
    defs = json.loads(text)

    machine, st, tr, effect, retry = (defs[k] for k in ("Machine", "State", "Transition", "Effect", "Retry"))
    # A transition: its target's name, or an object (with `action` for one action).
    tr["properties"]["action"] = _one_or_many(_NAMES)
    tr["properties"]["actions"] = _one_or_many(_NAMES)
    defs["TransitionObject"] = tr
    defs["Transition"] = {"anyOf": [{"type": "string", "description": "The target state's name."},
                                    _ref("TransitionObject")]}  # fmt: skip
    defs["Transitions"] = _one_or_many(_ref("Transition"))
    for key in ("on", "after"):
        st["properties"][key]["additionalProperties"] = _ref("Transitions")
    st["properties"]["always"] = _ref("Transitions")
    for key in ("on_enter", "on_exit"):
        st["properties"][key] = _one_or_many(_NAMES)
    st["properties"]["effects"] = _one_or_many(_ref("Effect"))
    st["properties"]["effect"] = _one_or_many(_ref("Effect"))
    st["properties"]["states"]["additionalProperties"] = _ref("StateOrEmpty")
    machine["properties"]["states"]["additionalProperties"] = _ref("StateOrEmpty")
    defs["StateOrEmpty"] = {"anyOf": [_ref("State"), {"type": "null"}]}
    # An effect: its function's name (also its name), or an object where `name` defaults to `fn`.
    effect["required"] = ["fn"]
    defs["EffectObject"] = effect
    defs["Effect"] = {"anyOf": [{"type": "string", "description": "The function's registry name."},
                                _ref("EffectObject")]}  # fmt: skip
    for key in ("initial", "max"):  # a duration: text, or a number of seconds
        retry["properties"][key].pop("type")
        retry["properties"][key]["anyOf"] = [{"type": "string"}, {"type": "number", "minimum": 0}]

    bodies = [machine, st, tr, effect, retry, defs["History"]]
    titles = ["Machine", "State", "Transition", "Effect", "Retry", "History"]
    for title, body in zip(titles, bodies, strict=True):
        body["title"] = title
        for prop, value in body["properties"].items():
            value.pop("title", None)
            value["description"] = DESCRIPTIONS[(title, prop)]
    defs.pop("Machine")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **machine,
        "title": "statemachines definition",
        "description": "A state machine definition for statemachines (see docs/definitions.md).",
        "$defs": dict(sorted(defs.items())),
    }


def schema_json() -> str:
    return json.dumps(definition_schema(), indent=2) + "\n"
