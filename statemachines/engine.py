"""The engine: the public facade over one database and the machines registered on it.

Each method checks its arguments and hands the work to the module that tells that story:
`sending` (how one event moves one instance, in one transaction), `starting`, `cancelling`,
`rewind`, `migration`, `queries`, the worker's `timers` and `effects` through `due`. What those
modules share (database, statements, clock, registered machines) is the engine's `runtime`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from persistence import Database, DatabaseError, migrate, stats
from persistence.database import Transaction
from persistence.group_commit import GroupCommit
from statemachines import (
    callbacks,
    cancelling,
    due,
    durable,
    effect_report,
    errors,
    migration,
    pages,
    queries,
    sending,
    starting,
    telemetry,
    versions,
)
from statemachines import prune as pruning
from statemachines import rewind as rewinding
from statemachines.arguments import check_id, check_name, check_not_reserved, check_text
from statemachines.chart import CompiledChart
from statemachines.clock import Clock, SystemClock
from statemachines.compiled import CompiledMachine
from statemachines.definition import Definition
from statemachines.durable import EffectAttempt
from statemachines.durations import MAX_BUSY_TIMEOUT, Duration, parse_duration
from statemachines.migration import MigrationReport
from statemachines.records import (
    APPLIED,
    Record,
    Snapshot,
    Status,
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
        group_commit: bool = False,
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
        self._versions = self.runtime.versions
        #: `group_commit=True`: concurrent writes of this process's threads (sends, starts,
        #: timers...) share commits, one fsync per batch (persistence.group_commit). None
        #: otherwise, and always in memory.
        if not isinstance(group_commit, bool):
            raise errors.ConfigurationError(f"group_commit must be True or False, got {group_commit!r}")
        self.group = GroupCommit(self.db) if group_commit and not self.db.in_memory else None
        self.runtime.group = self.group

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
    def register(self, definition: Definition, *, migrate: str | None = None) -> Definition:
        """Compile once, cache, and store the spec so diagrams can be drawn from the database.

        Versions registered earlier stay registered (instances run on the version they started
        on); this one becomes the latest. Warns about live instances of other versions in states
        this one lacks; `migrate="compatible"` moves those whose states it keeps unchanged."""
        if not isinstance(definition, Definition):
            raise errors.ConfigurationError(
                f"register() takes a Definition from machine(...), got {type(definition).__name__}"
            )
        versions.check_migrate_option(migrate)
        compiled = compile_machine(definition)
        with self._tx() as cur:
            self.store.save_definition(
                cur, definition.name, definition.version, definition.to_json(), self.clock.now()
            )
        self.runtime.add(compiled)
        versions.after_register(self.runtime, compiled, migrate)
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
        version: str | None = None,
    ) -> Snapshot:
        """Create an instance in the initial state: run its entry actions, arm its timers.

        It runs on the latest registered version of the machine, or on `version`, for good."""
        cm = self._compiled(machine) if version is None else self.runtime.compiled(
            machine, check_name(version, "definition version")
        )
        iid = check_id(instance_id) if instance_id is not None else uuid.uuid4().hex
        check_text(actor, "actor")
        _, ctx_json = cm.new_context(context)
        with telemetry.span("start", machine=machine, instance=iid, event="start") as span:
            snap = starting.start_instance(self.runtime, cm, machine, iid, ctx_json, actor)
            span.set(target=snap.state, outcome=APPLIED)
        return snap

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
        return sending.send(self.runtime, instance_id, event, payload, idempotency_key, actor)

    def cancel(
        self,
        instance_id: str,
        reason: str | None = None,
        *,
        actor: str | None = None,
        compensate: bool = False,
    ) -> Snapshot:
        """Close the instance as `cancelled`: state kept, timers and effects dropped, audited.

        An active or a `failed` instance can be cancelled (giving up on a failure). With
        `compensate=True` its succeeded effects are compensated after (docs/rewind-and-compensation.md)."""
        check_id(instance_id)
        check_text(reason, "reason")
        check_text(actor, "actor")
        return cancelling.cancel(self.runtime, instance_id, reason, actor, bool(compensate))

    # Rewind, compensation, retention (docs/rewind-and-compensation.md) ------------------------
    def rewind(
        self,
        instance_id: str,
        to: int | str,
        *,
        event: str | None = None,
        payload: Any = None,
        actor: str | None = None,
        reason: str | None = None,
        reopen: bool = False,
        idempotency_key: str | None = None,
    ) -> Snapshot:
        """Restore the instance as it was after history record `to` (a seq, or a state's latest
        entry), audited as `rewound`, then apply `event` with `payload` (the feedback)."""
        return rewinding.rewind(
            self.runtime, instance_id, to, event, payload, actor, reason, bool(reopen), idempotency_key
        )

    def prune(
        self,
        *,
        before: datetime | Duration,
        status: Sequence[str] = ("completed", "cancelled"),
        batch: int = 500,
        dry_run: bool = False,
    ) -> pruning.PruneReport:
        """Delete closed instances last changed before `before` (a time, or a duration ago) with
        all their rows, one transaction per batch of `batch` instances; never a live instance."""
        return pruning.prune(self.runtime, before, status, batch, dry_run)

    # Queries -------------------------------------------------------------------------------------
    def get(self, instance_id: str) -> Snapshot:
        return queries.get(self.runtime, instance_id)

    def history(self, instance_id: str) -> list[Record]:
        return queries.history(self.runtime, instance_id)

    def instances(
        self,
        *,
        machine: str | None = None,
        state: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Snapshot]:
        """Instances by machine, state (at any depth of a statechart) and status, oldest first
        (`instances_page` pages with a cursor instead of an offset)."""
        return queries.instances(self.runtime, machine, state, status, limit, offset)

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

    # Versions (statemachines/versions.py, migration.py) ------------------------------------------
    def migrate(
        self,
        ids: Iterable[str] | None = None,
        *,
        machine: str | None = None,
        from_version: str | None = None,
        to_version: str | None = None,
        state_map: Mapping[str, str] | None = None,
        context: Callable[[Any], Any] | None = None,
        dry_run: bool = False,
        actor: str | None = None,
        reason: str | None = None,
        batch: int = 500,
    ) -> MigrationReport:
        """Move instances (`ids`, or every live one of `machine` [at `from_version`]) to
        `to_version` (default: the latest registered), each in its own transaction, audited
        (outcome `migrated`); see `statemachines.migration` and docs/versions.md."""
        request = migration.Request(machine, from_version, to_version, state_map or {}, context,
                                    dry_run, actor, reason, batch)  # fmt: skip
        return migration.migrate(self.runtime, ids, request)

    def versions(self, machine: str) -> list[versions.VersionInfo]:
        """Each stored version of `machine`: registration time, live instances per state."""
        return versions.stored_versions(self.runtime, check_name(machine, "machine name"))

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

    def effects(self, instance_id: str) -> list[effect_report.EffectReport]:
        """Every effect (and compensation) of an instance with its attempts and final result."""
        return effect_report.effects(self.runtime, check_id(instance_id))

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
        if self.group is not None:
            self.group.close()
        self.db.close()

    def _tx(self) -> Transaction:
        """A write transaction whose storage errors are already the engine's typed errors."""
        return self.runtime.transaction()

    def _read(self) -> Transaction:
        return self.runtime.read()


def compile_machine(definition: Definition) -> CompiledMachine | CompiledChart:
    """Flat machines run on `transitions` (`CompiledMachine`); nested, parallel, history or
    eventless ones on the SCXML algorithm (`CompiledChart`)."""
    if definition.spec.is_chart:
        return CompiledChart(definition)
    return CompiledMachine(definition)
