"""Durable storage for statemachines: tables, migrations, transactions, statements.

Knows rows, JSON text and transactions; never machine semantics.
"""

from persistence.database import Database
from persistence.errors import (
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    ReentrantTransaction,
    UnsupportedDatabase,
)
from persistence.migrations import SCHEMA_VERSION, migrate
from persistence.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "Conflict",
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "ReentrantTransaction",
    "Store",
    "UnsupportedDatabase",
    "migrate",
]
