"""Where a migrated instance lands: its states mapped into the target version, checked to form a
configuration there, and which of its timer and effect rows survive. Pure: rows in, a plan out;
`statemachines.migration` reads the rows and writes the plan.

The rules (docs/versions.md):

- a state path is mapped by `state_map` exactly, else through its nearest mapped ancestor
  (`{"review": "in_review"}` moves `review.draft` to `in_review.draft`), else kept as it is;
- a state that keeps its path keeps its entry (timers keep their deadlines, tokens stay valid);
  a state with a new path, or an ancestor the target version adds, is a new entry numbered by
  the migration's own history record;
- the mapped states must form a configuration of the target: one state for a flat machine; for a
  statechart, every compound state with exactly one active child, every parallel state with all of
  its regions (a compound state is never entered implicitly: map to one of its children);
- a timer or effect row survives when its state keeps its entry and the target version still
  declares it; the others are dropped (timers) or cancelled (effects). New entries get every timer
  and effect their state declares; a kept entry gets the timers the target adds to its state
  (counted from the migration), never new effects: its entry happened before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from statemachines.chart import CompiledChart
from statemachines.chart.compiled import state_label
from statemachines.chart.tree import COMPOUND, HISTORY, PARALLEL
from statemachines.compensation import PREFIX as COMPENSATION_PREFIX
from statemachines.compiled import CompiledMachine
from statemachines.records import COMPLETED


class Unmovable(Exception):
    """This instance cannot be moved as asked; the message says why (the report's skip reason)."""


@dataclass(slots=True)
class Plan:
    state: str  # the one-string summary (flat: the state)
    active: dict[str, int]  # path -> entry seq, document order (flat: one entry)
    history: dict[str, list[str]]  # statecharts' history memory
    status: str
    keep_timers: list[int] = field(default_factory=list)
    drop_timers: list[tuple[int, str]] = field(default_factory=list)  # (row id, "state: event")
    keep_effects: list[int] = field(default_factory=list)
    drop_effects: list[tuple[int, str]] = field(default_factory=list)
    arm_entries: list[str] = field(default_factory=list)  # new entries: all they declare
    arm_timers: list[tuple[str, int, list[str]]] = field(default_factory=list)  # kept entries: added timers

    @property
    def configuration(self) -> list[str]:
        """The active atomic states (flat: the state)."""
        paths = list(self.active)
        return [p for i, p in enumerate(paths) if i == len(paths) - 1 or not paths[i + 1].startswith(p + ".")]


def map_path(path: str, state_map: Mapping[str, str]) -> str:
    """`path` in the target version: mapped exactly, else through its nearest mapped ancestor."""
    if path in state_map:
        return state_map[path]
    head = path
    while "." in head:
        head = head.rsplit(".", 1)[0]
        if head in state_map:
            return state_map[head] + path[len(head) :]
    return path


def plan(
    cm: CompiledMachine | CompiledChart,
    old_active: Mapping[str, int],
    old_history: Mapping[str, list[str]],
    status: str,
    seq: int,
    state_map: Mapping[str, str],
    timers: list[tuple[Any, ...]],
    effects: list[tuple[Any, ...]],
) -> Plan:
    """Where an instance whose active states are `old_active` lands in `cm`; `seq` numbers the
    migration's history record (the entry of every state it enters anew)."""
    paths = list(old_active)
    atomic = [p for i, p in enumerate(paths) if i == len(paths) - 1 or not paths[i + 1].startswith(p + ".")]
    if cm.is_chart:
        result = _chart_plan(cm, old_active, old_history, status, seq, state_map)  # type: ignore[arg-type]
    else:
        result = _flat_plan(cm, old_active, atomic, status, seq, state_map)  # type: ignore[arg-type]
    _rows(cm, result, seq, timers, effects)
    return result


def _flat_plan(
    cm: CompiledMachine, old_active: Mapping[str, int], atomic: list[str], status: str, seq: int,
    state_map: Mapping[str, str],
) -> Plan:  # fmt: skip
    targets = list(dict.fromkeys(map_path(p, state_map) for p in atomic))
    version = cm.definition.version
    if len(targets) != 1:
        raise Unmovable(
            f"states {targets} cannot all be active in flat version {version!r}: map them to one state"
        )
    target = targets[0]
    if target not in cm.definition.spec.states:
        raise Unmovable(_missing(target, atomic[0], version))
    entry = old_active[target] if target in old_active and len(old_active) == 1 else seq
    return Plan(target, {target: entry}, {}, COMPLETED if target in cm.final else status)


def _chart_plan(
    cm: CompiledChart, old_active: Mapping[str, int], old_history: Mapping[str, list[str]], status: str,
    seq: int, state_map: Mapping[str, str],
) -> Plan:  # fmt: skip
    version = cm.definition.version
    nodes = cm.tree.nodes
    active: dict[str, int] = {}
    for path, entry in old_active.items():
        target = map_path(path, state_map)
        node = nodes.get(target)
        if node is None or node.kind == HISTORY:
            raise Unmovable(_missing(target, path, version))
        if target not in active:
            active[target] = entry if target == path else seq
    for target in list(active):  # a flat instance moved into a chart, or a state moved deeper
        for ancestor in nodes[target].ancestors:
            active.setdefault(ancestor.path, seq)
    for path in active:
        node = nodes[path]
        children = [c.path for c in node.state_children]
        on = [c for c in children if c in active]
        if node.kind == COMPOUND and children and len(on) != 1:
            what = "no active child" if not on else f"several active children {on}"
            raise Unmovable(
                f"compound state {path!r} of version {version!r} would have {what}: map to one of {children}"
            )
        if node.kind == PARALLEL and len(on) != len(children):
            missing = [c for c in children if c not in active]
            raise Unmovable(
                f"parallel state {path!r} of version {version!r} would miss its regions {missing}"
            )
    top = [p for p in active if "." not in p]
    if len(top) != 1:
        raise Unmovable(f"states {top} cannot all be active at the top of version {version!r}")
    ordered = dict(sorted(active.items(), key=lambda item: nodes[item[0]].order))
    history: dict[str, list[str]] = {}
    for hpath, remembered in old_history.items():
        target = map_path(hpath, state_map)
        moved = [map_path(r, state_map) for r in remembered]
        if (
            (node := nodes.get(target)) is not None
            and node.kind == HISTORY
            and all(m in nodes for m in moved)
        ):
            history[target] = moved
    label = state_label(cm.tree, {nodes[p] for p in ordered})
    done = any(p in cm.top_final for p in ordered)
    return Plan(label, ordered, history, COMPLETED if done else status)


def _missing(target: str, source: str, version: str) -> str:
    came = f" (from {source!r})" if target != source else ""
    return (
        f"state {target!r}{came} does not exist in version {version!r}: map it with"
        f" state_map={{{source!r}: 'new state'}} (--map {source}=NEW)"
    )


def _rows(
    cm: CompiledMachine | CompiledChart, plan: Plan, seq: int, timers: list[tuple[Any, ...]],
    effects: list[tuple[Any, ...]],
) -> None:  # fmt: skip
    """Which armed rows survive, and what to arm (see the module's rules)."""
    live = plan.status != COMPLETED  # a failed instance keeps its rows, for `retry`
    kept_labels: dict[str, set[str]] = {}
    for timer_id, state, entry, event in timers:
        label = event.removeprefix("after.")
        if live and plan.active.get(state) == entry and label in cm.timers.get(state, []):
            plan.keep_timers.append(timer_id)
            kept_labels.setdefault(state, set()).add(label)
        else:
            plan.drop_timers.append((timer_id, f"{state}: {event}"))
    for effect_id, state, entry, name, _status in effects:
        declared = {e.name for e in cm.effects.get(state, [])}
        # A compensation (`compensate.<effect>`) belongs to its compensating state's entry: it
        # goes on while the target still declares that state `compensate=True`.
        undoing = name.startswith(COMPENSATION_PREFIX) and state in cm.compensating
        if live and plan.active.get(state) == entry and (name in declared or undoing):
            plan.keep_effects.append(effect_id)
        else:
            plan.drop_effects.append((effect_id, f"{state}: {name}"))
    if not live:
        return
    for path, entry in plan.active.items():
        if entry == seq:
            if cm.timers.get(path) or cm.effects.get(path) or path in cm.compensating:
                plan.arm_entries.append(path)
            continue
        added = [x for x in cm.timers.get(path, []) if x not in kept_labels.get(path, set())]
        if added:
            plan.arm_timers.append((path, entry, added))


def old_states(
    row_state: str, row_entered: int, chart_text: str | None
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """An instance row's active states (path -> entry seq) and history memory."""
    if chart_text is None:
        return {row_state: row_entered}, {}
    chart = json.loads(chart_text)
    return dict(chart["active"]), {k: list(v) for k, v in chart.get("history", {}).items()}
