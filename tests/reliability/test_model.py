"""Model-based: hypothesis generates small machines and runs of them; the engine must agree with
a pure-Python reference of the semantics in docs/design.md after every step.

Generated machines have 2-4 states (the last one maybe final), 1-3 events, guards on a counter,
several guarded transitions per event, internal (`target: null`) and external transitions
(self-transitions included), entry/exit/transition actions that do not commute (+1, x2), and
timers (`after: 1h / 2h`, guarded or not). Runs start instances, send events (with and without
idempotency keys, keys reused), cancel, and advance a ManualClock then `run_due()`.

Compared after every step: state, status, context counter, version, the whole history (seq,
event, source, target, outcome, actor, counter), pending timers (event, fire_at), the result of
every call (snapshot or error type), and `run_due()`'s count.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from reliability.support import FULL, T0, record, scale
from statemachines import (
    Definition,
    Engine,
    EventNotAllowed,
    EventRejected,
    GuardRejected,
    IdempotencyKeyReused,
    InstanceClosed,
    InvalidArgument,
    ManualClock,
    Registry,
)

ACTIONS = {"inc": lambda n: (n + 1) % 10, "dbl": lambda n: (n * 2) % 10}
GUARDS = {"even": lambda n: n % 2 == 0, "small": lambda n: n < 3, "odd": lambda n: n % 2 == 1}
TIMERS = {"1h": timedelta(hours=1), "2h": timedelta(hours=2)}
ADVANCES = ["30m", "1h", "90m", "2h", "5h"]


def _registry() -> Registry:
    reg = Registry()
    for name, fn in ACTIONS.items():

        def action(ctx: dict[str, Any], event: Any, fn: Any = fn) -> None:
            ctx["n"] = fn(ctx["n"])

        reg.add(action, name=name)
    for name, fn in GUARDS.items():

        def guard(ctx: dict[str, Any], event: Any, fn: Any = fn) -> bool:
            return fn(ctx["n"])

        reg.add(guard, name=name)
    return reg


REGISTRY = _registry()


# Generated machines ------------------------------------------------------------------------------
@st.composite
def machine_specs(draw: Any) -> dict[str, Any]:
    k = draw(st.integers(2, 4))
    states = [f"S{i}" for i in range(k)]
    events = [f"E{j}" for j in range(draw(st.integers(1, 3)))]
    final = states[-1] if draw(st.booleans()) else None
    actions = st.lists(st.sampled_from(sorted(ACTIONS)), max_size=2)
    triggers: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = {s: {} for s in states}

    def add(source: str, kind: str, name: str, target: str | None) -> None:
        t: dict[str, Any] = {"target": target, "actions": draw(actions)}
        if draw(st.booleans()):
            t["guard"] = draw(st.sampled_from(sorted(GUARDS)))
        triggers[source].setdefault((kind, name), []).append(t)

    open_states = [s for s in states if s != final]
    trigger = st.one_of(
        st.tuples(st.just("on"), st.sampled_from(events)),
        st.tuples(st.just("after"), st.sampled_from(sorted(TIMERS))),
    )
    for i in range(1, k):  # every state reachable (guards aside, which the checks ignore)
        parent = states[draw(st.integers(0, i - 1))]
        kind, name = draw(trigger)
        add(parent, kind, name, states[i])
    for _ in range(draw(st.integers(0, 6))):
        source = draw(st.sampled_from(open_states))
        kind, name = draw(trigger)
        target = draw(st.one_of(st.none(), st.sampled_from(states)))
        add(source, kind, name, target)
    spec_states: dict[str, Any] = {}
    for s in states:
        body: dict[str, Any] = {"on": {}, "after": {}, "on_enter": draw(actions)}
        if s != final:
            body["on_exit"] = draw(actions)
        for (kind, name), group in triggers[s].items():
            # At most one unguarded transition per event, and last: extra ones get a guard.
            guarded = [t for t in group if "guard" in t]
            plain = [t for t in group if "guard" not in t]
            for t in plain[1:]:
                t["guard"] = draw(st.sampled_from(sorted(GUARDS)))
            body[kind][name] = guarded + plain[1:] + plain[:1]
        if s == final:
            body = {"final": True, "on_enter": body["on_enter"]}
        spec_states[s] = body
    return {"name": "generated", "initial": states[0], "states": spec_states, "_events": events}


# The reference -------------------------------------------------------------------------------------
@dataclass
class RefTimer:
    label: str
    fire_at: datetime
    entry: int  # the history seq of the state entry that armed it


@dataclass
class RefInstance:
    iid: str
    state: str
    status: str = "active"
    n: int = 0
    version: int = 1
    entry: int = 1
    history: list[tuple[Any, ...]] = field(default_factory=list)
    timers: list[RefTimer] = field(default_factory=list)
    receipts: dict[str, tuple[str, tuple[Any, ...]]] = field(default_factory=dict)  # key: (event, result)

    def snapshot(self) -> tuple[Any, ...]:
        return ("ok", self.state, self.status, self.version, self.n)


class Reference:
    """The semantics of docs/design.md in a few lines of plain Python; nothing shared with the engine."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.states = spec["states"]
        self.instances: dict[str, RefInstance] = {}

    def _run(self, names: list[str], n: int) -> int:
        for a in names:
            n = ACTIONS[a](n)
        return n

    def _enter(self, inst: RefInstance, state: str, n: int, seq: int, now: datetime) -> None:
        """Entry actions, final -> completed, timers armed for this entry."""
        inst.state = state
        inst.entry = seq
        inst.n = self._run(self.states[state].get("on_enter", []), n)
        if self.states[state].get("final"):
            inst.status = "completed"
            inst.timers = []
        else:
            after = self.states[state].get("after", {})
            inst.timers = [RefTimer(label, now + TIMERS[label], seq) for label in after]

    def start(self, iid: str, now: datetime) -> tuple[Any, ...]:
        inst = RefInstance(iid, self.spec["initial"])
        self._enter(inst, self.spec["initial"], 0, 1, now)
        inst.history.append((1, "start", None, inst.state, "applied", None, inst.n))
        self.instances[iid] = inst
        return inst.snapshot()

    def _group(self, state: str, event: str) -> list[dict[str, Any]] | None:
        st_ = self.states[state]
        if event.startswith("after."):
            return st_.get("after", {}).get(event.removeprefix("after."))
        return st_.get("on", {}).get(event)

    def _apply(self, inst: RefInstance, event: str, actor: str | None, now: datetime) -> tuple[Any, ...]:
        """Exit actions, transition actions, entry actions; or a rejection, recorded."""
        seq = len(inst.history) + 1
        group = self._group(inst.state, event)
        taken = (
            None
            if group is None
            else next((t for t in group if "guard" not in t or GUARDS[t["guard"]](inst.n)), None)
        )
        if taken is None:
            inst.history.append((seq, event, inst.state, inst.state, "rejected", actor, inst.n))
            return ("err", "EventNotAllowed" if group is None else "GuardRejected")
        source = inst.state
        if taken["target"] is None:  # internal: no exit, no entry, timers untouched
            inst.n = self._run(taken["actions"], inst.n)
        else:
            n = self._run(self.states[source].get("on_exit", []), inst.n)
            self._enter(inst, taken["target"], self._run(taken["actions"], n), seq, now)
        inst.version += 1
        inst.history.append((seq, event, source, inst.state, "applied", actor, inst.n))
        return inst.snapshot()

    def send(self, iid: str, event: str, key: str | None, now: datetime) -> tuple[Any, ...]:
        if event.startswith(("after.", "done.", "error.")):  # the engine's own events: refused
            return ("err", "InvalidArgument")
        inst = self.instances[iid]
        if key is not None and key in inst.receipts:  # the recorded result, nothing changes
            first_event, result = inst.receipts[key]
            # A key names one request (the payload here is {"e": event}: it differs iff the event does).
            return result if first_event == event else ("err", "IdempotencyKeyReused")
        if inst.status != "active":
            return ("err", "InstanceClosed")
        result = self._apply(inst, event, None, now)
        if key is not None:
            inst.receipts[key] = (event, result)
        return result

    def cancel(self, iid: str) -> tuple[Any, ...]:
        inst = self.instances[iid]
        if inst.status != "active":
            return ("err", "InstanceClosed")
        inst.status = "cancelled"
        inst.timers = []
        inst.history.append(
            (len(inst.history) + 1, "cancel", inst.state, inst.state, "cancelled", None, inst.n)
        )
        return inst.snapshot()

    def run_due(self, now: datetime) -> int:
        """Every due timer of an active instance is claimed and counted; an instance's fire in
        fire_at order, each only while the state entry that armed it lasts (else stale)."""
        count = 0
        for inst in self.instances.values():
            if inst.status != "active":
                continue
            due = sorted((t for t in inst.timers if t.fire_at <= now), key=lambda t: t.fire_at)
            count += len(due)
            for t in due:
                if t.entry != inst.entry or inst.status != "active":
                    continue  # stale: the state was left (or re-entered)
                inst.timers.remove(t)
                self._apply(inst, f"after.{t.label}", "timer", now)
        return count


# The state machine test ----------------------------------------------------------------------------
def _fresh_url(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'model.db'}"
        return
    from conftest import POSTGRES_URL, _fresh_schema

    assert POSTGRES_URL is not None
    yield from _fresh_schema(POSTGRES_URL)


class EngineVersusReference(RuleBasedStateMachine):
    backend = "sqlite"
    stats: dict[str, int] = {}

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="sm-model-"))
        self._url_gen = _fresh_url(self.backend, self.tmp)
        self.url = next(self._url_gen)
        self.clock = ManualClock(T0)
        self.engine: Engine | None = None
        self.ref: Reference | None = None
        self.ids: list[str] = []
        self.events: list[str] = []

    @initialize(spec=machine_specs())
    def setup(self, spec: dict[str, Any]) -> None:
        events = spec["_events"]
        spec = {k: v for k, v in spec.items() if k != "_events"}  # never mutate drawn data
        self.events = [*events, "NOPE", "after.1h", "done.x"]
        definition = Definition.from_dict(spec, REGISTRY)
        self.engine = Engine(self.url, clock=self.clock, sqlite_synchronous="NORMAL")
        self.engine.register(definition)
        self.ref = Reference(spec)
        self.stats["machines"] = self.stats.get("machines", 0) + 1

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    @staticmethod
    def _outcome(call: Any) -> tuple[Any, ...]:
        try:
            snap = call()
        except (EventRejected, InstanceClosed, InvalidArgument, IdempotencyKeyReused) as exc:
            kind = type(exc).__name__
            expected = (EventNotAllowed, GuardRejected, InstanceClosed, InvalidArgument, IdempotencyKeyReused)
            assert isinstance(exc, expected), kind
            return ("err", kind)
        return ("ok", snap.state, snap.status, snap.version, snap.context["n"])

    @precondition(lambda self: len(self.ids) < 3)
    @rule()
    def start(self) -> None:
        assert self.engine and self.ref
        iid = f"i{len(self.ids)}"
        got = self._outcome(lambda: self.engine.start("generated", {"n": 0}, instance_id=iid))
        assert got == self.ref.start(iid, self.clock.now())
        self.ids.append(iid)
        self._count("starts")

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), key=st.one_of(st.none(), st.sampled_from(["k0", "k1", "k2"])))
    def send(self, data: Any, key: str | None) -> None:
        assert self.engine and self.ref
        iid = data.draw(st.sampled_from(self.ids))
        event = data.draw(st.sampled_from(self.events))
        got = self._outcome(lambda: self.engine.send(iid, event, {"e": event}, idempotency_key=key))
        want = self.ref.send(iid, event, key, self.clock.now())
        assert got == want, f"send {event} to {iid} (key {key}): engine {got}, reference {want}"
        self._count("sends")

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), dice=st.integers(0, 3))
    def cancel(self, data: Any, dice: int) -> None:
        assert self.engine and self.ref
        if dice:  # cancel only now and then, or every run would be over after a few steps
            return
        iid = data.draw(st.sampled_from(self.ids))
        got = self._outcome(lambda: self.engine.cancel(iid, reason="model"))
        assert got == self.ref.cancel(iid)
        self._count("cancels")

    @rule(duration=st.sampled_from(ADVANCES))
    def advance_and_run_due(self, duration: str) -> None:
        assert self.engine and self.ref
        self.clock.advance(duration)
        got = self.engine.run_due()
        want = self.ref.run_due(self.clock.now())
        assert got == want, f"run_due() returned {got}, reference {want}"
        self._count("run_due")
        self.stats["timers_due"] = self.stats.get("timers_due", 0) + want

    @invariant()
    def agrees_with_reference(self) -> None:
        if self.engine is None or self.ref is None:
            return
        for iid in self.ids:
            ref = self.ref.instances[iid]
            snap = self.engine.get(iid)
            got = (snap.state, snap.status, snap.version, snap.context["n"])
            assert got == (ref.state, ref.status, ref.version, ref.n), f"{iid}: engine {got}, reference {ref}"
            hist = [
                (r.seq, r.event, r.source, r.target, r.outcome, r.actor, r.context["n"])
                for r in self.engine.history(iid)
            ]
            assert hist == ref.history, f"{iid} history:\nengine    {hist}\nreference {ref.history}"
            timers = sorted((t.event, t.fire_at) for t in self.engine.status(iid).timers)
            want = sorted((f"after.{t.label}", t.fire_at) for t in ref.timers)
            assert timers == want, f"{iid} timers: engine {timers}, reference {want}"
            self.stats["checks"] = self.stats.get("checks", 0) + 1

    def teardown(self) -> None:
        if self.engine is not None:
            self.engine.close()
        for _ in self._url_gen:  # drops the PostgreSQL schema
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


BACKENDS = ["sqlite", "postgresql"]
#: Examples per backend: each PostgreSQL example creates and drops a schema, so CI runs fewer there.
EXAMPLES = {"sqlite": scale(300, 3000), "postgresql": scale(100, 500)}


@pytest.mark.timeout(scale(300, 3600))  # a failure shrinks for a couple of minutes
@pytest.mark.parametrize("backend", BACKENDS)
def test_engine_agrees_with_the_reference_semantics(backend: str) -> None:
    if backend == "postgresql":
        from conftest import POSTGRES_URL, _in_ci

        if POSTGRES_URL is None:
            if _in_ci():
                pytest.fail("STATEMACHINES_TEST_POSTGRES_URL is set but PostgreSQL is unreachable")
            pytest.skip("PostgreSQL not reachable (set STATEMACHINES_TEST_POSTGRES_URL)")
    machine_cls = type(f"EngineVersusReference_{backend}", (EngineVersusReference,), {"backend": backend})
    machine_cls.stats = {}
    examples = EXAMPLES[backend]
    run_state_machine_as_test(
        machine_cls,
        settings=settings(
            max_examples=examples,
            stateful_step_count=scale(30, 50),
            deadline=None,
            derandomize=not FULL,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None if not FULL else settings.default.database,
        ),
    )
    record(f"model[{backend}]", examples=examples, **machine_cls.stats)
