"""The engine: how one event moves one instance, in one database transaction.

`send` is the story of an event: lock the row (and look for a receipt), validate the payload,
let the compiled machine pick and run the transition on a copy of the context, then write the
instance, one history record, the timers and effects of the state entered, and commit.
Everything raised before the commit leaves the database exactly as it was.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from persistence import Conflict, Database, DatabaseError, migrate, stats
from persistence.database import Transaction
from statemachines import callbacks, due, durable, errors, pages, telemetry
from statemachines.apply import to_json
from statemachines.arguments import check_id, check_name, check_not_reserved, check_page, check_text
from statemachines.chart import CompiledChart
from statemachines.clock import Clock, SystemClock
from statemachines.compiled import CompiledMachine
from statemachines.definition import Definition
from statemachines.durable import EffectAttempt
from statemachines.durations import MAX_BUSY_TIMEOUT, Duration, parse_duration
from statemachines.records import (
    ACTIVE,
    APPLIED,
    CANCELLED,
    COMPLETED,
    FAILED,
    Event,
    Record,
    Snapshot,
    Status,
)
from statemachines.rows import (
    CONTEXT,
    CREATED,
    DEF_VERSION,
    FINGERPRINT,
    MACHINE,
    RECEIPT,
    STATE,
    STATUS,
    VERSION,
    check_fingerprint,
    configuration_of,
    record_from_row,
    replay_receipt,
    snapshot_from_row,
)
from statemachines.runtime import Runtime, typed_storage_error
from statemachines.tokens import TokenClaims

DEFAULT_URL = "sqlite:///statemachines.db"


def resolve_url(url: str | None) -> str:
    """`None` -> $STATEMACHINES_DATABASE_URL or ./statemachines.db; a bare path -> SQLite."""
    url = url or os.environ.get("STATEMACHINES_DATABASE_URL") or DEFAULT_URL
    if "://" not in url:
        url = f"sqlite:///{url}"
    return url


class Engine:
    """Applies events to machine instances stored in SQLite (default) or PostgreSQL.

    The facade: it checks arguments and tells the story of one event; the parts it shares with
    timers, effects and tokens (database, statements, clock, registered machines) are its
    `runtime`, which those modules receive instead of the engine."""

    def __init__(
        self,
        url: str | None = None,
        *,
        clock: Clock | None = None,
        secret: str | bytes | None = None,
        sqlite_synchronous: str = "FULL",
        busy_timeout: Duration = "30s",
    ) -> None:
        self.url = resolve_url(url)
        busy = parse_duration(busy_timeout, maximum=MAX_BUSY_TIMEOUT)
        try:
            self.db = Database(
                self.url,
                sqlite_synchronous=sqlite_synchronous,
                busy_timeout_ms=int(busy.total_seconds() * 1000),
            )
        except DatabaseError as exc:
            raise errors.ConfigurationError(str(exc)) from exc
        self.db.error_hook = typed_storage_error
        migrate(self.db)
        self.runtime = Runtime(self.db, clock or SystemClock())
        self.store = self.runtime.store
        self.schedule = self.runtime.schedule
        self._applier = self.runtime.applier
        self._secret = secret
        self._machines = self.runtime.machines

    @classmethod
    def in_memory(cls, clock: Clock | None = None, *, secret: str | bytes | None = None) -> Engine:
        """An engine on a private in-memory SQLite database (`Engine("sqlite://")`): the same
        semantics as a file, gone when the engine is closed. For tests and experiments."""
        return cls("sqlite://", clock=clock, secret=secret)

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.runtime.clock = clock

    # Definitions ---------------------------------------------------------------------------------
    def register(self, definition: Definition) -> Definition:
        """Compile once, cache, and store the spec so diagrams can be drawn from the database."""
        if not isinstance(definition, Definition):
            raise errors.ConfigurationError(
                f"register() takes a Definition from machine(...), got {type(definition).__name__}"
            )
        compiled = compile_machine(definition)
        with self._tx() as cur:
            self.store.save_definition(
                cur, definition.name, definition.version, definition.to_json(), self.clock.now()
            )
        self._machines[definition.name] = compiled
        return definition

    def definition(self, name: str) -> Definition:
        return self._compiled(name).definition

    def stored_spec(self, name: str, version: str | None = None) -> Any:
        """The spec as stored in the database (latest, or a given version): no user code needed."""
        from statemachines.spec import MachineSpec

        check_name(name, "machine name")
        if version is not None:
            check_name(version, "definition version")
        with self._read() as cur:
            text = self.store.definition_spec(cur, name, version)
        if text is None:
            raise errors.UnknownMachine(name, self._machines)
        return MachineSpec.model_validate_json(text)

    def _compiled(self, name: str) -> CompiledMachine | CompiledChart:
        return self.runtime.compiled(name)

    # Events --------------------------------------------------------------------------------------
    def start(
        self,
        machine: str,
        context: Any = None,
        *,
        instance_id: str | None = None,
        actor: str | None = None,
    ) -> Snapshot:
        """Create an instance in the initial state: run its entry actions, arm its timers."""
        cm = self._compiled(machine)
        iid = check_id(instance_id) if instance_id is not None else uuid.uuid4().hex
        check_text(actor, "actor")
        _, ctx_json = cm.new_context(context)
        with telemetry.span("start", machine=machine, instance=iid, event="start") as span:
            snap = self._start(cm, machine, iid, ctx_json, actor)
            span.set(target=snap.state, outcome=APPLIED)
        return snap

    def _start(
        self, cm: CompiledMachine | CompiledChart, machine: str, iid: str, ctx_json: str, actor: str | None
    ) -> Snapshot:
        now = self.clock.now()
        start = Event("start", {}, iid, actor, None, now)
        try:
            if isinstance(cm, CompiledChart):
                chart_step = cm.enter_initial(ctx_json, start)
                with self._tx() as cur:
                    return self._applier.charts.start(cur, cm, iid, chart_step, actor, now)
            step = cm.enter_initial(ctx_json, start)
            status = COMPLETED if step.target in cm.final else ACTIVE
            dv = cm.definition.version
            with self._tx() as cur:
                self.store.insert_instance(cur, iid, machine, dv, step.target, step.context_json, status, now)
                self.store.insert_history(
                    cur, iid, machine, 1, "start", None, step.target, "{}", step.context_json, actor, now,
                    APPLIED,
                )  # fmt: skip
                self._applier.arm(cur, cm, iid, step.target, 1, now)
        except Conflict:
            # The id, most likely; but say so only if it is: a clash on another unique key
            # (an effect key) is a storage problem, not an existing instance.
            with self._read() as cur:
                exists = self.store.get_instance(cur, iid) is not None
            if exists:
                raise errors.InstanceExists(iid) from None
            raise errors.StorageError(
                f"starting instance {iid!r} conflicted with a stored row other than an instance"
                " (an effect key of an older format?)"
            ) from None
        return Snapshot(
            iid, machine, step.target, status, step.context_json, 1, now, now, cm.model, step.context, dv,
        )  # fmt: skip

    def send(
        self,
        instance_id: str,
        event: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Snapshot:
        """Apply one event atomically; see docs/design.md ("send") for the exact steps."""
        check_id(instance_id)
        check_name(event, "event")
        check_text(actor, "actor")
        check_not_reserved(event)
        if idempotency_key is not None:
            check_name(idempotency_key, "idempotency_key")
        with telemetry.span("send", instance=instance_id, event=event) as span:
            for attempt in range(3):
                try:
                    snap = self._send_once(instance_id, event, payload, idempotency_key, actor, span)
                    span.set(target=snap.state, outcome=span.get("outcome") or APPLIED)
                    return snap
                except Conflict:
                    # A concurrent send with the same key committed first: its receipt wins.
                    if idempotency_key is None or attempt == 2:
                        raise errors.StorageError(
                            f"conflicting concurrent write on instance {instance_id!r}"
                        ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(
        self, iid: str, event: str, payload: Any, key: str | None, actor: str | None, span: Any
    ) -> Snapshot:
        with self._tx() as cur:
            row = self.store.lock_instance(cur, iid, key)
            if row is None:
                raise errors.InstanceNotFound(iid)
            span.set(machine=row[MACHINE], source=row[STATE])
            cm = self._compiled(row[MACHINE])
            if row[RECEIPT] is not None:
                span.set(outcome="replayed")
                return _replay(self.db, cm, row, event, payload, key)
            if row[STATUS] != ACTIVE:
                raise errors.InstanceClosed(iid, row[STATUS], row[STATE])
            outcome = self._applier.apply(cur, cm, row, event, payload, key, actor, self.clock.now())
        if isinstance(outcome, errors.EventRejected):
            raise outcome
        return outcome

    def cancel(self, instance_id: str, reason: str | None = None, *, actor: str | None = None) -> Snapshot:
        """Close the instance as `cancelled`: state kept, timers and effects dropped, audited.

        An active or a `failed` instance can be cancelled (giving up on a failure)."""
        check_id(instance_id)
        check_text(reason, "reason")
        check_text(actor, "actor")
        with self._tx() as cur:
            row = self.store.lock_instance(cur, instance_id, None)
            if row is None:
                raise errors.InstanceNotFound(instance_id)
            if row[STATUS] not in (ACTIVE, FAILED):
                raise errors.InstanceClosed(instance_id, row[STATUS], row[STATE])
            now = self.clock.now()
            self._applier.set_status(
                cur, row, CANCELLED, "cancel", CANCELLED, now,
                reason=reason, payload={"reason": reason}, actor=actor,
            )  # fmt: skip
            self._applier.disarm(cur, instance_id, now)
        model = self._model_of(row[MACHINE])
        return Snapshot(
            instance_id,
            row[MACHINE],
            row[STATE],
            CANCELLED,
            row[CONTEXT],
            row[VERSION],
            self.db.from_ts(row[CREATED]),
            now,
            model,
            definition_version=row[DEF_VERSION],
            configuration=configuration_of(row),
        )

    # Queries -------------------------------------------------------------------------------------
    def get(self, instance_id: str) -> Snapshot:
        check_id(instance_id)
        with self._read() as cur:
            row = self.store.get_instance(cur, instance_id)
        if row is None:
            raise errors.InstanceNotFound(instance_id)
        return snapshot_from_row(self.db, row, self._model_of(row[MACHINE]))

    def history(self, instance_id: str) -> list[Record]:
        check_id(instance_id)
        with self._read() as cur:
            rows = self.store.history(cur, instance_id)
            if not rows and self.store.get_instance(cur, instance_id) is None:
                raise errors.InstanceNotFound(instance_id)
        return [record_from_row(self.db, r) for r in rows]

    def instances(
        self,
        *,
        machine: str | None = None,
        state: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Snapshot]:
        check_page(limit, offset)
        for what, value in (("machine", machine), ("state", state), ("status", status)):
            if value is not None:
                check_name(value, what)
        # `state` matches at any depth of a statechart; a machine registered here as flat keeps
        # the plain indexed query.
        known = self._machines.get(machine) if machine is not None else None
        charts = known is None or known.is_chart
        with self._read() as cur:
            rows = self.store.list_instances(cur, machine, state, status, limit, offset, charts)
        return [snapshot_from_row(self.db, r, self._model_of(r[MACHINE])) for r in rows]

    def instances_page(
        self,
        *,
        machine: str | None = None,
        state: str | None = None,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> pages.Page[Snapshot]:
        """Like `instances`, one keyset page at a time: pass the page's `next_cursor` back to get
        the next one (None: that was the last). Deep pages cost what the first does."""
        pages.check_limit(limit)
        for what, value in (("machine", machine), ("state", state), ("status", status)):
            if value is not None:
                check_name(value, what)
        return pages.instances_page(self.runtime, machine, state, status, limit, cursor)

    def history_page(
        self, instance_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> pages.Page[Record]:
        """`history` one keyset page at a time (records in seq order), like `instances_page`."""
        check_id(instance_id)
        pages.check_limit(limit)
        return pages.history_page(self.runtime, instance_id, limit, cursor)

    def state_counts(self, machine: str) -> dict[str, dict[str, int]]:
        """How many instances of `machine` sit in each state, by status: `{state: {status: n}}`
        (a statechart instance counts in every state active in it). For dashboards."""
        check_name(machine, "machine name")
        with self._read() as cur:
            return stats.state_counts(self.db, cur, machine)

    def versions(self, machine: str) -> list[str]:
        """The definition versions of `machine` stored in the database, latest first."""
        check_name(machine, "machine name")
        with self._read() as cur:
            return stats.definition_versions(self.db, cur, machine)

    def _model_of(self, machine: str) -> type[BaseModel] | None:
        return self.runtime.model_of(machine)

    # Durable time --------------------------------------------------------------------------------
    def run_due(self, *, batch: int = 100) -> int:
        """Fire due timers and run due effects until nothing is due at the clock's now.

        Returns timers fired plus effect attempts made (results delivered included). Work that
        becomes due during the call (an effect armed by a timer it fired) runs in the same call.
        """
        return durable.run_due(self.runtime, batch)

    def next_due(self) -> datetime | None:
        """When the earliest timer or effect of the machines registered here comes due; None
        when nothing is armed. `run_due` at that instant has work to do."""
        return due.next_due(self.runtime)

    def status(self, instance_id: str) -> Status:
        """The snapshot plus `waiting_on`: events accepted now, pending timers and effects."""
        return durable.status(self.runtime, check_id(instance_id))

    def effect_attempts(self, instance_id: str) -> list[EffectAttempt]:
        """Every effect attempt of an instance, with its duration and error."""
        return durable.effect_attempts(self.runtime, check_id(instance_id))

    def retry(self, instance_id: str, *, actor: str | None = None) -> Snapshot:
        """Redrive a `failed` instance: back to `active`, failed effects re-armed now, results
        that arrived while it was failed delivered, due timers fire again; audited (`retried`)."""
        check_id(instance_id)
        check_text(actor, "actor")
        return durable.retry(self.runtime, instance_id, actor)

    # Callback tokens -----------------------------------------------------------------------------
    def token(self, instance_id: str, event: str, ttl: Duration = "7d") -> str:
        """A signed callback token that lets its bearer send `event` once, while the instance
        stays in its current state entry, until `ttl` has passed."""
        check_id(instance_id)
        if isinstance(event, str):
            check_not_reserved(event)
        return callbacks.issue_token(self.runtime, self._secret, instance_id, event, ttl)

    def callback_url(
        self, instance_id: str, event: str, ttl: Duration = "7d", *, base_url: str | None = None
    ) -> str:
        """A link that sends `event` once (`token`) through the web service:
        `$STATEMACHINES_BASE_URL/callbacks/<token>` (or `base_url`). POSTing JSON to it applies
        the event with that payload; opening it in a browser shows a form. See docs/service.md."""
        return callbacks.link(self.token(instance_id, event, ttl), base_url)

    def inspect_token(self, token: str) -> tuple[TokenClaims, str]:
        """What a token would do if redeemed now, and its instance's machine, without spending
        it; raises `TokenInvalid` (`TokenForged` if we did not sign it) as `send_token` would."""
        return callbacks.inspect_token(self.runtime, self._secret, token)

    def send_token(self, token: str, payload: Any = None, *, actor: str | None = None) -> Snapshot:
        """Apply the event a token was issued for; forged, expired, stale or reused tokens raise
        `TokenInvalid` and change nothing. A guard refusing the event spends the token (the
        refusal is in the history) and raises `GuardRejected`."""
        check_text(actor, "actor")
        return callbacks.redeem_token(self.runtime, self._secret, token, payload, actor)

    def close(self) -> None:
        self.db.close()

    def _tx(self) -> Transaction:
        """A write transaction whose storage errors are already the engine's typed errors."""
        return self.runtime.transaction()

    def _read(self) -> Transaction:
        return self.runtime.read()


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


def compile_machine(definition: Definition) -> CompiledMachine | CompiledChart:
    """Flat machines run on `transitions` (`CompiledMachine`); nested, parallel, history or
    eventless ones on the SCXML algorithm (`CompiledChart`)."""
    if definition.spec.is_chart:
        return CompiledChart(definition)
    return CompiledMachine(definition)
