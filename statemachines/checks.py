"""Definition-time checks: every mistake in a machine is reported when it is built, all at once."""

from __future__ import annotations

from collections.abc import Collection

from statemachines.durations import parse_duration
from statemachines.errors import InvalidDuration
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


def find_problems(spec: MachineSpec, known_callables: Collection[str]) -> list[str]:
    if spec.is_chart:  # nested, parallel, history or eventless states: the statechart checks
        from statemachines.chart.checks import chart_problems

        return chart_problems(spec, known_callables)
    problems: list[str] = []
    states = spec.states
    if not states:
        problems.append("no states declared")
    if spec.initial not in states:
        problems.append(f"initial state {spec.initial!r} is not a declared state")
    for name, st in states.items():
        problems.extend(_state_problems(name, st, states))
    problems.extend(_duration_problems(spec))
    problems.extend(_unreachable(spec))
    for missing in sorted(spec.callable_names() - set(known_callables)):
        problems.append(f"callable {missing!r} is not in the registry")
    used_events = {ev for st in states.values() for ev in st.on}
    for event in sorted(set(spec.events) - used_events):
        problems.append(f"payload schema declared for event {event!r}, which no state handles")
    return problems


def _state_problems(name: str, st: StateSpec, states: dict[str, StateSpec]) -> list[str]:
    problems: list[str] = []
    if not name.strip():
        problems.append("a state has an empty name")
    if st.final and (st.on or st.after or st.effects):
        problems.append(f"final state {name!r} has outgoing transitions, timers or effects")
    for event, group in outgoing(st):
        if not event.strip():
            problems.append(f"state {name!r} has an event with an empty name")
        if not group:
            problems.append(f"state {name!r}: event {event!r} has no transition")
        for t in group:
            if t.target is not None and t.target not in states:
                problems.append(f"state {name!r}: event {event!r} targets unknown state {t.target!r}")
        for i, t in enumerate(group[:-1]):
            if t.guard is None:
                later = (
                    "another unguarded transition"
                    if any(u.guard is None for u in group[i + 1 :])
                    else "the guarded transitions after it"
                )
                problems.append(
                    f"state {name!r}: event {event!r} has an unguarded transition that shadows {later}"
                )
                break
    names = [e.name for e in st.effects]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"state {name!r} declares effect {dup!r} twice")
    return problems


def _duration_problems(spec: MachineSpec) -> list[str]:
    problems: list[str] = []
    for name, st in spec.states.items():
        texts = [(f"timer of state {name!r}", k) for k in st.after]
        for eff in st.effects:
            where = f"effect {eff.name!r} of state {name!r}"
            texts += [(where, eff.lease), (where, eff.retry.initial), (where, eff.retry.max)]
            try:
                if parse_duration(eff.retry.initial) > parse_duration(eff.retry.max):
                    problems.append(
                        f"{where}: retry initial delay {eff.retry.initial} exceeds its max {eff.retry.max}"
                    )
            except InvalidDuration:
                pass  # reported below
        for where, text in texts:
            try:
                parse_duration(text)
            except InvalidDuration as exc:
                problems.append(f"{where}: {exc}")
    return problems


def _unreachable(spec: MachineSpec) -> list[str]:
    if spec.initial not in spec.states:
        return []
    seen = {spec.initial}
    todo = [spec.initial]
    while todo:
        st = spec.states[todo.pop()]
        for _event, group in outgoing(st):
            for t in group:
                if t.target in spec.states and t.target not in seen:
                    seen.add(t.target)
                    todo.append(t.target)
    return [
        f"state {name!r} is unreachable from the initial state {spec.initial!r}"
        for name in spec.states
        if name not in seen
    ]
