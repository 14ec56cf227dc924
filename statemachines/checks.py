"""Definition-time checks: every mistake in a machine is reported when it is built, all at once."""

from __future__ import annotations

from collections.abc import Collection

from statemachines.durations import parse_duration
from statemachines.errors import InvalidDuration
from statemachines.names import (
    MAX_NAME_LENGTH,
    MODEL_ATTRIBUTE_EVENTS,
    WILDCARD_STATES,
    closest,
    did_you_mean,
    name_problem,
)
from statemachines.spec import MachineSpec, StateSpec, TransitionSpec

#: Events the engine sends itself (timers, effect results): definitions declare transitions for
#: them, but `send` refuses them, so a caller cannot fake a timer or an effect's result.
RESERVED_PREFIXES = ("after.", "done.", "error.")


def timer_event(label: str) -> str:
    """The event name a timer fires: `after.7d`."""
    return f"after.{label}"


def outgoing(st: StateSpec) -> list[tuple[str, list[TransitionSpec]]]:
    """Every (event, transitions) leaving a state, timers included."""
    return [*st.on.items(), *((timer_event(k), v) for k, v in st.after.items())]


def find_problems(
    spec: MachineSpec, known_callables: Collection[str], registry_names: Collection[str] = ()
) -> list[str]:
    """Every problem of `spec`; `registry_names` only feed "did you mean" for unknown callables."""
    if spec.is_chart:  # nested, parallel, history or eventless states: the statechart checks
        from statemachines.chart.checks import chart_problems

        return chart_problems(spec, known_callables)
    problems = [p for p in [name_problem("the machine", spec.name)] if p]
    states = spec.states
    if not states:
        problems.append("no states declared")
    if spec.initial not in states:
        problems.append(
            f"initial state {spec.initial!r} is not a declared state{did_you_mean(spec.initial, states)}"
        )
    for name, st in states.items():
        problems.extend(_state_problems(name, st, states))
    problems.extend(_duration_problems(spec))
    problems.extend(_unreachable(spec))
    candidates = {*known_callables, *registry_names}
    for missing in sorted(spec.callable_names() - set(known_callables)):
        problems.append(f"callable {missing!r} is not in the registry{did_you_mean(missing, candidates)}")
    used_events = {ev for st in states.values() for ev in st.on}
    for event in sorted(set(spec.events) - used_events):
        suggestion = did_you_mean(event, used_events)
        problems.append(f"payload schema declared for event {event!r}, which no state handles{suggestion}")
    return problems


def _state_problems(name: str, st: StateSpec, states: dict[str, StateSpec]) -> list[str]:
    problems = _name_problems(name, st)
    if st.final and (st.on or st.after or st.effects):
        problems.append(f"final state {name!r} has outgoing transitions, timers or effects")
    for event, group in outgoing(st):
        if not group:
            problems.append(f"state {name!r}: event {event!r} has no transition")
        for t in group:
            if t.target is not None and t.target not in states:
                problems.append(
                    f"state {name!r}: event {event!r} targets unknown state {t.target!r}"
                    + did_you_mean(t.target, states)
                )
        shadowed = shadow_problem(f"state {name!r}", event, group)
        if shadowed is not None:
            problems.append(shadowed)
    names = [e.name for e in st.effects]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"state {name!r} declares effect {dup!r} twice")
    problems.extend(compensation_problems(f"state {name!r}", st))
    return problems


#: The event a `compensate=True` state receives once every compensation it armed has succeeded.
COMPENSATION_DONE = "done.compensation"


def compensation_problems(where: str, st: StateSpec) -> list[str]:
    """A compensating state must say where the instance goes once compensated (else it would
    wait forever), cannot be final (final states arm nothing), and `compensation` is the name of
    its `done.` event, so no effect of it may take that name (flat and charts)."""
    problems: list[str] = []
    if st.compensate:
        if st.final:
            problems.append(f"final {where} cannot be compensate=True: a final state arms nothing")
        elif COMPENSATION_DONE not in st.on:
            problems.append(
                f"{where} is compensate=True but handles no {COMPENSATION_DONE!r}: declare where the"
                " instance goes once its effects are compensated"
            )
    if any(e.name == "compensation" for e in st.effects) and st.compensate:
        problems.append(f"{where}: an effect may not be named 'compensation' in a compensate=True state")
    return problems


def shadow_problem(where: str, event: str, group: list[TransitionSpec]) -> str | None:
    """The first unguarded transition of `event` followed by others, which it makes dead: the
    first transition whose guard passes wins, and an unguarded one always passes. (A `cond`
    expression guards a transition as well.)"""
    for i, t in enumerate(group[:-1]):
        if t.guard is None and t.cond is None:
            later = (
                "another unguarded transition"
                if any(u.guard is None and u.cond is None for u in group[i + 1 :])
                else "the guarded transitions after it"
            )
            return f"{where}: event {event!r} has an unguarded transition that shadows {later}"
    return None


def _name_problems(name: str, st: StateSpec) -> list[str]:
    """Names of the state, its events and its effects: storable, sendable, not special."""
    where = f"state {name[:40]!r}"
    problems = [name_problem("a state", name)]
    if name in WILDCARD_STATES:
        problems.append(f"{where} is reserved: the transitions library reads it as a wildcard")
    effects = [e.name for e in st.effects] + (["compensation"] if st.compensate else [])
    for event in st.on:
        problem = event_problem(where, event, effects)
        if problem is None and event in MODEL_ATTRIBUTE_EVENTS:
            problem = f"{where}: event {event!r} is reserved: the transitions library keeps the state in it"
        problems.append(problem)
    problems.extend(name_problem(f"{where}: an effect", eff.name) for eff in st.effects)
    return [p for p in problems if p]


def event_problem(
    where: str,
    event: str,
    effects: Collection[str],
    done_states: Collection[str] = (),
    *,
    nested: bool = False,
) -> str | None:
    """Why a state cannot declare `event` in `on`: its name (storable, length-limited), or a
    reserved event that would never fire. `effects`: the effects whose `done.x`/`error.x` the
    state may handle; `done_states`: the states whose `done.state.<path>` it may handle
    (statecharts, `nested` True: the effects and states inside the state count too)."""
    # `done.<effect>`/`error.<effect>`: the effect's name is the one limited (checked apart),
    # and one without such an effect is reported as never firing.
    is_result = event.startswith(("done.", "error."))
    problem = name_problem(f"{where}: an event", event, len(event) if is_result else MAX_NAME_LENGTH)
    return problem or _reserved_event_problem(where, event, effects, done_states, nested)


def _reserved_event_problem(
    where: str, event: str, effects: Collection[str], done_states: Collection[str], nested: bool
) -> str | None:
    """`after.*` belongs in `after=`; `done.x`/`error.x` only fire for an effect `x` the state
    may hear of; `done.state.<path>` for a state it may see complete."""
    if event.startswith("after."):
        return (
            f"{where}: event {event!r} is reserved for timers: declare it as"
            f" after={{{event.removeprefix('after.')!r}: ...}}"
        )
    if event.startswith("done.state.") and event.removeprefix("done.state.") in done_states:
        return None
    for prefix in ("done.", "error."):
        if event.startswith(prefix):
            effect = event.removeprefix(prefix)
            if effect not in effects:
                scope = "the state or a state inside it declares" if nested else "the state declares"
                detail = f"{scope} no effect {effect!r}"
                if prefix == "done." and effect.startswith("state.") and nested:
                    detail += (
                        f", and {effect.removeprefix('state.')!r} is not this state or a compound or"
                        " parallel state inside it"
                    )
                    return f"{where}: event {event!r} never fires: {detail}" + did_you_mean(
                        effect.removeprefix("state."), done_states
                    )
                return f"{where}: event {event!r} never fires: {detail}" + did_you_mean(effect, effects)
    return None


def _duration_problems(spec: MachineSpec) -> list[str]:
    return [p for name, st in spec.states.items() for p in duration_problems(f"state {name!r}", st)]


def duration_problems(where: str, st: StateSpec) -> list[str]:
    """Timer labels, effect leases and retry delays of the state `where` ("state 'a'") that are
    not durations, and retry policies whose initial delay exceeds their max (flat and charts)."""
    problems: list[str] = []
    texts = [(f"timer of {where}", k) for k in st.after]
    for eff in st.effects:
        what = f"effect {eff.name!r} of {where}"
        texts += [(what, eff.lease), (what, eff.retry.initial), (what, eff.retry.max)]
        try:
            if parse_duration(eff.retry.initial) > parse_duration(eff.retry.max):
                problems.append(
                    f"{what}: retry initial delay {eff.retry.initial} exceeds its max {eff.retry.max}"
                )
        except InvalidDuration:
            pass  # reported below
    for what, text in texts:
        try:
            parse_duration(text)
        except InvalidDuration as exc:
            problems.append(f"{what}: {exc}")
    return problems


def _unreachable(spec: MachineSpec) -> list[str]:
    """States no path from the initial state reaches. A target that is a typo of a declared state
    (reported above with its suggestion) counts as that state: one typo is one problem, not one
    plus every state behind it."""
    if spec.initial not in spec.states:
        return []
    seen = {spec.initial}
    todo = [spec.initial]
    while todo:
        st = spec.states[todo.pop()]
        for _event, group in outgoing(st):
            for t in group:
                target = t.target
                if target is not None and target not in spec.states:
                    target = closest(target, spec.states)
                if target is not None and target not in seen:
                    seen.add(target)
                    todo.append(target)
    return [
        f"state {name!r} is unreachable from the initial state {spec.initial!r}"
        for name in spec.states
        if name not in seen
    ]
