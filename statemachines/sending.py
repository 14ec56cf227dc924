"""How one event moves one instance, in one database transaction: the story of `send`.

Lock the instance's row (and look for the receipt of the idempotency key), pick the version the
instance runs on, validate the payload, let the compiled machine choose and run the transition
on a copy of the context, then write the instance, one history record, the timers and effects
of the states entered, and commit (statemachines/apply.py writes). Everything raised before the
commit leaves the database exactly as it was; a refused event is recorded and raised after the
commit. `Engine.send` checks the arguments and calls `send` here.

A statechart with executable content has SCXML's one external queue: its instance's `<send>`
events already due are delivered first, in the same transaction, each its own step
(`sends.deliver_due_first`), then the caller's event. If they closed the instance (a final state,
or a send whose step failed it), what they did is committed and the caller gets `InstanceClosed`
after the commit, as any event to a closed instance does. Other machines pay one attribute test.
"""

from __future__ import annotations

from typing import Any

from persistence import Conflict, Database
from statemachines import errors, telemetry
from statemachines.apply import to_json
from statemachines.chart import CompiledChart
from statemachines.compiled import CompiledMachine
from statemachines.records import ACTIVE, APPLIED, Snapshot
from statemachines.rows import (
    DEF_VERSION,
    FINGERPRINT,
    MACHINE,
    RECEIPT,
    STATE,
    STATUS,
    check_fingerprint,
    replay_receipt,
)
from statemachines.runtime import Runtime
from statemachines.sends import deliver_due_first, may_send

#: A send whose key a concurrent send committed first is tried again (it then finds the receipt).
ATTEMPTS = 3


def send(rt: Runtime, iid: str, event: str, payload: Any, key: str | None, actor: str | None) -> Snapshot:
    """Apply `event` to instance `iid` (arguments already checked); see docs/design.md ("send")."""
    with telemetry.span("send", instance=iid, event=event) as span:
        for attempt in range(ATTEMPTS):
            try:
                snap = _send_once(rt, iid, event, payload, key, actor, span)
                span.set(target=snap.state, outcome=span.get("outcome") or APPLIED)
                return snap
            except Conflict:
                # A concurrent send with the same key committed first: its receipt wins.
                if key is None or attempt == ATTEMPTS - 1:
                    raise errors.StorageError(f"conflicting concurrent write on instance {iid!r}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _send_once(
    rt: Runtime, iid: str, event: str, payload: Any, key: str | None, actor: str | None, span: Any
) -> Snapshot:
    with rt.transaction() as cur:
        row = rt.store.lock_instance(cur, iid, key)
        if row is None:
            raise errors.InstanceNotFound(iid)
        span.set(machine=row[MACHINE], source=row[STATE])
        cm = rt.versions.get((row[MACHINE], row[DEF_VERSION])) or rt.compiled(
            row[MACHINE], row[DEF_VERSION]
        )  # pinned: the version the instance started on (or was migrated to)
        if row[RECEIPT] is not None:
            span.set(outcome="replayed")
            return _replay(rt.db, cm, row, event, payload, key)
        if row[STATUS] != ACTIVE:
            raise errors.InstanceClosed(iid, row[STATUS], row[STATE])
        if not may_send(cm):
            outcome = rt.applier.apply(cur, cm, row, event, payload, key, actor, rt.clock.now())
        else:
            outcome = _behind_due_sends(rt, cur, cm, row, event, payload, key, actor)
    if not isinstance(outcome, Snapshot):  # rejected (recorded), or closed by a delivered send
        raise outcome
    return outcome


def _behind_due_sends(
    rt: Runtime,
    cur: Any,
    cm: CompiledChart,
    row: tuple[Any, ...],
    event: str,
    payload: Any,
    key: str | None,
    actor: str | None,
) -> Snapshot | errors.EventRejected | errors.InstanceClosed:
    """SCXML's one external queue: the instance's sends already due go first, then `event`. If
    they closed the instance, `InstanceClosed` is returned, not raised, so their work commits."""
    now = rt.clock.now()
    row = deliver_due_first(rt, cur, row, now)
    if row[STATUS] != ACTIVE:
        return errors.InstanceClosed(row[0], row[STATUS], row[STATE])
    return rt.applier.apply(cur, cm, row, event, payload, key, actor, now)


def _replay(
    db: Database,
    cm: CompiledMachine | CompiledChart,
    row: tuple[Any, ...],
    event: str,
    payload: Any,
    key: str,
) -> Snapshot:
    """The recorded result of a key already used, if this is the request it was used for."""
    if row[FINGERPRINT] is not None:
        payload_json = to_json(event, cm.validate_payload(event, payload))
        check_fingerprint(row[0], key, row[FINGERPRINT], event, payload_json)
    return replay_receipt(db, row[RECEIPT], cm.model)
