"""Declaring machines in Python: `machine`, `state`, `transition`, `Effect`, `Retry`.

The builders turn callables into names and hand a plain dict to `MachineSpec`, so a definition
written in Python and one loaded from YAML go through the same validation and the same checks.
"""

from __future__ import annotations

import hashlib
import math
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from statemachines.checks import find_problems
from statemachines.durations import Duration, format_duration
from statemachines.errors import DefinitionError, InvalidDuration
from statemachines.registry import Registry
from statemachines.spec import MachineSpec, RetrySpec

Guard = Callable[[Any, Any], bool]
Action = Callable[[Any, Any], Any]
Ref = str | Callable[..., Any]


def Retry(
    max_attempts: int = 3,
    initial: Duration = "1s",
    backoff: float = 2.0,
    max: Duration = "5m",
    jitter: float = 0.1,
) -> RetrySpec:
    """How an effect is retried; bad values raise `DefinitionError` naming them."""
    try:
        return RetrySpec(max_attempts=max_attempts, initial=initial, backoff=backoff, max=max, jitter=jitter)
    except ValidationError as exc:
        raise DefinitionError("Retry", _pydantic_problems(exc), what="retry policy") from None


@dataclass(frozen=True)
class Transition:
    """One arrow: `transition("shipped", guard=paid, action=[record])`; target None is internal.

    `internal=True` (statecharts) is SCXML's `type="internal"`: when the target is a descendant of
    the (compound) source, the source is not exited and re-entered.
    """

    target: str | None
    guard: Ref | None = None
    action: Ref | Sequence[Ref] | None = None
    internal: bool = False


@dataclass(frozen=True)
class Effect:
    """Work that talks to the outside world, run after commit by a worker, at least once."""

    fn: Ref
    retry: RetrySpec = field(default_factory=RetrySpec)
    name: str | None = None
    lease: Duration = "5m"
    #: `undo(context, call)`: run (through the outbox) when a `compensate=True` state is entered
    #: after this effect succeeded; see docs/rewind-and-compensation.md.
    compensate: Ref | None = None


@dataclass(frozen=True)
class State:
    on: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[Duration, Any] = field(default_factory=dict)
    on_enter: Ref | Sequence[Ref] | None = None
    on_exit: Ref | Sequence[Ref] | None = None
    effect: Effect | Sequence[Effect] | None = None
    final: bool = False
    description: str | None = None
    # Statecharts (docs/statecharts.md).
    initial: str | None = None
    states: Mapping[str, Any] = field(default_factory=dict)
    type: str | None = None
    history: Mapping[str, Any] | None = None
    always: Sequence[Any] = ()
    # Rewind and compensation (docs/rewind-and-compensation.md).
    compensate: bool = False
    max_rewinds: int | None = None


def transition(
    target: str | None,
    *,
    guard: Ref | None = None,
    action: Ref | Sequence[Ref] | None = None,
    internal: bool = False,
) -> Transition:
    return Transition(target, guard, action, internal)


def state(
    *,
    on: Mapping[str, Any] | None = None,
    after: Mapping[Duration, Any] | None = None,
    on_enter: Ref | Sequence[Ref] | None = None,
    on_exit: Ref | Sequence[Ref] | None = None,
    effect: Effect | Sequence[Effect] | None = None,
    final: bool = False,
    description: str | None = None,
    initial: str | None = None,
    states: Mapping[str, Any] | None = None,
    always: Any = None,
    compensate: bool = False,
    max_rewinds: int | None = None,
) -> State:
    """A state; with `states` (and their `initial`) a compound state; `always`: eventless transitions.

    `compensate=True`: entering it undoes the instance's succeeded effects (their `compensate`
    callables, newest first) and then sends it `done.compensation`. `max_rewinds=N`: an instance
    may be rewound to this state N times at most (`RewindLimit` after that)."""
    always_list = [] if always is None else list(always) if isinstance(always, list | tuple) else [always]
    return State(
        on or {}, after or {}, on_enter, on_exit, effect, final, description,
        initial=initial, states=states or {}, always=always_list,
        compensate=compensate, max_rewinds=max_rewinds,
    )  # fmt: skip


def parallel(
    regions: Mapping[str, Any],
    *,
    on: Mapping[str, Any] | None = None,
    after: Mapping[Duration, Any] | None = None,
    on_enter: Ref | Sequence[Ref] | None = None,
    on_exit: Ref | Sequence[Ref] | None = None,
    effect: Effect | Sequence[Effect] | None = None,
    description: str | None = None,
    always: Any = None,
) -> State:
    """A parallel state: every region (child) is active at once; `done.state.<path>` when all are final."""
    st = state(
        on=on, after=after, on_enter=on_enter, on_exit=on_exit, effect=effect,
        description=description, states=regions, always=always,
    )  # fmt: skip
    return replace(st, type="parallel")


def history(default: str | None = None, *, deep: bool = False) -> State:
    """A history pseudo-state of its parent: re-enters the last active child (deep: configuration)."""
    return State(history={"default": default, "deep": deep})


class Definition:
    """A checked machine: its spec (names only), the callables those names mean, a version hash."""

    def __init__(
        self,
        spec: MachineSpec,
        callables: Mapping[str, Callable[..., Any]],
        context_model: type[BaseModel] | None = None,
        event_schemas: Mapping[str, type[BaseModel]] | None = None,
    ) -> None:
        self.spec = spec
        self.callables = dict(callables)
        self.context_model = context_model
        self.event_schemas = dict(event_schemas or {})
        problems = find_problems(spec, self.callables)
        if context_model is not None and not (
            isinstance(context_model, type) and issubclass(context_model, BaseModel)
        ):
            problems.append(f"context {context_model!r} is not a pydantic model class")
        for event, schema in self.event_schemas.items():
            if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
                problems.append(f"payload schema of event {event!r} is not a pydantic model class")
        if problems:
            raise DefinitionError(spec.name, problems)
        #: The spec hash, unless the definition names its version (`machine(..., version="2")`).
        self.version = spec.version or hashlib.sha256(spec.canonical_json().encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return self.spec.name

    def to_json(self) -> str:
        return self.spec.to_json()

    def to_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json", exclude_defaults=True)

    def __repr__(self) -> str:
        return f"<Definition {self.name!r} version {self.version}, {len(self.spec.states)} states>"

    # Loading from data -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, registry: Mapping[str, Any] | None = None) -> Definition:
        """Build from plain data (parsed YAML/JSON); every name must be in `registry`."""
        registry = registry or Registry()
        name = data.get("name", "?") if isinstance(data, dict) else "?"
        name = name if isinstance(name, str) else reprlib.repr(name)  # any junk can be shown
        if not isinstance(data, dict):
            raise DefinitionError(str(name), [f"a definition must be a mapping, got {type(data).__name__}"])
        try:
            spec = MachineSpec.model_validate(data)
        except ValidationError as exc:
            raise DefinitionError(str(name), _pydantic_problems(exc)) from None
        return _resolve(spec, registry)


def _resolve(spec: MachineSpec, registry: Mapping[str, Any]) -> Definition:
    problems: list[str] = []
    context_model = None
    if spec.context is not None:
        context_model = registry.get(spec.context)
        if context_model is None:
            problems.append(f"context model {spec.context!r} is not in the registry")
    schemas: dict[str, type[BaseModel]] = {}
    for event, ref in spec.events.items():
        if ref in registry:
            schemas[event] = registry[ref]
        else:
            problems.append(f"payload schema {ref!r} of event {event!r} is not in the registry")
    callables = {n: registry[n] for n in spec.callable_names() if n in registry}
    problems += find_problems(spec, callables, list(registry))
    if problems:
        raise DefinitionError(spec.name, problems)
    return Definition(spec, callables, context_model, schemas)


def _pydantic_problems(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in err['loc']) or 'definition'}: {err['msg']}" for err in exc.errors()]


class _Names:
    """Gives each callable a stable name; two different callables may not share one."""

    def __init__(self, registry: Mapping[str, Any] | None) -> None:
        self.by_name: dict[str, Callable[..., Any]] = {}
        self.reverse = {id(v): k for k, v in (registry or {}).items()}
        self.registry = registry or {}
        self.problems: list[str] = []

    def ref(self, value: Ref) -> str:
        if isinstance(value, str):
            if value in self.registry:
                self.by_name[value] = self.registry[value]
            return value
        if not callable(value):
            self.problems.append(f"{value!r} is neither a callable nor a registry name")
            return repr(value)
        name = self.reverse.get(id(value)) or getattr(value, "__name__", None) or repr(value)
        if name == "<lambda>":
            code = getattr(value, "__code__", None)
            name = f"<lambda:{code.co_firstlineno if code else id(value)}>"
        other = self.by_name.get(name)
        if other is not None and other is not value:
            self.problems.append(f"two different callables are both named {name!r}")
        self.by_name[name] = value
        return name

    def refs(self, value: Ref | Sequence[Ref] | None) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str) or callable(value):
            return [self.ref(value)]
        return [self.ref(v) for v in value]


def machine(
    name: str,
    *,
    states: Mapping[str, State | Mapping[str, Any] | None],
    initial: str,
    context: type[BaseModel] | None = None,
    events: Mapping[str, type[BaseModel]] | None = None,
    registry: Mapping[str, Any] | None = None,
    description: str | None = None,
    version: str | None = None,
) -> Definition:
    """Declare and check a machine. Raises `DefinitionError` listing every problem.

    `version` names this version of the machine (instances stay pinned to the version they
    started on; see docs/versions.md); without it the version is the spec's hash."""
    label = name if isinstance(name, str) else reprlib.repr(name)  # any junk can be shown
    if not isinstance(states, Mapping):
        problem = f"states must be a mapping of names to state(...), got {type(states).__name__}"
        raise DefinitionError(label, [problem])
    names = _Names(registry)
    raw_states: dict[str, Any] = {}
    problems: list[str] = []
    for state_name, st in states.items():
        if isinstance(st, State):
            try:
                raw_states[state_name] = _state_dict(st, names)
            except InvalidDuration as exc:
                problems.append(f"state {state_name!r}: {exc}")
        else:
            raw_states[state_name] = st
    raw = {
        "name": name,
        "initial": initial,
        "states": raw_states,
        "context": context.__name__ if isinstance(context, type) else None,
        "events": {e: getattr(s, "__name__", repr(s)) for e, s in (events or {}).items()},
        "description": description,
        "version": version,
    }
    problems += names.problems
    try:
        spec = MachineSpec.model_validate(raw)
    except ValidationError as exc:
        raise DefinitionError(label, problems + _pydantic_problems(exc)) from None
    problems += find_problems(spec, names.by_name, list(registry or {}))
    if problems:
        raise DefinitionError(label, problems)
    return Definition(spec, names.by_name, context, events)


def _transition_dict(value: Any, names: _Names) -> Any:
    if isinstance(value, Transition):
        out = {
            "target": value.target,
            "guard": names.ref(value.guard) if value.guard is not None else None,
            "actions": names.refs(value.action),
        }
        return {**out, "type": "internal"} if value.internal else out
    if isinstance(value, list | tuple):
        return [_transition_dict(v, names) for v in value]
    return value


def _effect_dict(effect: Any, names: _Names) -> Any:
    if not isinstance(effect, Effect):
        return effect
    fn_name = names.ref(effect.fn)
    out = {
        "name": effect.name or fn_name,
        "fn": fn_name,
        "retry": effect.retry,
        "lease": _duration_text(effect.lease),
    }
    if effect.compensate is not None:
        out["compensate"] = names.ref(effect.compensate)
    return out


def _state_dict(st: State, names: _Names) -> dict[str, Any]:
    effects = st.effect if isinstance(st.effect, list | tuple) else [st.effect] if st.effect else []
    return {
        "on": {ev: _transition_dict(t, names) for ev, t in st.on.items()},
        "after": {_duration_key(k): _transition_dict(t, names) for k, t in st.after.items()},
        "on_enter": names.refs(st.on_enter),
        "on_exit": names.refs(st.on_exit),
        "effects": [_effect_dict(e, names) for e in effects],
        "final": st.final,
        "description": st.description,
        **_chart_dict(st, names),
    }


def _chart_dict(st: State, names: _Names) -> dict[str, Any]:
    """The statechart keys of a state, only those set (a flat state's dict is unchanged)."""
    out: dict[str, Any] = {}
    if st.states:
        kids = st.states.items()
        out["states"] = {n: _state_dict(c, names) if isinstance(c, State) else c for n, c in kids}
    if st.initial is not None:
        out["initial"] = st.initial
    if st.type is not None:
        out["type"] = st.type
    if st.history is not None:
        out["history"] = dict(st.history)
    if st.always:
        out["always"] = _transition_dict(list(st.always), names)
    if st.compensate:
        out["compensate"] = True
    if st.max_rewinds is not None:
        out["max_rewinds"] = st.max_rewinds
    return out


def _duration_key(key: Duration) -> str:
    if isinstance(key, timedelta | int | float):
        return _duration_text(key)
    return key


def _duration_text(value: Duration) -> str:
    """Canonical text for a duration; a bad one stays text so the checks report it in context.

    Raising here would drop the whole state and bury the real problem under spurious ones
    ("targets unknown state", "initial state is not declared").
    """
    try:
        return format_duration(value)
    except InvalidDuration:
        if isinstance(value, str | bool) or not isinstance(value, timedelta | int | float):
            return str(value)
        if isinstance(value, int):
            return f"{value}s"  # an int of any size is reported as too long, or not positive
        seconds = value.total_seconds() if isinstance(value, timedelta) else value
        if not math.isfinite(seconds):
            return str(seconds)  # 'nan', 'inf': reported as not a number and a unit
        return f"{seconds:f}".rstrip("0").rstrip(".") + "s"  # reported as too long, or not positive
