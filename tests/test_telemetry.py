"""OpenTelemetry: a span per send/start/timer/effect attempt, traces that cross into the worker
through the stored traceparent, metrics; and nothing at all without a tracer provider.

The SDK's providers are global and set once per process, so this module installs them once with
a sampler that records only while one of its tests runs: the rest of the suite sees no span.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import StatusCode

from persistence import migrations
from statemachines import Effect, Engine, GuardRejected, ManualClock, machine, state, telemetry, transition

ROOT = Path(__file__).resolve().parent.parent


class _Switch(Sampler):
    """Records spans only while `on`: the global provider cannot be removed after these tests."""

    on = False

    def should_sample(
        self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None,
        *args: Any, **kw: Any,
    ) -> Any:  # fmt: skip
        if not self.on:
            return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "switch"


_SWITCH = _Switch()
_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader()
_installed = False


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    global _installed
    if not _installed:
        provider = TracerProvider(sampler=_SWITCH)
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
        telemetry.refresh()  # the engine looks for providers once a second: now, at once
        _installed = True
    _EXPORTER.clear()
    _SWITCH.on = True
    try:
        yield _EXPORTER
    finally:
        _SWITCH.on = False
        _EXPORTER.clear()


def charge(ctx: dict, call: Any) -> dict:
    return {"charged": ctx.get("total", 0)}


def only_big(ctx: dict, event: Any) -> bool:
    return ctx.get("total", 0) > 100


ORDER = machine(
    "otel-order",
    initial="new",
    states={
        "new": state(
            on={"PAY": "paying", "VIP": transition("paid", guard=only_big)}, after={"1h": "expired"}
        ),
        "paying": state(effect=Effect(charge), on={"done.charge": "paid"}),
        "paid": state(final=True),
        "expired": state(final=True),
    },
)


@pytest.fixture
def order_engine(engine: Engine) -> Engine:
    engine.register(ORDER)
    return engine


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return {k.removeprefix("statemachines."): v for k, v in (span.attributes or {}).items()}


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == f"statemachines.{name}"]


def stored_traces(engine: Engine, table: str) -> list[str | None]:
    with engine.db.read() as cur:
        cur.execute(f"SELECT trace FROM {table} ORDER BY id")
        return [row[0] for row in cur.fetchall()]


def counted(name: str, **labels: str) -> float:
    """The current value of a counter (sum) or histogram (count) for exactly these labels."""
    data = _READER.get_metrics_data()
    total = 0.0
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    if all(point.attributes.get(k) == v for k, v in labels.items()):
                        total += getattr(point, "value", None) or getattr(point, "count", 0)
    return total


# Spans --------------------------------------------------------------------------------------------
def test_start_makes_a_span_with_machine_instance_and_target(order_engine: Engine, spans: Any) -> None:
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    (span,) = named(spans, "start")
    assert attrs(span) == {
        "machine": "otel-order", "instance": "o1", "event": "start", "target": "new", "outcome": "applied",
    }  # fmt: skip


def test_send_makes_a_span_with_source_target_and_outcome(order_engine: Engine, spans: Any) -> None:
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    order_engine.send("o1", "PAY")
    (span,) = named(spans, "send")
    assert attrs(span) == {
        "machine": "otel-order", "instance": "o1", "event": "PAY",
        "source": "new", "target": "paying", "outcome": "applied",
    }  # fmt: skip
    assert span.status.status_code is StatusCode.UNSET


def test_a_guard_rejection_is_outcome_rejected_not_an_error_status(order_engine: Engine, spans: Any) -> None:
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    with pytest.raises(GuardRejected):
        order_engine.send("o1", "VIP")
    (span,) = named(spans, "send")
    assert attrs(span)["outcome"] == "rejected"
    assert attrs(span)["source"] == "new"
    assert span.status.status_code is StatusCode.UNSET


def test_a_send_that_fails_records_the_error(order_engine: Engine, spans: Any) -> None:
    with pytest.raises(Exception, match="nope"):
        order_engine.send("nope", "PAY")
    (span,) = named(spans, "send")
    assert attrs(span)["outcome"] == "error"
    assert "InstanceNotFound" in attrs(span)["error"]
    assert span.status.status_code is StatusCode.ERROR


def test_a_replayed_idempotent_send_is_outcome_replayed(order_engine: Engine, spans: Any) -> None:
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    order_engine.send("o1", "PAY", idempotency_key="k1")
    order_engine.send("o1", "PAY", idempotency_key="k1")
    assert [attrs(s)["outcome"] for s in named(spans, "send")] == ["applied", "replayed"]


def test_a_timer_firing_makes_a_span(order_engine: Engine, clock: ManualClock, spans: Any) -> None:
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    clock.advance("2h")
    order_engine.run_due()
    (span,) = named(spans, "timer")
    assert attrs(span) == {
        "machine": "otel-order", "instance": "o1", "event": "after.1h",
        "source": "new", "target": "expired", "outcome": "fired",
    }  # fmt: skip


def test_an_effect_attempt_makes_a_span_with_its_attempt(order_engine: Engine, spans: Any) -> None:
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    order_engine.send("o1", "PAY")
    order_engine.run_due()
    (span,) = named(spans, "effect")
    assert attrs(span) == {
        "machine": "otel-order", "instance": "o1", "event": "charge",
        "source": "paying", "attempt": 1, "outcome": "ok",
    }  # fmt: skip
    assert order_engine.get("o1").state == "paid"


# Trace joining ---------------------------------------------------------------------------------
def test_the_worker_effect_span_joins_the_trace_of_the_send_that_armed_it(
    order_engine: Engine, spans: Any
) -> None:
    tracer = trace.get_tracer("test")
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    with tracer.start_as_current_span("http request") as request:
        order_engine.send("o1", "PAY")
    order_engine.run_due()  # the worker, later, outside any span
    (send,) = named(spans, "send")
    (effect,) = named(spans, "effect")
    assert send.context.trace_id == request.get_span_context().trace_id
    assert effect.context.trace_id == send.context.trace_id
    assert effect.parent is not None and effect.parent.span_id == send.context.span_id


def test_the_trace_is_stored_with_timers_and_effects_armed_under_a_span(
    order_engine: Engine, spans: Any
) -> None:
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    (start,) = named(spans, "start")
    [timer_trace] = stored_traces(order_engine, "sm_timers")
    assert timer_trace.startswith(f"00-{start.context.trace_id:032x}-{start.context.span_id:016x}-")
    order_engine.send("o1", "PAY")
    (send,) = named(spans, "send")
    [effect_trace] = stored_traces(order_engine, "sm_effects")
    assert effect_trace.startswith(f"00-{send.context.trace_id:032x}-{send.context.span_id:016x}-")


def test_nothing_is_stored_when_no_span_is_recording(order_engine: Engine) -> None:
    """The sampler is off outside the `spans` fixture: spans exist but do not record."""
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    order_engine.send("o1", "PAY")
    assert stored_traces(order_engine, "sm_timers") == []  # left `new`: its timer went
    assert stored_traces(order_engine, "sm_effects") == [None]


# Metrics ---------------------------------------------------------------------------------------
def test_events_are_counted_by_kind_and_outcome(order_engine: Engine, spans: Any) -> None:
    before = counted("statemachines.events", kind="send", machine="otel-order", outcome="rejected")
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    with pytest.raises(GuardRejected):
        order_engine.send("o1", "VIP")
    after = counted("statemachines.events", kind="send", machine="otel-order", outcome="rejected")
    assert after - before == 1


def test_effect_attempts_are_counted(order_engine: Engine, spans: Any) -> None:
    before = counted("statemachines.effect.attempts", machine="otel-order", effect="charge", outcome="ok")
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    order_engine.send("o1", "PAY")
    order_engine.run_due()
    after = counted("statemachines.effect.attempts", machine="otel-order", effect="charge", outcome="ok")
    assert after - before == 1


def test_timer_lag_is_recorded(order_engine: Engine, clock: ManualClock, spans: Any) -> None:
    before = counted("statemachines.timer.lag", machine="otel-order")
    order_engine.start("otel-order", {"total": 10}, instance_id="o1")
    clock.advance("90m")  # due at 1h: fired 30 minutes late
    order_engine.run_due()
    assert counted("statemachines.timer.lag", machine="otel-order") - before == 1


# Without a provider, without the package ------------------------------------------------------------
PROBE = """
import json, sys
if sys.argv[1] == "absent":
    sys.modules["opentelemetry"] = None  # as if not installed: `import opentelemetry` fails
from statemachines import Effect, Engine, ManualClock, machine, state
def charge(ctx, call):
    return None
ORDER = machine("otel-order", initial="new", states={
    "new": state(on={"PAY": "paying"}, after={"1h": "new"}),
    "paying": state(effect=Effect(charge), on={"done.charge": "paid"}),
    "paid": state(final=True),
})
engine = Engine(sys.argv[2], clock=ManualClock())
engine.register(ORDER)
engine.start("otel-order", {"total": 10}, instance_id="o1")
engine.send("o1", "PAY")
done = engine.run_due()
with engine.db.read() as cur:
    cur.execute("SELECT trace FROM sm_effects")
    traces = [r[0] for r in cur.fetchall()]
otel = sorted(m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m])
print(json.dumps({"state": engine.get("o1").state, "ran": done, "traces": traces, "otel": otel}))
"""


@pytest.mark.parametrize("otel", ["no provider", "absent"])
def test_without_a_tracer_provider_or_the_package_everything_runs_and_nothing_is_stored(
    tmp_path: Path, otel: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "absent" if otel == "absent" else "api", str(tmp_path / "x.db")],
        capture_output=True, text=True, env=env, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["state"], report["ran"], report["traces"]) == ("paid", 1, [None])
    assert bool(report["otel"]) is (otel == "no provider")


def test_with_the_api_installed_but_no_provider_set_no_span_is_made() -> None:
    """Applications often have opentelemetry-api installed without configuring it: the engine must
    not pay for spans that go nowhere (the shared no-op is returned, nothing is allocated)."""
    probe = (
        "from statemachines import telemetry\n"
        "import opentelemetry.trace\n"
        "first = telemetry.span('send', machine='m')\n"
        "assert first is telemetry.span('start'), 'not the shared no-op'\n"
        "assert type(first).__name__ == '_NoSpan', type(first)\n"
        "assert telemetry.traceparent() is None\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr


# Schema --------------------------------------------------------------------------------------------
def test_schema_version_4_adds_the_trace_columns_to_a_version_3_database(db_url: str) -> None:
    engine = Engine(db_url, clock=ManualClock())
    engine.register(ORDER)
    engine.start("otel-order", {"total": 10}, instance_id="o1")
    engine.send("o1", "PAY")  # an effect row armed before the upgrade
    with engine.db.transaction() as cur:  # the schema as version 3 left it
        for table in ("sm_timers", "sm_effects"):
            cur.execute(f"ALTER TABLE {table} DROP COLUMN trace")
        cur.execute("UPDATE sm_schema SET version = 3")
    engine.close()
    upgraded = Engine(db_url, clock=ManualClock())
    try:
        upgraded.register(ORDER)
        with upgraded.db.read() as cur:
            cur.execute("SELECT version FROM sm_schema")
            assert cur.fetchone()[0] == len(migrations.MIGRATIONS)  # 4 and every later step
        assert stored_traces(upgraded, "sm_effects") == [None]
        assert upgraded.run_due() == 1  # the old row still runs
        assert upgraded.get("o1").state == "paid"
    finally:
        upgraded.close()
