"""statemachines: durable, explicit state machines for Python.

Declare a machine (`machine`, `state`, `transition`), register it with an `Engine`, and send
events to instances: each event is one database transaction, recorded in an audit trail.
"""

from statemachines.clock import Clock, ManualClock, SystemClock
from statemachines.definition import (
    Definition,
    Effect,
    Retry,
    State,
    Transition,
    history,
    machine,
    parallel,
    state,
    transition,
)
from statemachines.effects import EffectCall
from statemachines.engine import Engine
from statemachines.errors import (
    ActionFailed,
    ConfigurationError,
    ContextInvalid,
    DefinitionError,
    EventNotAllowed,
    EventRejected,
    GuardRejected,
    IdempotencyKeyReused,
    InstanceClosed,
    InstanceExists,
    InstanceNotFound,
    InvalidArgument,
    InvalidDuration,
    PayloadInvalid,
    ReentrantCall,
    StateMachineError,
    StepLimitExceeded,
    StorageError,
    StorageUnavailable,
    TimeOutOfRange,
    TokenForged,
    TokenInvalid,
    UnknownMachine,
)
from statemachines.loading import dump_definition, load_definition, loads_definition
from statemachines.records import Event, Record, Snapshot, Status
from statemachines.registry import Registry

__version__ = "0.1.0"

__all__ = [
    "ActionFailed",
    "Clock",
    "ConfigurationError",
    "ContextInvalid",
    "Definition",
    "DefinitionError",
    "Effect",
    "EffectCall",
    "Engine",
    "Event",
    "EventNotAllowed",
    "EventRejected",
    "GuardRejected",
    "IdempotencyKeyReused",
    "InstanceClosed",
    "InstanceExists",
    "InstanceNotFound",
    "InvalidArgument",
    "InvalidDuration",
    "ManualClock",
    "PayloadInvalid",
    "Record",
    "ReentrantCall",
    "Registry",
    "Retry",
    "Snapshot",
    "State",
    "StateMachineError",
    "Status",
    "StepLimitExceeded",
    "StorageError",
    "StorageUnavailable",
    "SystemClock",
    "TimeOutOfRange",
    "TokenForged",
    "TokenInvalid",
    "Transition",
    "UnknownMachine",
    "dump_definition",
    "history",
    "load_definition",
    "loads_definition",
    "machine",
    "parallel",
    "state",
    "transition",
]
