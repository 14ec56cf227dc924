"""The serialisable shape of a definition: pydantic models that dump to (and load from) JSON/YAML.

Callables appear here only by name; `Definition` pairs a spec with the callables it names.
Shorthands people write by hand are normalised here, so YAML and Python builders share one schema:
a transition may be just a target name, a dict, or a list of either; `action`/`on_enter` may be a
single name or a list.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from statemachines import content_spec
from statemachines.names import MAX_NAME_LENGTH, storable


def one_or_many(value: Any, empty: str) -> Any:
    """SCXML allows several targets (or initial states) where one is usual: a one-item list is
    stored as that item, so definitions without the feature keep their JSON (and version hash)."""
    if isinstance(value, list):
        if not value:
            raise ValueError(empty)
        return value[0] if len(value) == 1 else value
    return value


def _as_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str | dict):
        return [value]
    return value


class RetrySpec(BaseModel):
    """How an effect is retried: exponential backoff with jitter, never earlier than scheduled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=1000)
    initial: str = "1s"
    backoff: float = Field(default=2.0, ge=1.0, le=100.0)
    max: str = "5m"
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)

    @field_validator("initial", "max", mode="before")
    @classmethod
    def _duration_text(cls, value: Any) -> Any:
        from statemachines.durations import format_duration

        return format_duration(value) if not isinstance(value, str) else value


class TransitionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Statecharts may name several targets (SCXML's `target="a b"`: states in different regions
    #: of a parallel state); a list of one is stored as its one name.
    target: str | list[str] | None
    guard: str | None = None
    actions: list[str] = Field(default_factory=list)
    #: SCXML's transition type: "internal" does not exit a compound source when the target is its
    #: descendant (statecharts only; see docs/statecharts.md). Not `internal`, which means targetless.
    type: Literal["external", "internal"] = "external"
    #: Executable content (statecharts): a condition in the expression language, which must hold
    #: as well as `guard`, and a block run after `actions` (`statemachines.content_spec`).
    cond: str | None = None
    content: list[dict[str, Any]] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _omit_chart_defaults(self, handler: Any) -> Any:
        return _omit_defaults(handler(self), {"type": "external", "cond": None, "content": []})

    @field_validator("target", mode="after")
    @classmethod
    def _one_target(cls, value: Any) -> Any:
        return one_or_many(value, "an empty list of targets; write null for a targetless transition")

    @property
    def targets(self) -> list[str]:
        """Every target name (none for a targetless transition)."""
        if self.target is None:
            return []
        return [self.target] if isinstance(self.target, str) else list(self.target)

    @field_validator("cond", mode="before")
    @classmethod
    def _cond_syntax(cls, value: Any) -> Any:
        if isinstance(value, str):
            content_spec.expression_problem(value, "cond")
        return value

    @field_validator("content", mode="before")
    @classmethod
    def _content_block(cls, value: Any) -> Any:
        return content_spec.normalise_block(value, "content")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"target": value}
        if isinstance(value, dict) and "action" in value:
            value = dict(value)
            actions = _as_list(value.pop("action"))
            value["actions"] = [*actions, *_as_list(value.get("actions"))]
        return value

    @field_validator("actions", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @property
    def internal(self) -> bool:
        return self.target is None


class EffectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    fn: str = Field(min_length=1)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    lease: str = "5m"
    #: The callable that undoes this effect once it has succeeded (sagas:
    #: docs/rewind-and-compensation.md); omitted from dumps when unset, so versions do not move.
    compensate: str | None = None

    @model_serializer(mode="wrap")
    def _omit_unset_compensation(self, handler: Any) -> Any:
        return _omit_defaults(handler(self), {"compensate": None})

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value, "fn": value}
        if isinstance(value, dict) and "name" not in value and "fn" in value:
            return {**value, "name": value["fn"]}
        return value


class HistorySpec(BaseModel):
    """A history pseudo-state: re-enters what its parent last had active (`default` before that)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: str | None = None  # required, but reported by the checks with the other problems
    deep: bool = False
    #: Executable content run when the default is taken (SCXML: the history's transition content),
    #: after the parent's entry content.
    content: list[dict[str, Any]] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _omit_content_default(self, handler: Any) -> Any:
        return _omit_defaults(handler(self), {"content": []})

    @field_validator("content", mode="before")
    @classmethod
    def _content_block(cls, value: Any) -> Any:
        return content_spec.normalise_block(value, "history.content")


#: Statechart fields of a state and their defaults: dropped from every dump when at the default, so
#: a flat machine serialises (and hashes to its version) exactly as before statecharts existed.
_CHART_STATE_DEFAULTS: dict[str, Any] = {
    "initial": None,
    "states": {},
    "type": None,
    "history": None,
    "always": [],
    # Rewind and compensation (docs/rewind-and-compensation.md): omitted too when unset.
    "compensate": False,
    "max_rewinds": None,
    "enter_content": [],
    "exit_content": [],
    "data": {},
    "donedata": None,
    "initial_content": [],
}

#: Machine-level fields added with executable content, omitted at their defaults (same reason).
_CONTENT_MACHINE_DEFAULTS: dict[str, Any] = {"data": {}, "binding": None}


def _omit_defaults(data: Any, defaults: dict[str, Any]) -> Any:
    if isinstance(data, dict):
        for key, default in defaults.items():
            if key in data and data[key] == default:
                del data[key]
    return data


class StateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on: dict[str, list[TransitionSpec]] = Field(default_factory=dict)
    after: dict[str, list[TransitionSpec]] = Field(default_factory=dict)
    on_enter: list[str] = Field(default_factory=list)
    on_exit: list[str] = Field(default_factory=list)
    effects: list[EffectSpec] = Field(default_factory=list)
    final: bool = False
    description: str | None = None
    # Statecharts (docs/statecharts.md): children, the child entered first, parallel regions,
    # history pseudo-states and eventless transitions.
    #: A child's name, a dotted path below (SCXML's deep initial), or several of those (SCXML's
    #: `initial="a b"`: states in different regions of a parallel state below).
    initial: str | list[str] | None = None
    states: dict[str, StateSpec] = Field(default_factory=dict)
    type: Literal["parallel"] | None = None
    history: HistorySpec | None = None
    always: list[TransitionSpec] = Field(default_factory=list)
    #: Entering this state compensates the instance's succeeded effects (a saga's undo step).
    compensate: bool = False
    #: How many times an instance may be rewound to this state (None: no limit).
    max_rewinds: int | None = Field(default=None, ge=1, le=1_000_000)
    # Executable content (docs/scxml.md): blocks run on entry and exit, after `on_enter`/`on_exit`;
    # data declared by this state (late binding: bound when it is first entered); the data of
    # the done event a final state raises.
    enter_content: list[dict[str, Any]] = Field(default_factory=list)
    exit_content: list[dict[str, Any]] = Field(default_factory=list)
    data: dict[str, str | None] = Field(default_factory=dict)
    donedata: dict[str, Any] | None = None
    #: Run when the state is entered by its `initial` (SCXML's `<initial>` transition content),
    #: after its entry content.
    initial_content: list[dict[str, Any]] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _omit_chart_defaults(self, handler: Any) -> Any:
        return _omit_defaults(handler(self), _CHART_STATE_DEFAULTS)

    @field_validator("initial", mode="after")
    @classmethod
    def _one_initial(cls, value: Any) -> Any:
        return one_or_many(value, "an empty list of initial states")

    @field_validator("enter_content", "exit_content", "initial_content", mode="before")
    @classmethod
    def _content_block(cls, value: Any, info: Any) -> Any:
        return content_spec.normalise_block(value, info.field_name)

    @field_validator("data", mode="before")
    @classmethod
    def _datamodel(cls, value: Any) -> Any:
        return content_spec.normalise_data(value)

    @field_validator("donedata", mode="before")
    @classmethod
    def _donedata(cls, value: Any) -> Any:
        return content_spec.normalise_donedata(value)

    @property
    def is_chart(self) -> bool:
        """Uses any statechart feature (itself, not its children)."""
        return bool(
            self.states
            or self.initial is not None
            or self.type is not None
            or self.history is not None
            or self.always
            or any(t.type == "internal" for group in (*self.on.values(), *self.after.values()) for t in group)
            or self.uses_content
        )

    @property
    def uses_content(self) -> bool:
        """Executable content, conditions, data or several targets. (Event descriptors are not a
        reason: a flat machine keeps exact event names, spaces and `*` included.)"""
        return bool(
            self.enter_content
            or self.exit_content
            or self.data
            or self.donedata is not None
            or self.initial_content
            or (self.history is not None and self.history.content)
            or any(t.cond is not None or t.content or isinstance(t.target, list) for t in self.transitions())
        )

    def transitions(self) -> list[TransitionSpec]:
        """Every transition the state declares (`on`, `after`, `always`), in that order."""
        return [t for group in (*self.on.values(), *self.after.values(), self.always) for t in group]

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict) and True in value and "on" not in value:
            # YAML 1.1 reads a bare `on:` key as the boolean true.
            value = {("on" if k is True else k): v for k, v in value.items()}
        if isinstance(value, dict) and "effect" in value:
            value = dict(value)
            value["effects"] = [*_as_list(value.pop("effect")), *_as_list(value.get("effects"))]
        return value

    @field_validator("on", "after", mode="before")
    @classmethod
    def _listify_transitions(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {str(k): _as_list(v) for k, v in value.items()}
        return value

    @field_validator("on_enter", "on_exit", "effects", "always", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("states", mode="before")
    @classmethod
    def _no_children(cls, value: Any) -> Any:
        return {} if value is None else value


class MachineSpec(BaseModel):
    """A whole machine, as stored in the `definitions` table and in YAML/JSON files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    #: Statecharts may start in several states at once (SCXML `initial="a b"`: states in different
    #: regions of a parallel state), or in a state deeper down (a dotted path).
    initial: str | list[str]
    states: dict[str, StateSpec]
    context: str | None = None
    events: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    #: A readable version name (`machine(..., version="2")`); None: the spec hash names it.
    version: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("version")
    @classmethod
    def _version_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or not storable(value)):
            raise ValueError("a version name must be storable, non-blank text")
        return value

    #: The machine's datamodel (SCXML `<datamodel>` of `<scxml>`): data id -> expression, bound
    #: when an instance starts; `binding: late` binds the data of a state when it is entered first.
    data: dict[str, str | None] = Field(default_factory=dict)
    binding: Literal["early", "late"] | None = None

    @model_serializer(mode="wrap")
    def _omit_content_defaults(self, handler: Any) -> Any:
        return _omit_defaults(handler(self), _CONTENT_MACHINE_DEFAULTS)

    @field_validator("data", mode="before")
    @classmethod
    def _datamodel(cls, value: Any) -> Any:
        return content_spec.normalise_data(value)

    @field_validator("initial", mode="after")
    @classmethod
    def _one_initial(cls, value: Any) -> Any:
        return one_or_many(value, "an empty list of initial states")

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=True, indent=2)

    def canonical_json(self) -> str:
        """Key-sorted compact JSON: the input of the definition's version hash. The version name
        is left out, so naming a version changes no hash (nor any stored instance's version)."""
        import json

        data = self.model_dump(mode="json")
        data.pop("version", None)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def walk(self) -> Iterator[tuple[str, StateSpec]]:
        """Every state with its dotted path, in document order (a parent before its children)."""
        todo = [(name, st) for name, st in reversed(self.states.items())]
        while todo:
            path, st = todo.pop()
            yield path, st
            todo.extend((f"{path}.{name}", child) for name, child in reversed(st.states.items()))

    @property
    def is_chart(self) -> bool:
        """Nested, parallel, history or eventless states anywhere: checked and run as a statechart."""
        return bool(self.data or self.binding or isinstance(self.initial, list)) or any(
            st.is_chart for _path, st in self.walk()
        )

    def callable_names(self) -> set[str]:
        names: set[str] = set()
        for _path, st in self.walk():
            names.update(st.on_enter)
            names.update(st.on_exit)
            names.update(e.fn for e in st.effects)
            names.update(e.compensate for e in st.effects if e.compensate)
            for group in (*st.on.values(), *st.after.values(), st.always):
                for t in group:
                    names.update(t.actions)
                    if t.guard:
                        names.add(t.guard)
        return names
