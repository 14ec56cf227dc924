"""OpenTelemetry traces and metrics, when `opentelemetry-api` is installed; nothing otherwise.

One span per `send`, `start`, timer fired and effect attempt, with the machine, instance, event,
source and target states and the outcome (plus the attempt number and error of an effect). When a
state entered arms a timer or an effect under a recording span, that span's W3C `traceparent` is
stored with the row, so the worker's span for it joins the trace that caused it, in any process.

Metrics: `statemachines.events` (by kind and outcome), `statemachines.effect.attempts` (by
outcome) and `statemachines.timer.lag` (seconds between a timer's due time and its firing).

The package is imported on first use, never at `import statemachines`: without it (or without
a tracer provider) every function here is a no-op and nothing more is written to the database.
See docs/observability.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

TRACER_NAME = "statemachines"
log = logging.getLogger("statemachines.telemetry")

#: In-process observers of every action, e.g. the web service's Prometheus `/metrics`: each is
#: called with the kind (`send`, `start`, `timer`, `effect`), the span's attributes (machine,
#: outcome, ...) and the seconds the action took. Empty by default: then nothing is measured and
#: `span()` stays the shared no-op. See `add_sink`.
Sink = Callable[[str, dict[str, Any], float], None]
_sinks: list[Sink] = []

#: Attribute names metrics are broken down by (low cardinality: never the instance).
MACHINE, OUTCOME, EVENT, KIND, EFFECT = "machine", "outcome", "event", "kind", "effect"
_PREFIX = "statemachines."


class _Api:
    """The OpenTelemetry objects the engine uses, made once on first use."""

    def __init__(self) -> None:
        from opentelemetry import context, metrics, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.trace = trace
        self.metrics = metrics
        self.context = context
        self.unset_tracers = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        self.propagator = TraceContextTextMapPropagator()
        # The API's proxies: spans and instruments made now go to the providers set later.
        self.tracer = trace.get_tracer(TRACER_NAME)
        meter = metrics.get_meter(TRACER_NAME)
        self.events = meter.create_counter(
            "statemachines.events", unit="{event}", description="events applied, by kind and outcome"
        )
        self.attempts = meter.create_counter(
            "statemachines.effect.attempts", unit="{attempt}", description="effect attempts, by outcome"
        )
        self.lag = meter.create_histogram(
            "statemachines.timer.lag", unit="s", description="how late timers fire after their due time"
        )


_api: _Api | None = None
_missing = False


def _load() -> _Api | None:
    """The API objects, or None when `opentelemetry-api` is not installed (checked once)."""
    global _api, _missing
    if _api is None and not _missing:
        try:
            _api = _Api()
        except ImportError:
            _missing = True
    return _api


class Span:
    """What the engine sees of a span: attributes set as it learns them (None values skipped)."""

    __slots__ = ("_attributes", "_span")

    def __init__(self, span: Any, attributes: dict[str, Any]) -> None:
        self._span = span
        self._attributes = attributes

    def set(self, **attributes: Any) -> None:
        for key, value in attributes.items():
            if value is not None:
                self._attributes[key] = value
                self._span.set_attribute(_PREFIX + key, value)

    def get(self, key: str) -> Any:
        return self._attributes.get(key)


class _NoSpan:
    """The span when OpenTelemetry is not installed: its own context manager (one shared object,
    nothing allocated per event), takes attributes, keeps none."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set(self, **attributes: Any) -> None:
        pass

    def get(self, key: str) -> Any:
        return None


_NO_SPAN = _NoSpan()


@contextmanager
def _span(api: _Api, kind: str, parent: str | None, attributes: dict[str, Any]) -> Iterator[Span]:
    ctx = api.propagator.extract({"traceparent": parent}) if parent else None
    with api.tracer.start_as_current_span(
        f"statemachines.{kind}",
        context=ctx,
        attributes={_PREFIX + k: v for k, v in attributes.items() if v is not None},
        record_exception=False,
        set_status_on_exception=False,
    ) as otel_span:
        span = Span(otel_span, attributes)
        started = time.perf_counter()
        try:
            yield span
        except BaseException as exc:
            if _is_rejection(exc):  # an answer, not a failure: the span's status stays unset
                span.set(outcome="rejected", error=f"{type(exc).__name__}: {exc}"[:500])
            else:
                span.set(outcome="error", error=f"{type(exc).__name__}: {exc}"[:500])
                otel_span.record_exception(exc)
                otel_span.set_status(api.trace.Status(api.trace.StatusCode.ERROR, str(exc)[:500]))
            _count(api, kind, span)
            _notify(kind, attributes, time.perf_counter() - started)
            raise
        _count(api, kind, span)
        _notify(kind, attributes, time.perf_counter() - started)


_RECHECK_SECONDS = 1.0
_checked_at = -_RECHECK_SECONDS
_providers_set = False


def _configured(api: _Api) -> bool:
    """Has the application set a tracer or a meter provider? Until it does, the API's proxies would
    make spans and measurements that go nowhere at ~10 µs an event: skip them. Asking the API costs
    a few µs (it reads the environment), so the answer is kept for a second: a provider set after
    the engine was made is picked up within a second."""
    global _checked_at, _providers_set
    now = time.monotonic()
    if now - _checked_at >= _RECHECK_SECONDS:
        meters = type(api.metrics.get_meter_provider()).__name__
        _providers_set = not isinstance(api.trace.get_tracer_provider(), api.unset_tracers) or (
            meters not in ("_ProxyMeterProvider", "NoOpMeterProvider")
        )
        _checked_at = now
    return _providers_set


def refresh() -> None:
    """Look for a tracer/meter provider on the next event instead of within a second: call it
    right after setting the providers when the very next events must be traced (tests)."""
    global _checked_at
    _checked_at = -_RECHECK_SECONDS


def span(kind: str, parent: str | None = None, **attributes: Any) -> Any:
    """A context manager around one action (`send`, `start`, `timer`, `effect`), yielding an
    object whose `set(**attributes)` adds what the action learns (source, target, outcome...).

    `parent` is a stored `traceparent`: the span joins that trace instead of the current one.
    An exception leaving the block gives outcome `rejected` for a guard or an event the state
    does not accept, `error` (span status ERROR, exception recorded) otherwise; the
    events/attempts counters count every action.
    """
    api = _api if _api is not None else _load()
    if api is None or not _configured(api):
        return _Measured(kind, attributes) if _sinks else _NO_SPAN
    return _span(api, kind, parent, attributes)


class _Measured:
    """The span when sinks observe actions but OpenTelemetry is not tracing: keeps the
    attributes, times the action, and hands both to the sinks when it ends."""

    __slots__ = ("_attributes", "_kind", "_started")

    def __init__(self, kind: str, attributes: dict[str, Any]) -> None:
        self._kind = kind
        self._attributes = attributes
        self._started = 0.0

    def __enter__(self) -> _Measured:
        self._started = time.perf_counter()
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            self._attributes["outcome"] = "rejected" if _is_rejection(exc) else "error"
        _notify(self._kind, self._attributes, time.perf_counter() - self._started)

    def set(self, **attributes: Any) -> None:
        for key, value in attributes.items():
            if value is not None:
                self._attributes[key] = value

    def get(self, key: str) -> Any:
        return self._attributes.get(key)


def add_sink(sink: Sink) -> None:
    """Call `sink(kind, attributes, seconds)` after every send, start, timer fired and effect
    attempt in this process, whatever its outcome. A sink must be fast and must not raise (an
    exception is logged and ignored: measuring never fails an event)."""
    if sink not in _sinks:
        _sinks.append(sink)


def remove_sink(sink: Sink) -> None:
    """Stop calling `sink`; unknown sinks are ignored."""
    if sink in _sinks:
        _sinks.remove(sink)


def _notify(kind: str, attributes: dict[str, Any], seconds: float) -> None:
    for sink in tuple(_sinks):
        try:
            sink(kind, attributes, seconds)
        except Exception:
            log.exception("telemetry sink %r failed; ignored", sink)


def _is_rejection(exc: BaseException) -> bool:
    """A guard said no, or the state does not accept the event: recorded, not an error."""
    from statemachines.errors import EventRejected

    return isinstance(exc, EventRejected)


def _count(api: _Api, kind: str, span: Span) -> None:
    labels = {KIND: kind, MACHINE: span.get(MACHINE) or "", OUTCOME: span.get(OUTCOME) or "unknown"}
    if kind == "effect":
        labels[EFFECT] = span.get(EVENT) or ""
        api.attempts.add(1, labels)
    else:
        api.events.add(1, labels)


def traceparent() -> str | None:
    """The W3C `traceparent` of the current span, if one is recording; else None (store nothing)."""
    api = _api if _api is not None else _load()
    if api is None or not _configured(api):
        return None
    current = api.trace.get_current_span()
    if not current.is_recording():
        return None
    carrier: dict[str, str] = {}
    api.propagator.inject(carrier)
    return carrier.get("traceparent")


def timer_lag(machine: str, seconds: float) -> None:
    """Record how late a timer fired (seconds after its due time)."""
    api = _api if _api is not None else _load()
    if api is not None and _configured(api):
        api.lag.record(max(seconds, 0.0), {MACHINE: machine})
