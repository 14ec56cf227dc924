"""Every error the engine raises: all are `StateMachineError`, so callers can catch one type.

Errors that name a rejected event carry the state, the event and the events
allowed there, because that is what a person debugging a stuck order needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class StateMachineError(Exception):
    """Base class of every error raised by statemachines."""


class DefinitionError(StateMachineError, ValueError):
    """A machine definition is invalid; `problems` lists every problem found at once."""

    def __init__(self, name: str, problems: Iterable[str], *, what: str = "machine") -> None:
        self.name = name
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{what} {name!r} is invalid ({len(self.problems)} problems):\n{lines}")


class UnknownMachine(StateMachineError, LookupError):
    """No definition with this name is registered with the engine."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        self.name = name
        known_list = sorted(known)
        super().__init__(f"unknown machine {name!r}; registered: {known_list or 'none'}")


class InstanceNotFound(StateMachineError, LookupError):
    """No instance with this id exists."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"no instance with id {instance_id!r}")


class InstanceExists(StateMachineError):
    """`start` was given an id that is already taken."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"an instance with id {instance_id!r} already exists")


class InstanceClosed(StateMachineError):
    """The instance is completed, cancelled or failed and takes no more events."""

    def __init__(self, instance_id: str, status: str, state: str) -> None:
        self.instance_id = instance_id
        self.status = status
        self.state = state
        super().__init__(f"instance {instance_id!r} is {status} (in state {state!r}) and accepts no events")


class EventRejected(StateMachineError):
    """An event was refused in the instance's current state; recorded as `rejected`."""

    reason_text = "rejected"

    def __init__(self, instance_id: str, state: str, event: str, allowed: Iterable[str]) -> None:
        self.instance_id = instance_id
        self.state = state
        self.event = event
        self.allowed = sorted(allowed)
        super().__init__(
            f"event {event!r} {self.reason_text} in state {state!r} of instance {instance_id!r};"
            f" allowed events: {self.allowed or 'none'}"
        )


class EventNotAllowed(EventRejected):
    """The current state has no transition for this event."""

    reason_text = "is not allowed"


class GuardRejected(EventRejected):
    """Transitions exist for the event, but every guard returned false."""

    reason_text = "was refused by every guard"


class PayloadInvalid(StateMachineError, ValueError):
    """The event payload does not match the schema the definition declares for the event."""

    def __init__(self, event: str, detail: str) -> None:
        self.event = event
        self.detail = detail
        super().__init__(f"payload of event {event!r} is invalid: {detail}")


class ContextInvalid(StateMachineError, ValueError):
    """A context (given to `start` or produced by actions) fails the context model, or could not
    be stored as JSON and read back. After actions, `event` and `callbacks` (the guards and
    actions that ran, in order) say what produced it."""

    def __init__(
        self, machine: str, detail: str, *, event: str | None = None, callbacks: Sequence[str] = ()
    ) -> None:
        self.machine = machine
        self.detail = detail
        self.event = event
        self.callbacks = list(callbacks)
        after = ""
        if event is not None:
            ran = ", ".join(self.callbacks) or "no callbacks"
            after = f" after event {event!r} (ran: {ran})"
        super().__init__(f"context of machine {machine!r} is invalid{after}: {detail}")


class ActionFailed(StateMachineError):
    """A guard or an action raised; the event was rolled back. The original is `__cause__`."""

    def __init__(self, instance_id: str, event: str, where: str, error: BaseException) -> None:
        self.instance_id = instance_id
        self.event = event
        self.where = where
        super().__init__(
            f"{where} raised {type(error).__name__}: {error} while instance {instance_id!r}"
            f" handled event {event!r}; nothing was written"
        )


class StorageError(StateMachineError):
    """The database refused an operation (schema, constraint, a value too large, SQL error).

    Permanent: the same call fails the same way again. Only `StorageUnavailable` is retryable."""

    retryable = False


class StorageUnavailable(StorageError):
    """The database could not be reached or dropped the connection; safe to retry.

    Nothing half-written remains: the transaction was rolled back or never committed.
    """

    retryable = True


class TokenInvalid(StateMachineError):
    """A callback token is forged, expired, stale (its state was left) or already used."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"callback token rejected: {reason}")


class ConfigurationError(StateMachineError, ValueError):
    """The engine was configured wrongly (unknown database URL, missing secret, ...)."""


class InvalidArgument(StateMachineError, ValueError):
    """An argument (instance id, event name, limit, ...) is malformed."""


class StepLimitExceeded(StateMachineError):
    """A statechart event did not settle within the cap of microsteps (an eventless or done.state loop).

    Raised before anything is written, so the event is rolled back like a failing action.
    """

    def __init__(self, instance_id: str, event: str, limit: int, last: Iterable[str] = ()) -> None:
        self.instance_id = instance_id
        self.event = event
        self.limit = limit
        self.last = list(last)
        super().__init__(
            f"event {event!r} of instance {instance_id!r} did not settle within {limit} microsteps"
            f" (an eventless or done.state loop?); last transitions: {self.last or 'none'};"
            " nothing was written"
        )


# Bounds: durations, points in time --------------------------------------------------------------
class InvalidDuration(InvalidArgument):
    """A duration is not a number and a unit (`500ms`, `20s`, `15m`, `24h`, `7d`), or is not
    positive, finite and at most 100 years. In a definition it is reported as one of the
    `DefinitionError` problems; given to a call (`token(ttl=...)`) it is an `InvalidArgument`."""


class TimeOutOfRange(StateMachineError, OverflowError):
    """The clock plus a duration (a timer's deadline, a lease, a token's expiry) is past the
    last representable time (year 9999): the clock is wrong. Nothing was written."""


# Idempotency and re-entrancy -----------------------------------------------------------------
class IdempotencyKeyReused(StateMachineError, ValueError):
    """An idempotency key already recorded for one request was sent with a different one.

    A key names one request (an event and its payload), as with Stripe's `Idempotency-Key`:
    returning the first result for a different request would silently drop the second."""

    def __init__(self, instance_id: str, key: str, first_event: str, event: str) -> None:
        self.instance_id = instance_id
        self.key = key
        self.first_event = first_event
        self.event = event
        what = f"event {event!r}" + (" with a different payload" if first_event == event else "")
        super().__init__(
            f"idempotency key {key!r} of instance {instance_id!r} was first used for event"
            f" {first_event!r}; it was sent again with {what}. Use a new key for a new request"
        )


class ReentrantCall(StateMachineError):
    """The engine was called from inside an action or a guard (on the same thread and database).

    An action runs inside its event's transaction: a nested call would write in the middle of
    it (or wait for it forever), so it is refused before anything is written, and the outer
    event fails as a whole (`ActionFailed`, with this as its cause). Actions may only change
    the context: send events to other instances from an effect, or after `send` returns."""


# Callback tokens: forged vs spent ---------------------------------------------------------------
class TokenForged(TokenInvalid):
    """A callback token we did not issue (bad signature) or that is not a token at all.

    The other `TokenInvalid` cases (expired, stale, used) are tokens we did issue whose time has
    passed: the web service answers those 410 Gone, and a forged one 403 Forbidden."""
