"""Model-based: random nested/parallel machines and random events; the statechart core (and the
Engine running it) must agree with a small pure reference interpreter of the same rules
(`reliability.chart_reference`, written from docs/statecharts.md and W3C SCXML Appendix D).

Compared after the start and after every event: the configuration, every active state, the history
memory, the context (whose `log` holds every exit, transition action and entry, in order), the
moves, whether the machine is done, the number of microsteps, and the kind of every refusal or
failure (EventNotAllowed, GuardRejected, ActionFailed, StepLimitExceeded), after which nothing may
have changed. Through the Engine (SQLite and PostgreSQL): `snap.configuration`, `snap.state`,
`snap.status`, `snap.context`, `snap.is_in(...)` for every state, and the history records (one per
applied or rejected event, with the configuration after it); a refused or failed event leaves the
instance as it was. Examples: `scale(...)` (RELIABILITY_FULL=1 for many more) or CHART_MODEL_EXAMPLES=N.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings

from reliability.chart_reference import (
    RefChart,
    RefError,
    RefResult,
    reference_send,
    reference_start,
)
from reliability.chart_strategies import chart_specs, event_sequences
from reliability.chart_vocabulary import registry_for
from reliability.support import FULL, scale
from statemachines import (
    ConfigurationError,
    Engine,
    StateMachineError,
    history,
    machine,
    parallel,
    state,
    transition,
)
from statemachines.chart import MAX_MICROSTEPS, ChartStep, CompiledChart
from statemachines.definition import Definition
from statemachines.records import Event, Snapshot

#: Microsteps per call: low, so loops of eventless transitions and done events fail fast.
CAP = 30
START = {"n": 0, "log": []}


def _examples(ci: int, full: int) -> int:
    return int(os.environ.get("CHART_MODEL_EXAMPLES") or scale(ci, full))


SETTINGS = settings(
    max_examples=_examples(1000, 10000),
    deadline=None,
    derandomize=not FULL,
    database=None if not FULL else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def build(spec: dict[str, Any]) -> Definition:
    """The generated spec through the Python builders (`machine`, `state`, `parallel`, `history`,
    `transition`), callables named from a registry of the vocabulary."""
    return machine(
        spec["name"], initial=spec["initial"], states=builders(spec["states"]), registry=registry_for(spec)
    )


def builders(states: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, body in states.items():
        if "history" in body:
            out[name] = history(body["history"]["default"], deep=body["history"]["deep"])
            continue
        kw: dict[str, Any] = {
            "on": {ev: [_transition(t) for t in group] for ev, group in body.get("on", {}).items()},
            "on_enter": body.get("on_enter"),
            "on_exit": body.get("on_exit"),
            "always": [_transition(t) for t in body.get("always", [])],
        }
        children = builders(body.get("states", {}))
        if body.get("type") == "parallel":
            out[name] = parallel(children, **kw)
        else:
            final = bool(body.get("final"))
            out[name] = state(final=final, initial=body.get("initial"), states=children, **kw)
    return out


def _transition(t: dict[str, Any]) -> Any:
    return transition(
        t["target"], guard=t.get("guard"), action=t["actions"], internal=t.get("type") == "internal"
    )


def expected(call: Callable[[], RefResult]) -> RefResult | str:
    try:
        return call()
    except RefError as exc:
        return exc.kind


def observed(call: Callable[[], ChartStep]) -> ChartStep | str:
    try:
        return call()
    except StateMachineError as exc:
        return type(exc).__name__


def view(result: ChartStep | RefResult) -> dict[str, Any]:
    """What is compared: everything observable of one call."""
    context = json.loads(result.context_json) if isinstance(result, ChartStep) else result.context
    return {
        "configuration": tuple(result.configuration),
        "active": frozenset(result.active),
        "history": {h: tuple(p) for h, p in result.history.items()},
        "context": context,
        "moves": [tuple(m) for m in result.moves],
        "done": result.done,
        "microsteps": result.microsteps,
        "state": result.state,
    }


def describe(spec: dict[str, Any], sent: list[Any]) -> str:
    return f"spec:\n{json.dumps(spec, indent=1)}\nevents so far: {sent}"


@SETTINGS
@given(spec=chart_specs(), events=event_sequences())
def test_compiled_chart_agrees_with_the_reference(spec: dict[str, Any], events: list[Any]) -> None:
    __tracebackhide__ = True
    chart = CompiledChart(build(spec), max_microsteps=CAP)
    ref = RefChart(spec)
    want = expected(lambda: reference_start(ref, START, CAP))
    got = observed(lambda: chart.enter_initial(json.dumps(START), Event("start", {}, "i")))
    if isinstance(want, str) or isinstance(got, str):
        assert got == want, f"start: core {got!r}, reference {want!r}\n{describe(spec, [])}"
        return
    assert view(got) == view(want), f"start\n{describe(spec, [])}"
    event(f"states: {len(ref.states) // 4 * 4}+, parallel: {any(s.kind == 'parallel' for s in ref.states)}")
    sent: list[Any] = []
    for name, payload in events:
        sent.append((name, payload))
        before_ref, before_core = want, got
        want = expected(partial(reference_send, ref, before_ref, name, payload, CAP))
        event_ = Event(name, payload, "i")
        got = observed(
            partial(
                chart.step, before_core.configuration, before_core.history, before_core.context_json, event_
            )
        )
        event(f"outcome: {want if isinstance(want, str) else 'applied'}")
        if isinstance(want, str) or isinstance(got, str):
            assert got == want, f"core {got!r}, reference {want!r}\n{describe(spec, sent)}"
            want, got = before_ref, before_core  # a refused or failed event changes nothing
            continue
        assert view(got) == view(want), (
            f"core:\n{view(got)}\nreference:\n{view(want)}\n{describe(spec, sent)}"
        )


# Through the Engine, on SQLite and PostgreSQL ------------------------------------------------------
#: A statechart the Engine must accept before the engine-level comparison can run.
PROBE = {
    "name": "chart_probe",
    "initial": "outer",
    "states": {"outer": {"initial": "inner", "states": {"inner": {"on_enter": ["enter:outer.inner"]}}}},
}
ENGINE_SETTINGS = settings(
    SETTINGS,
    max_examples=_examples(100, 1000),
    suppress_health_check=[*SETTINGS.suppress_health_check, HealthCheck.function_scoped_fixture],
)


def engine_outcome(call: Callable[[], Snapshot]) -> Snapshot | str:
    try:
        return call()
    except StateMachineError as exc:
        return type(exc).__name__


def compare_instance(
    engine: Engine, iid: str, ref: RefChart, want: RefResult, records: list[tuple[Any, ...]], what: str
) -> None:
    """The stored instance and its history against the reference, after `what`."""
    snap = engine.get(iid)
    assert tuple(snap.configuration) == want.configuration, f"{what}: configuration"
    assert snap.context == want.context, f"{what}: context"
    assert snap.status == ("completed" if want.done else "active"), f"{what}: status"
    assert snap.state == want.state, f"{what}: state"
    active = {s.path: snap.is_in(s.path) for s in ref.states if s.kind != "history"}
    assert active == {path: path in want.active for path in active}, f"{what}: is_in"
    hist = [(r.event, r.outcome, tuple(r.configuration)) for r in engine.history(iid)]
    assert hist == records, f"{what}: history records\nengine    {hist}\nreference {records}"


def unchanged(before: Snapshot, after: Snapshot) -> tuple[Any, ...]:
    return (after.version, after.state, after.status, tuple(after.configuration), after.context) == (
        before.version, before.state, before.status, tuple(before.configuration), before.context,
    )  # fmt: skip


def run_through_engine(engine: Engine, name: str, spec: dict[str, Any], events: list[Any]) -> None:
    __tracebackhide__ = True
    spec = {**spec, "name": name}
    engine.register(build(spec))
    ref = RefChart(spec)
    cap = MAX_MICROSTEPS  # the Engine runs charts with the default cap
    want = expected(lambda: reference_start(ref, START, cap))
    got = engine_outcome(lambda: engine.start(name, json.loads(json.dumps(START)), instance_id=name))
    if isinstance(want, str) or isinstance(got, str):
        assert (got if isinstance(got, str) else "started") == want, f"start\n{describe(spec, [])}"
        return
    assert tuple(got.configuration) == want.configuration, f"start\n{describe(spec, [])}"
    records: list[tuple[Any, ...]] = [("start", "applied", want.configuration)]
    compare_instance(engine, name, ref, want, records, f"start\n{describe(spec, [])}")
    sent: list[Any] = []
    for event_name, payload in events:
        sent.append((event_name, payload))
        what = describe(spec, sent)
        before = engine.get(name)
        before_ref = want
        result: RefResult | str = (
            "InstanceClosed"
            if want.done
            else expected(partial(reference_send, ref, before_ref, event_name, payload, cap))
        )
        got = engine_outcome(partial(engine.send, name, event_name, payload))
        event(f"engine outcome: {got if isinstance(got, str) else 'applied'}")
        if isinstance(result, str) or isinstance(got, str):
            assert got == result, f"engine {got!r}, reference {result!r}\n{what}"
            if result in ("EventNotAllowed", "GuardRejected"):  # audited, nothing else changes
                records.append((event_name, "rejected", want.configuration))
            after = engine.get(name)
            assert unchanged(before, after), f"a refused event changed the instance\n{what}"
            compare_instance(engine, name, ref, want, records, what)
            continue
        want = result
        assert tuple(got.configuration) == want.configuration, f"returned snapshot\n{what}"
        records.append((event_name, "applied", want.configuration))
        compare_instance(engine, name, ref, want, records, what)


@pytest.mark.timeout(scale(600, 3600))
def test_engine_agrees_with_the_reference(db_url: str) -> None:
    engine = Engine(db_url, sqlite_synchronous="NORMAL")
    try:
        try:
            engine.register(build(PROBE))
        except ConfigurationError:
            pytest.skip("statecharts not wired into the Engine yet")
        names = itertools.count()

        @ENGINE_SETTINGS
        @given(spec=chart_specs(), events=event_sequences())
        def agrees(spec: dict[str, Any], events: list[Any]) -> None:
            run_through_engine(engine, f"chart_{next(names)}", spec, events)

        agrees()
    finally:
        engine.close()
