"""A statechart run on its definition: the whole active configuration, and the arrows taken.

A history record says which event was processed and the configuration after it (the tuple of
active atomic states); it does not list the transitions that fired. They are inferred from the
configurations before and after, by the rules the engine runs (docs/statecharts.md):

1. the event: each atomic state active before offers it to itself, then its ancestors; the first
   state declaring the event takes it. Among several arrows for the event (different guards),
   the one whose target is active afterwards is taken (else the first: its target was passed
   through and left in the same step);
2. then `done.state.X` arrows (X entered a final child; for a parallel X, every region is final)
   and eventless arrows whose source was active or entered and whose target is active afterwards
   (or is itself left by such an arrow), until nothing more matches.

Guards cannot be evaluated without the user's code, so when two guarded arrows could both
explain a step, the first in declaration order is drawn. Records without a `configuration`
(written before statecharts) count as the one-state configuration `(target,)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from diagrams.chartmodel import ancestors, is_inside
from diagrams.model import Chart, Edge
from diagrams.run import Run, field_of, take_record
from statemachines.records import ACTIVE, APPLIED, CANCELLED, COMPLETED, FAILED, REJECTED


def chart_overlay(
    chart: Chart,
    history: Iterable[Any],
    *,
    status: str | None = None,
    current: str | None = None,
    configuration: Iterable[str] | None = None,
    instance_id: str | None = None,
) -> Run:
    run = Run(instance_id, ACTIVE, None)
    before: set[str] = set()
    last_outcome = None
    for rec in history:
        seq, event, source, target, outcome, reason = take_record(run, rec)
        last_outcome = outcome
        if outcome == REJECTED:
            continue
        after = active_set(chart, field_of(rec, "configuration") or (target,))
        run.current, run.active = target, after
        if outcome == FAILED:
            run.failure = reason or "failed"
        if outcome != APPLIED:
            continue
        if source is None:
            run.start_seqs.append(seq)
            entered = set(after)
            taken = _follow_ups(chart, set(), after, entered, [])
        else:
            taken, entered = _event_edges(chart, before, after, event)
            taken = _follow_ups(chart, before, after, entered, taken)
        for edge in taken:
            run.taken.setdefault(edge.index, []).append(seq)
        run.visited |= after | entered
        before = after
    if current is not None:
        run.current = current
    if configuration is not None:
        run.active = active_set(chart, tuple(configuration))
    if status is not None:
        run.status = status
    elif last_outcome in (CANCELLED, FAILED):
        run.status = str(last_outcome)
    else:
        node = chart.nodes.get(run.current) if run.current is not None else None
        run.status = COMPLETED if node is not None and node.final and node.parent is None else ACTIVE
    if run.status != FAILED:
        run.failure = None
    return run


def active_set(chart: Chart, configuration: Iterable[str]) -> set[str]:
    """Every active state: the atomic ones and all their ancestors (unknown ones added to the chart)."""
    out: set[str] = set()
    for path in configuration:
        if path not in chart.nodes:
            chart.add_unknown(path)
            out.add(path)
            continue
        out.add(path)
        out.update(ancestors(chart, path))
    return out


def _event_edges(chart: Chart, before: set[str], after: set[str], event: str) -> tuple[list[Edge], set[str]]:
    taken: list[Edge] = []
    entered: set[str] = set()
    atoms = [n for n in chart.nodes.values() if n.name in before and not chart.children(n.name)]
    for atom in atoms:
        for state in [atom.name, *ancestors(chart, atom.name)] if atom.known else [atom.name]:
            candidates = [
                e for e in chart.edges if e.source == state and e.event == event and not e.eventless
            ]
            if not candidates:
                continue
            chosen = next((e for e in candidates if _lands(chart, e, after)), candidates[0])
            if chosen not in taken:
                taken.append(chosen)
                entered |= _entered(chart, chosen, before, after)
            break
    return taken, entered


def _follow_ups(
    chart: Chart, before: set[str], after: set[str], entered: set[str], taken: list[Edge]
) -> list[Edge]:
    """Add the done.state and eventless arrows the step went on to take (see the module doc)."""
    candidates = [e for e in chart.edges if (e.eventless or e.is_done) and e.target is not None]
    changed = True
    while changed:
        changed = False
        for settles in (True, False):  # arrows into the final configuration first, then passing ones
            for edge in candidates:
                if not _follows(chart, edge, before, after, entered, taken, settles):
                    continue
                taken.append(edge)
                entered |= _entered(chart, edge, before, after)
                changed = True
    return taken


def _follows(
    chart: Chart,
    edge: Edge,
    before: set[str],
    after: set[str],
    entered: set[str],
    taken: list[Edge],
    settles: bool,
) -> bool:
    if edge in taken or edge.source not in before | entered:
        return False
    if any(t.source == edge.source for t in taken):
        return False  # its source has already been left by another arrow in this step
    if not (_lands(chart, edge, after) if settles else _passes_on(chart, edge)):
        return False
    if edge.is_done and not _done(chart, edge.event[len("done.state.") :], before | entered, entered):
        return False
    return not (edge.eventless and edge.source in after and edge.target in before)  # nothing moved


def _lands(chart: Chart, edge: Edge, after: set[str]) -> bool:
    """The edge's target (or, for a history state, its parent) is active after the step."""
    if edge.target is None:
        return edge.source in after
    node = chart.nodes[edge.target]
    return edge.target in after or (node.kind == "history" and node.parent in after)


def _passes_on(chart: Chart, edge: Edge) -> bool:
    """The target may be left again in the same step: it has eventless arrows, or it is a final
    child whose parent's `done.state` event is handled (a join)."""
    target = chart.nodes[edge.target or edge.source]
    if any(e.eventless and e.source == target.name for e in chart.edges):
        return True
    joins = {e.event[len("done.state.") :] for e in chart.edges if e.is_done}
    return (
        target.final
        and target.parent is not None
        and bool(joins & {target.parent, *ancestors(chart, target.name)})
    )


def _done(chart: Chart, state: str, seen: set[str], entered: set[str]) -> bool:
    node = chart.nodes.get(state)
    if node is None or not node.known:
        return False
    if node.kind == "compound":
        return any(c.final and c.name in entered for c in chart.children(state))
    if node.kind == "parallel":
        finals = [[c.name for c in chart.children(r.name) if c.final] for r in chart.children(state)]
        regions = [r for r in chart.children(state) if r.kind != "history"]
        return (
            len(finals) == len(regions)
            and all(any(f in seen for f in group) for group in finals)
            and any(f in entered for group in finals for f in group)
        )
    return False


def _entered(chart: Chart, edge: Edge, before: set[str], after: set[str]) -> set[str]:
    if edge.target is None:
        return set()
    target = chart.nodes[edge.target]
    inside = target.parent if target.kind == "history" and target.parent else edge.target
    out = {edge.target} if target.kind != "history" else set()
    out |= {a for a in ancestors(chart, edge.target) if a not in before or a in after}
    found = {n for n in after if is_inside(chart, n, inside)}
    return out | (found if found else _default_entry(chart, inside))


def _default_entry(chart: Chart, state: str) -> set[str]:
    node = chart.nodes[state]
    out = {state}
    if node.kind == "compound":
        first = next((c for c in chart.children(state) if c.initial), None)
        if first is not None:
            out |= _default_entry(chart, first.name)
    elif node.kind == "parallel":
        for region in chart.children(state):
            if region.kind != "history":
                out |= _default_entry(chart, region.name)
    elif node.kind == "history" and node.default is not None:
        out = _default_entry(chart, node.default)
    return out
