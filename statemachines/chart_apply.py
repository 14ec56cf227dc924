"""Writing one statechart step inside an open transaction: the chart counterpart of `apply.py`.

`statemachines.chart` decides (pure: configuration, history memory and context in, a `ChartStep`
out); this module writes what it decided, in the caller's transaction:

- the instance row: `state` is the one-string summary, `chart` the active states with the
  history seq of their entry, and the history memory (`{"active": {"checks": 4, ...}, "history":
  {"review.last": ["review.second"]}}`); `entered_seq` stays 0 (entries are per state);
- one history record per external event, however many regions moved (`target` the summary,
  `configuration` the active atomic states after it); a rejected event is recorded the same way
  with the instance unchanged;
- `sm_chart_states`: the states exited deleted, those entered inserted (with their entry seq);
- timers and effects per state: the rows of state entries no longer active are dropped or
  cancelled (from the rows, whichever version armed them), those of the states entered armed
  with the entering seq. A state left alone (a parent while its children move) keeps its rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from persistence import Database, Store
from persistence.chart_store import ChartStore
from persistence.schedule import Schedule
from persistence.send_queue import SendQueue
from statemachines import errors
from statemachines.apply import arm_state, to_json, write_receipt
from statemachines.chart import ChartStep, CompiledChart
from statemachines.records import ACTIVE, APPLIED, COMPLETED, REJECTED, Event, ScxmlEvent, Snapshot
from statemachines.rows import (
    CONTEXT,
    CREATED,
    LAST_SEQ,
    MACHINE,
    STATE,
    STATUS,
    VERSION,
    atomic_states,
    chart_of,
)

_compact = json.JSONEncoder(separators=(",", ":")).encode


def chart_json(
    active: Mapping[str, int], history: Mapping[str, Iterable[str]], armed: Iterable[str] = ()
) -> str:
    """The `chart` column: active states (document order) with their entry seq, history memory,
    and (when any) `armed`: the active states whose entry armed timer or effect rows, so a step
    that exits none of them runs no statement for rows there are none of."""
    data: dict[str, Any] = {"active": dict(active), "history": {k: list(v) for k, v in history.items()}}
    armed = list(armed)
    if armed:
        data["armed"] = armed
    return _compact(data)


def chart_effect_key(instance_id: str, entered_seq: int, state: str, name: str) -> str:
    """The idempotency key of effect `name` of `state` in its entry `entered_seq`: JSON
    `["kyc-1",4,"checks.identity.verifying","verify_id"]`. The state is part of the key: regions
    entered in the same step share the seq, and may declare effects of the same name."""
    return _compact([instance_id, entered_seq, state, name])


class ChartApplier:
    """Writes chart steps; `Applier.apply` hands chart instances here."""

    def __init__(self, db: Database, store: Store, schedule: Schedule) -> None:
        self.db = db
        self.store = store  # what chart and flat instances share: sequence numbers, receipts
        self.rows = ChartStore(db)  # what is the statecharts' own
        self.schedule = schedule
        self.sends = SendQueue(db)  # SCXML <send>: events queued for later transactions

    def start(
        self, cur: Any, cm: CompiledChart, iid: str, step: ChartStep, actor: str | None, now: datetime
    ) -> Snapshot:
        """Insert a new instance in the configuration `step` entered (history seq 1)."""
        status = COMPLETED if step.done else ACTIVE
        active = dict.fromkeys(step.active_order, 1)
        armed = _armable(cm, active) if status == ACTIVE else []
        dv = cm.definition.version
        self.rows.insert_chart_instance(
            cur,
            iid,
            cm.name,
            dv,
            step.state,
            step.context_json,
            status,
            chart_json(active, step.history, armed),
            now,
        )
        self.rows.insert_chart_history(
            cur, iid, cm.name, 1, "start", None, step.state, "{}", step.context_json, actor, now,
            APPLIED, None, _compact(list(step.configuration)),
        )  # fmt: skip
        self.rows.move_chart_states(cur, iid, cm.name, [], list(active), 1)
        self.arm(cur, cm, iid, armed, 1, now)
        if step.sends and status == ACTIVE:
            self.sends.write(cur, iid, cm.name, step.sends, now)
        return Snapshot(
            iid, cm.name, step.state, status, step.context_json, 1, now, now, cm.model, step.context, dv,
            step.configuration,
        )  # fmt: skip

    def apply(
        self,
        cur: Any,
        cm: CompiledChart,
        row: tuple[Any, ...],
        event: str,
        payload: Any,
        key: str | None,
        actor: str | None,
        now: datetime,
        source: str | None = None,
        *,
        sent: tuple[str, str] | None = None,
    ) -> Snapshot | errors.EventRejected:
        """Apply `event` to the locked chart instance `row`, as `Applier.apply` does for flat ones:
        a rejection is recorded and returned; anything raised (StepLimitExceeded included) means
        roll back. `sent`: (send id, origin) of an event a `<send>` queued (`statemachines.sends`)."""
        iid = row[0]
        chart = chart_of(row)
        if chart is None or not cm.is_chart:
            started, now_is = (
                ("a flat machine", "a statechart") if chart is None else ("a statechart", "flat")
            )
            raise errors.ConfigurationError(
                f"instance {iid!r} was started as {started}, but machine {cm.name!r} is now"
                f" registered as {now_is}: register the definition it was started with"
            )
        value = cm.validate_payload(event, payload)
        payload_json = to_json(event, value)
        seq = row[LAST_SEQ] + 1
        active: dict[str, int] = chart["active"]
        configuration = atomic_states(active)
        history = {k: tuple(v) for k, v in chart["history"].items()}
        try:
            ev = Event(event, value, iid, actor, key, now)
            if sent is not None:
                ev = ScxmlEvent(event, value, iid, actor, key, now, "external", *sent)
            step = cm.step(configuration, history, row[CONTEXT], ev, source=source)
        except errors.EventRejected as err:
            self.store.bump_seq(cur, iid, seq)
            self.rows.insert_chart_history(
                cur, iid, row[MACHINE], seq, event, row[STATE], row[STATE], payload_json,
                row[CONTEXT], actor, now, REJECTED, f"{type(err).__name__}: {err}",
                _compact(list(configuration)),
            )  # fmt: skip
            write_receipt(self.store, cur, iid, key, seq, event, payload_json, err, now)
            return err
        armed = chart.get("armed", ())
        return self._write(cur, cm, row, active, armed, seq, event, payload_json, actor, now, key, step)

    def _write(
        self,
        cur: Any,
        cm: CompiledChart,
        row: tuple[Any, ...],
        active: dict[str, int],
        armed: list[str],
        seq: int,
        event: str,
        payload_json: str,
        actor: str | None,
        now: datetime,
        key: str | None,
        step: ChartStep,
    ) -> Snapshot:
        iid = row[0]
        status = COMPLETED if step.done else ACTIVE
        entered = set(step.entered)
        exited = set(step.exited)
        # A state keeps its entry unless the step entered it (again); an old entry is gone when
        # the step exited it, even if it was entered again afterwards.
        new_active = {p: seq if p in entered else active[p] for p in step.active_order}
        gone = [p for p in active if p in exited]
        came = [p for p, s in new_active.items() if s == seq and p in entered]
        disarm = any(p in exited for p in armed)
        fresh = _armable(cm, came) if status == ACTIVE else []
        now_armed = [*(p for p in armed if p not in exited), *fresh] if status == ACTIVE else []
        version = row[VERSION] + 1
        self.rows.update_chart_instance(
            cur, iid, cm.definition.version,
            step.state if step.state != row[STATE] else None,
            step.context_json,
            status if status != row[STATUS] else None,
            chart_json(new_active, step.history, now_armed), version, seq, now,
        )  # fmt: skip
        self.rows.insert_chart_history(
            cur, iid, cm.name, seq, event, row[STATE], step.state, payload_json, step.context_json,
            actor, now, APPLIED, None, _compact(list(step.configuration)),
        )  # fmt: skip
        if gone or came:
            self.rows.move_chart_states(cur, iid, cm.name, gone, came, seq)
        if step.sends and status == ACTIVE:
            self.sends.write(cur, iid, cm.name, step.sends, now)
        if status != ACTIVE:
            self.schedule.disarm(cur, iid, now)  # a top-level final state: nothing waits any more
            if cm.tree.has_content:  # nor do the events it sent itself
                self.sends.drop_all(cur, iid)
        else:
            if disarm:  # from the rows: whichever version armed them, only entries now gone
                self.schedule.disarm_exited(cur, iid, now)
            self.arm(cur, cm, iid, fresh, seq, now)
        snap = Snapshot(
            iid, cm.name, step.state, status, step.context_json, version,
            self.db.from_ts(row[CREATED]), now, cm.model, step.context, cm.definition.version,
            step.configuration,
        )  # fmt: skip
        write_receipt(self.store, cur, iid, key, seq, event, payload_json, snap, now)
        return snap

    def audit(
        self,
        cur: Any,
        row: tuple[Any, ...],
        seq: int,
        event: str,
        payload_json: str,
        actor: str | None,
        now: datetime,
        outcome: str,
        reason: str | None,
    ) -> None:
        """A history record that leaves the chart instance where it is (`cancel`, `retry`,
        failing it): its configuration is the current one."""
        configuration = atomic_states(chart_of(row)["active"])  # type: ignore[index]
        self.rows.insert_chart_history(
            cur, row[0], row[MACHINE], seq, event, row[STATE], row[STATE], payload_json, row[CONTEXT],
            actor, now, outcome, reason, _compact(list(configuration)),
        )  # fmt: skip

    def arm(
        self, cur: Any, cm: CompiledChart, iid: str, states: Iterable[str], seq: int, now: datetime
    ) -> None:
        """Arm the timers and effects each state entered declares, bound to its entry `seq`."""
        for state in states:
            key_of = partial(chart_effect_key, iid, seq, state)
            arm_state(self.schedule, cur, cm, iid, state, seq, now, key_of)


def _armable(cm: CompiledChart, states: Iterable[str]) -> list[str]:
    """The states among `states` that declare timers or effects, or compensate (which arms rows)."""
    return [s for s in states if cm.timers.get(s) or cm.effects.get(s) or s in cm.compensating]
