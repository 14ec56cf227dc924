"""Prometheus metrics of one process, in the text exposition format (no client library needed).

Fed by a `telemetry` sink: every send, start, timer fired and effect attempt in this process is
counted with its machine and outcome, whether it came through the API, a callback URL or the
worker loop of `statemachines serve --worker`. Counters are per process, as Prometheus expects:
with several uvicorn workers or replicas, scrape each one (or sum them in the query).
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

from statemachines import telemetry

#: Send latency buckets, seconds (upper bounds; `+Inf` is implied).
BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """Counters and the send latency histogram; `install()` subscribes it to the engine's actions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: dict[tuple[str, str, str], int] = {}  # (kind, machine, outcome)
        self.timers: dict[tuple[str, str], int] = {}  # (machine, outcome)
        self.effects: dict[tuple[str, str, str], int] = {}  # (machine, effect, outcome)
        self.latency: dict[str, list[int]] = {}  # machine -> counts per bucket (+Inf last)
        self.latency_sum: dict[str, float] = {}

    def install(self) -> None:
        telemetry.add_sink(self.observe)

    def uninstall(self) -> None:
        telemetry.remove_sink(self.observe)

    def observe(self, kind: str, attributes: dict[str, Any], seconds: float) -> None:
        """The telemetry sink: one action ended."""
        machine = str(attributes.get("machine") or "")
        outcome = str(attributes.get("outcome") or "unknown")
        with self._lock:
            if kind == "effect":
                key3 = (machine, str(attributes.get("event") or ""), outcome)
                self.effects[key3] = self.effects.get(key3, 0) + 1
                return
            if kind == "timer":
                key2 = (machine, outcome)
                self.timers[key2] = self.timers.get(key2, 0) + 1
            key = (kind, machine, outcome)
            self.events[key] = self.events.get(key, 0) + 1
            if kind == "send":
                counts = self.latency.get(machine)
                if counts is None:
                    counts = self.latency[machine] = [0] * (len(BUCKETS) + 1)
                counts[bisect.bisect_left(BUCKETS, seconds)] += 1
                self.latency_sum[machine] = self.latency_sum.get(machine, 0.0) + seconds

    def render(self) -> str:
        """The exposition text."""
        with self._lock:
            events = sorted(self.events.items())
            timers = sorted(self.timers.items())
            effects = sorted(self.effects.items())
            latency = {m: list(c) for m, c in sorted(self.latency.items())}
            sums = dict(self.latency_sum)
        out = [
            "# HELP statemachines_events_total Events handled (send, start, timer), by outcome.",
            "# TYPE statemachines_events_total counter",
        ]
        for (kind, machine, outcome), n in events:
            out.append(
                f"statemachines_events_total{_labels(kind=kind, machine=machine, outcome=outcome)} {n}"
            )
        out += [
            "# HELP statemachines_timers_fired_total Timers fired by this process, by outcome.",
            "# TYPE statemachines_timers_fired_total counter",
        ]
        for (machine, outcome), n in timers:
            out.append(f"statemachines_timers_fired_total{_labels(machine=machine, outcome=outcome)} {n}")
        out += [
            "# HELP statemachines_effect_attempts_total Effect attempts, by outcome (ok, failed).",
            "# TYPE statemachines_effect_attempts_total counter",
        ]
        for (machine, effect, outcome), n in effects:
            labels = _labels(machine=machine, effect=effect, outcome=outcome)
            out.append(f"statemachines_effect_attempts_total{labels} {n}")
        out += [
            "# HELP statemachines_effect_failures_total Effect attempts that raised.",
            "# TYPE statemachines_effect_failures_total counter",
        ]
        for (machine, effect, outcome), n in effects:
            if outcome == "failed":
                out.append(
                    f"statemachines_effect_failures_total{_labels(machine=machine, effect=effect)} {n}"
                )
        out += [
            "# HELP statemachines_send_seconds Time to apply one event (engine.send), by machine.",
            "# TYPE statemachines_send_seconds histogram",
        ]
        for machine, counts in latency.items():
            running = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f"statemachines_send_seconds_bucket{_labels(machine=machine, le=le)} {running}")
            out.append(f"statemachines_send_seconds_sum{_labels(machine=machine)} {sums[machine]!r}")
            out.append(f"statemachines_send_seconds_count{_labels(machine=machine)} {running}")
        return "\n".join(out) + "\n"


_process: Metrics | None = None
_process_lock = threading.Lock()


def process_metrics() -> Metrics:
    """The metrics of this process, subscribed to the engine's actions on first use. One per
    process, not per app: every engine of the process feeds the same telemetry sinks."""
    global _process
    with _process_lock:
        if _process is None:
            _process = Metrics()
            _process.install()
        return _process
