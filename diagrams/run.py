"""A run on top of its definition: which states were visited, which edges taken in which order.

The overlay is computed from history records alone (plus the instance's status when known), so a
run can be drawn from the database without importing the user's code: `Engine.stored_spec` gives
the definition, `Engine.history` the records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import graphviz

from diagrams.model import Chart, chart_of
from statemachines.records import ACTIVE, APPLIED, CANCELLED, COMPLETED, FAILED, REJECTED

STATUSES = (ACTIVE, COMPLETED, CANCELLED, FAILED)


@dataclass(frozen=True)
class Rejection:
    seq: int
    event: str
    state: str
    reason: str

    @property
    def text(self) -> str:
        return f"#{self.seq} {self.event} in {self.state}: {self.reason}"


@dataclass
class Run:
    """What one instance did, keyed to the chart: history seqs per edge, visited states, rejections."""

    instance_id: str | None
    status: str
    current: str | None
    visited: set[str] = field(default_factory=set)
    taken: dict[int, list[int]] = field(default_factory=dict)  # edge index -> history seqs
    extra: dict[tuple[str | None, str, str], list[int]] = field(default_factory=dict)  # not in the chart
    start_seqs: list[int] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    records: int = 0
    failure: str | None = None  # reason of the last `failed` record (an effect out of retries)
    #: Statecharts: every active state (atomic or not) after the last record; flat: empty.
    active: set[str] = field(default_factory=set)

    @property
    def active_states(self) -> set[str]:
        """The states drawn as current: the whole active configuration, or the one current state."""
        if self.active:
            return self.active
        return {self.current} if self.current is not None else set()

    @property
    def summary(self) -> str:
        where = f", state {self.current}" if self.current is not None else ""
        rejected = f", {len(self.rejected)} rejected" if self.rejected else ""
        records = f"{self.records} history record{'' if self.records == 1 else 's'}"
        return f"{self.status}{where}, {records}{rejected}"

    def rejected_in(self, state: str) -> list[Rejection]:
        return [r for r in self.rejected if r.state == state]


def numbers(seqs: list[int]) -> str:
    """The history seqs an edge was taken at (`#3, #5`), and how often when more than once."""
    shown = [f"#{s}" for s in seqs]
    if len(shown) > 4:
        shown = [*shown[:2], "...", shown[-1]]
    count = f" ({len(seqs)}\u00d7)" if len(seqs) > 1 else ""
    return ", ".join(shown) + count


def overlay(
    chart: Chart,
    history: Iterable[Any],
    *,
    status: str | None = None,
    current: str | None = None,
    instance_id: str | None = None,
) -> Run:
    """Match each history record to the chart's edges; states the chart lacks are added to it."""
    run = Run(instance_id, ACTIVE, None)
    last_outcome = None
    for rec in history:
        seq, event, source, target, outcome, reason = take_record(run, rec)
        last_outcome = outcome
        if outcome == REJECTED:
            continue
        for name in (source, target):
            if name is not None and name not in chart.nodes:
                chart.add_unknown(name)
        run.current = target
        if outcome == FAILED:
            run.failure = reason or "failed"
        if outcome != APPLIED:  # cancelled, failed (and any later outcome): no edge was taken
            continue
        run.visited.add(target)
        if source is None:
            run.start_seqs.append(seq)
            continue
        edge = chart.find_edge(source, event, target)
        if edge is not None:
            run.taken.setdefault(edge.index, []).append(seq)
        else:
            run.extra.setdefault((source, event, target), []).append(seq)
    if current is not None:
        run.current = current
        if current not in chart.nodes:
            chart.add_unknown(current)
    run.status = status or _infer_status(chart, run.current, last_outcome)
    if run.status != FAILED:
        run.failure = None  # redriven since: the old failure is history, not the state
    return run


def load(
    engine_or_history: Any,
    instance_id: str | None = None,
    *,
    spec: Any = None,
    status: str | None = None,
) -> tuple[Chart, Run]:
    """From an Engine and an id (the definition as stored), or from history records and a spec."""
    if _is_engine(engine_or_history):
        engine = engine_or_history
        if instance_id is None:
            raise TypeError("draw_run(engine, instance_id): the instance id is missing")
        snap = engine.get(instance_id)
        history = engine.history(instance_id)
        if spec is None:
            spec = engine.stored_spec(snap.machine, snap.definition_version)
        chart = chart_of(spec)
        if chart.is_chart:
            from diagrams.chartrun import chart_overlay

            configuration = getattr(snap, "configuration", None)
            return chart, chart_overlay(
                chart,
                history,
                status=status or snap.status,
                current=snap.state,
                configuration=configuration,
                instance_id=instance_id,
            )
        run = overlay(
            chart, history, status=status or snap.status, current=snap.state, instance_id=instance_id
        )
        return chart, run
    if spec is None:
        raise TypeError("draw_run(history, spec=...): drawing a history list needs the definition or spec")
    if isinstance(engine_or_history, str | bytes | Mapping):
        raise TypeError("draw_run(history, spec=...): history must be a list of records")
    chart = chart_of(spec)
    if chart.is_chart:
        from diagrams.chartrun import chart_overlay

        records = list(engine_or_history)
        return chart, chart_overlay(chart, records, status=status, instance_id=instance_id)
    return chart, overlay(chart, list(engine_or_history), status=status, instance_id=instance_id)


def draw_run(
    engine_or_history: Any,
    instance_id: str | None = None,
    *,
    spec: Any = None,
    status: str | None = None,
) -> graphviz.Digraph:
    """The definition diagram with one instance's history on top (see docs/diagrams.md)."""
    from diagrams.dot import to_digraph

    chart, run = load(engine_or_history, instance_id, spec=spec, status=status)
    return to_digraph(chart, run)


def _is_engine(obj: Any) -> bool:
    return all(callable(getattr(obj, name, None)) for name in ("get", "history", "stored_spec"))


def field_of(rec: Any, key: str) -> Any:
    """A field of a history record: a `Record` from the engine or a mapping (JSON, a test)."""
    return rec.get(key) if isinstance(rec, Mapping) else getattr(rec, key, None)


def take_record(run: Run, rec: Any) -> tuple[Any, Any, Any, Any, Any, Any]:
    """Count one history record into `run`, noting it as a rejection when it is one, and return
    its (seq, event, source, target, outcome, reason): what every overlay reads of a record."""
    seq, event, source, target, outcome, reason = (
        field_of(rec, k) for k in ("seq", "event", "source", "target", "outcome", "reason")
    )
    run.records += 1
    if outcome == REJECTED:
        run.rejected.append(Rejection(seq, event, source or target, short_reason(reason)))
    return seq, event, source, target, outcome, reason


def _infer_status(chart: Chart, current: str | None, last_outcome: str | None) -> str:
    if last_outcome in (CANCELLED, FAILED):
        return str(last_outcome)
    node = chart.nodes.get(current) if current is not None else None
    return COMPLETED if node is not None and node.final else ACTIVE


def short_reason(reason: str | None) -> str:
    """`GuardRejected: event ... ` -> `refused by every guard`; other reasons kept, cut short."""
    text = (reason or "rejected").strip()
    kind = text.split(":", 1)[0]
    if kind == "GuardRejected":
        return "refused by every guard"
    if kind == "EventNotAllowed":
        return "not allowed"
    return text if len(text) <= 80 else text[:77] + "..."
