"""What every durable operation shares: the database, its statements, the clock, the machines.

`Engine` is the public facade; timers, effects, callback tokens and redrive receive this object
instead, so none of them reaches into the facade (and no import circle runs engine -> effects ->
engine). It holds no logic beyond looking things up.
"""

from __future__ import annotations

import reprlib
from typing import Any

from pydantic import BaseModel

from persistence import Conflict, Database, DatabaseError, DatabaseUnavailable, Store
from persistence.database import Transaction, is_transient
from persistence.errors import ReentrantTransaction
from persistence.group_commit import GroupCommit, GroupTransaction
from persistence.schedule import Schedule
from statemachines import errors
from statemachines.apply import Applier
from statemachines.chart import CompiledChart
from statemachines.chart_apply import ChartApplier
from statemachines.clock import Clock
from statemachines.compiled import CompiledMachine


class Runtime:
    """The engine's shared parts. `versions` is the registry of compiled machines this process
    serves, by (name, definition version): an instance runs on the version it started on, and
    workers claim timers and effects of these versions only. `machines` maps each name to its
    latest registered version (what `start` uses by default)."""

    __slots__ = ("applier", "clock", "db", "group", "machines", "schedule", "store", "versions")

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.store = Store(db)
        self.schedule = Schedule(db)
        charts = ChartApplier(db, self.store, self.schedule)
        self.applier = Applier(db, self.store, self.schedule, charts)
        self.machines: dict[str, CompiledMachine | CompiledChart] = {}
        self.versions: dict[tuple[str, str], CompiledMachine | CompiledChart] = {}
        #: Set by `Engine(group_commit=True)`: write transactions join its shared batches.
        self.group: GroupCommit | None = None

    def add(self, compiled: CompiledMachine | CompiledChart) -> None:
        """Register a compiled version next to the others, as the latest of its machine."""
        self.versions[(compiled.name, compiled.definition.version)] = compiled
        self.machines[compiled.name] = compiled

    def compiled(self, name: Any, version: str | None = None) -> Any:
        """The registered machine `name` at `version` (an instance's: one dict lookup), or its
        latest when `version` is None. `UnknownMachine` names the machines there are;
        `VersionNotRegistered` the versions of this one."""
        if version is not None:
            compiled = self.versions.get((name, version))
            if compiled is not None:
                return compiled
            if name in self.machines:
                raise errors.VersionNotRegistered(name, version, self.registered_versions(name))
        compiled = self.machines.get(name) if isinstance(name, str) else None
        if compiled is None:
            raise errors.UnknownMachine(name if isinstance(name, str) else reprlib.repr(name), self.machines)
        return compiled

    def registered_versions(self, name: str) -> list[str]:
        return [v for (n, v) in self.versions if n == name]

    def model_of(self, machine: str, version: str | None = None) -> type[BaseModel] | None:
        """The context model of a registered machine (at `version`, if given); None when untyped
        or not registered here."""
        compiled = self.machines.get(machine) if version is None else self.versions.get((machine, version))
        return compiled.model if compiled else None

    def served(self) -> list[str]:
        """The names of the machines whose work this process may claim (sorted: stable SQL)."""
        return sorted(self.machines)

    def served_versions(self) -> list[tuple[str, str]]:
        """The (machine, version) pairs whose work this process may claim (sorted: stable SQL)."""
        return sorted(self.versions)

    def transaction(self) -> Transaction | GroupTransaction:
        """A write transaction whose storage errors come out as the engine's typed errors (in
        the group's shared batch when there is one: it returns once its batch is committed)."""
        if self.group is not None:
            return self.group.transaction()
        return self.db.transaction()

    def read(self) -> Transaction:
        return self.db.read()


def is_storage_failure(exc: BaseException) -> bool:
    """True for transient errors of the database itself (a lost connection, a lock timeout, a
    deadlock), as opposed to errors of one row (its content, or a statement the database refuses
    for that row, such as a unique key taken).

    Workers handle a bad row by itself and go on with the others; a transient storage failure is
    never blamed on a row: it ends the transaction and the worker retries the round later."""
    return isinstance(exc, errors.StorageUnavailable) or is_transient(exc)


def typed_storage_error(exc: BaseException) -> BaseException:
    """Storage errors as engine errors (the database's `error_hook`, set by `Engine`); `Conflict`
    stays for the callers that resolve it."""
    if isinstance(exc, Conflict):
        return exc
    if isinstance(exc, ReentrantTransaction):
        return errors.ReentrantCall(
            "the engine was called from inside an action or a guard, which runs inside its"
            " event's transaction; nothing was written by that call. Actions may only change the"
            " context: send events to other instances from an effect, or after send() returns"
        )
    if isinstance(exc, DatabaseUnavailable):
        return errors.StorageUnavailable(str(exc))
    if isinstance(exc, DatabaseError):
        return errors.StorageError(str(exc))
    return exc
