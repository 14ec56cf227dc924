"""Writing one event's outcome inside an open transaction.

Shared by everything that moves an instance (`send`, a timer firing, an effect finishing, a
callback token): each locks the instance row itself, then hands it here. Nothing in this module
commits; the caller's transaction is the unit of atomicity.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from persistence import Database, Store
from persistence.schedule import Schedule
from statemachines import errors, telemetry
from statemachines.compiled import CompiledMachine, Step
from statemachines.durations import deadline
from statemachines.records import ACTIVE, APPLIED, COMPLETED, FAILED, REJECTED, Event, Snapshot
from statemachines.rows import (
    ARMED,
    CHART,
    CONTEXT,
    CREATED,
    ENTERED_SEQ,
    LAST_SEQ,
    MACHINE,
    STATE,
    STATUS,
    VERSION,
    applied_receipt,
    rejected_receipt,
    request_fingerprint,
)

if TYPE_CHECKING:
    from statemachines.chart import CompiledChart
    from statemachines.chart_apply import ChartApplier

#: History outcome of an instance put into status `failed` (an effect exhausted without a
#: handler, a timer whose transition raised).
FAILED_OUTCOME = "failed"


class Applier:
    """Writes events of flat machines; hands those of statecharts to `charts`."""

    def __init__(self, db: Database, store: Store, schedule: Schedule, charts: ChartApplier) -> None:
        self.db = db
        self.store = store
        self.schedule = schedule
        self.charts = charts

    def apply(
        self,
        cur: Any,
        cm: CompiledMachine,
        row: tuple[Any, ...],
        event: str,
        payload: Any,
        key: str | None,
        actor: str | None,
        now: datetime,
        source: str | None = None,
    ) -> Snapshot | errors.EventRejected:
        """Apply `event` to the locked `row`. A rejection is recorded and returned, not raised,
        so the caller can commit the record first. Anything else raised means: roll back.

        `source` (statecharts): only transitions declared on that state may take the event; a
        timer's event belongs to the state that armed it, not to whichever state handles its label."""
        if cm.is_chart or row[CHART] is not None:
            return self.charts.apply(cur, cm, row, event, payload, key, actor, now, source)  # type: ignore[arg-type]
        iid = row[0]
        value = cm.validate_payload(event, payload)
        payload_json = to_json(event, value)
        seq = row[LAST_SEQ] + 1
        try:
            step = cm.step(row[STATE], row[CONTEXT], Event(event, value, iid, actor, key, now))
        except errors.EventRejected as err:
            self.store.bump_seq(cur, iid, seq)
            self.store.insert_history(
                cur, iid, row[MACHINE], seq, event, row[STATE], row[STATE], payload_json,
                row[CONTEXT], actor, now, REJECTED, f"{type(err).__name__}: {err}",
                previous=row[CONTEXT],
            )  # fmt: skip
            write_receipt(self.store, cur, iid, key, seq, event, payload_json, err, now)
            return err
        return self._write(cur, cm, row, seq, event, payload_json, actor, now, key, step)

    def _write(
        self,
        cur: Any,
        cm: CompiledMachine,
        row: tuple[Any, ...],
        seq: int,
        event: str,
        payload_json: str,
        actor: str | None,
        now: datetime,
        key: str | None,
        step: Step,
    ) -> Snapshot:
        iid = row[0]
        status = COMPLETED if step.target in cm.final else ACTIVE
        entered_seq = row[ENTERED_SEQ] if step.internal else seq
        version = row[VERSION] + 1
        was_armed = len(row) <= ARMED or row[ARMED] != 0  # NULL or a row without it: maybe
        armed = was_armed if step.internal else status == ACTIVE and arms(cm, step.target)
        self.store.update_instance(
            cur, iid, cm.definition.version,
            step.target if step.target != row[STATE] else None,
            step.context_json,
            status if status != row[STATUS] else None,
            version, entered_seq, seq, now, armed,
        )  # fmt: skip
        self.store.insert_history(
            cur, iid, cm.name, seq, event, step.source, step.target, payload_json,
            step.context_json, actor, now, APPLIED, previous=row[CONTEXT],
        )  # fmt: skip
        if not step.internal:
            # From the rows, not from the definition registered now: the rows may have been armed
            # by another version of the machine (a deploy, a rollback) that declared other ones.
            # The instance's `armed` flag was written by whichever version entered the state.
            if was_armed:
                self.disarm(cur, iid, now)
            if armed:
                self.arm(cur, cm, iid, step.target, seq, now)
        snap = Snapshot(
            iid, cm.name, step.target, status, step.context_json, version,
            self.db.from_ts(row[CREATED]), now, cm.model, step.context, cm.definition.version,
        )  # fmt: skip
        write_receipt(self.store, cur, iid, key, seq, event, payload_json, snap, now)
        return snap

    def arm(self, cur: Any, cm: CompiledMachine, iid: str, state: str, seq: int, now: datetime) -> None:
        """Arm the timers and effects of a state just entered (its entry is history `seq`)."""
        arm_state(self.schedule, cur, cm, iid, state, seq, now, partial(effect_key, iid, seq))

    def disarm(self, cur: Any, iid: str, now: datetime) -> None:
        """Drop every armed timer and cancel every live effect of the instance, whichever version
        of its machine armed them (measured: ~3 us per transition on SQLite, one round trip on
        PostgreSQL, when there is nothing to drop)."""
        self.schedule.disarm(cur, iid, now)

    def drop_sent(self, cur: Any, row: tuple[Any, ...]) -> None:
        """Drop the events a chart instance sent itself (SCXML `<send>`) that are not delivered
        yet: like its timers, they belong to the run that a cancel ends or a rewind undoes."""
        if row[CHART] is not None:
            self.charts.sends.drop_all(cur, row[0])

    def set_status(
        self,
        cur: Any,
        row: tuple[Any, ...],
        status: str,
        event: str,
        outcome: str,
        now: datetime,
        *,
        reason: str | None = None,
        payload: Any = None,
        actor: str | None = None,
    ) -> None:
        """Change the status of the locked instance (state, context and version kept) and audit it
        with one history record: `cancel`, `retry`, and the engine failing an instance."""
        seq = row[LAST_SEQ] + 1
        self.store.set_status(cur, row[0], status, seq, now)
        payload_json = json.dumps(payload if payload is not None else {})
        if row[CHART] is not None:
            self.charts.audit(cur, row, seq, event, payload_json, actor, now, outcome, reason)
            return
        self.store.insert_history(
            cur, row[0], row[MACHINE], seq, event, row[STATE], row[STATE],
            payload_json, row[CONTEXT], actor, now, outcome, reason,
            previous=row[CONTEXT],
        )  # fmt: skip

    def fail(
        self, cur: Any, row: tuple[Any, ...], event: str, reason: str, now: datetime, payload: Any = None
    ) -> None:
        """Put the instance into status `failed` (state kept) with an audit record saying why."""
        self.set_status(cur, row, FAILED, event, FAILED_OUTCOME, now, reason=reason, payload=payload)


def arms(cm: CompiledMachine | CompiledChart, state: str) -> bool:
    """Whether entering `state` arms timer or effect rows (a compensating state arms the
    compensations of the instance's effects)."""
    return bool(cm.timers.get(state) or cm.effects.get(state) or state in cm.compensating)


def write_receipt(
    store: Store,
    cur: Any,
    iid: str,
    key: str | None,
    seq: int,
    event: str,
    payload_json: str,
    outcome: Snapshot | errors.EventRejected,
    now: datetime,
) -> None:
    """Record what a send with idempotency `key` got (flat or chart, applied or rejected), with
    the request's fingerprint, so a retry with the same key replays it; no key, no receipt."""
    if key is None:
        return
    result = applied_receipt(outcome) if isinstance(outcome, Snapshot) else rejected_receipt(outcome)
    store.insert_receipt(cur, iid, key, seq, result, now, request_fingerprint(event, payload_json))


def arm_state(
    schedule: Schedule,
    cur: Any,
    cm: CompiledMachine | CompiledChart,
    iid: str,
    state: str,
    seq: int,
    now: datetime,
    key_of: Callable[[str], str],
) -> None:
    """Arm the timers and effects `state` declares for its entry `seq`; `key_of` gives an
    effect's idempotency key from its name (flat and chart keys differ: `effect_key`,
    `chart_effect_key`)."""
    labels = cm.timers.get(state)
    if labels:
        timers = [(f"after.{x}", deadline(now, x)) for x in labels]
        schedule.arm_timers(cur, iid, cm.name, seq, state, timers, telemetry.traceparent())
    effects = cm.effects.get(state)
    if effects:
        keys = [(e.name, key_of(e.name)) for e in effects]
        schedule.arm_effects(cur, iid, cm.name, seq, state, keys, now, telemetry.traceparent())
    if state in cm.compensating:  # a saga's undo step: statemachines/compensation.py
        from statemachines.compensation import arm_compensations  # (it imports this module)

        arm_compensations(schedule, cur, cm, iid, state, seq, now)


def effect_key(instance_id: str, entered_seq: int, name: str) -> str:
    """The idempotency key of effect `name` in the state entry `entered_seq` of an instance: the
    three parts as a compact JSON array, e.g. `["order-7",1,"charge"]` (ASCII: non-ASCII text is
    `\\u`-escaped, so the key fits any header or API field).

    JSON makes the key unambiguous whatever the id and the name contain (`:` included), so two
    effects never share a key. Rows stored in the earlier `"<id>:<seq>:<name>"` format keep
    their keys; a new key can equal an old one only for an effect name ending in `"]`."""
    return _key_encode([instance_id, entered_seq, name])


_key_encode = json.JSONEncoder(separators=(",", ":")).encode


_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode  # built once: this runs per event


def to_json(event: str, payload: Any) -> str:
    if isinstance(payload, BaseModel):
        return payload.model_dump_json()
    if not payload and isinstance(payload, dict):
        return "{}"
    try:
        return _encode(payload)
    except (TypeError, ValueError) as exc:
        raise errors.PayloadInvalid(event, f"not JSON-serialisable: {exc}") from None
    except RecursionError:
        raise errors.PayloadInvalid(event, "nested too deeply to store as JSON") from None


def apply_or_fail(
    applier: Applier,
    cur: Any,
    cm: CompiledMachine,
    row: tuple[Any, ...],
    event: str,
    payload: Any,
    actor: str,
    now: datetime,
    source: str | None = None,
) -> Snapshot | errors.EventRejected | None:
    """For events the engine sends itself (timers, effect results): nobody is there to catch
    an error, so a failing action puts the instance into `failed` instead of losing the event.
    A savepoint undoes the half-applied event first. Returns None when the instance failed."""
    cur.execute("SAVEPOINT sm_internal_event")
    try:
        outcome = applier.apply(cur, cm, row, event, payload, None, actor, now, source)
    except (
        errors.ActionFailed,
        errors.ContextInvalid,
        errors.PayloadInvalid,
        errors.TimeOutOfRange,
        errors.StepLimitExceeded,  # a statechart's eventless or done.state loop
    ) as exc:
        cur.execute("ROLLBACK TO SAVEPOINT sm_internal_event")
        applier.fail(cur, row, event, f"{type(exc).__name__}: {exc}", now, payload)
        return None
    cur.execute("RELEASE SAVEPOINT sm_internal_event")
    return outcome
