"""Database URLs are parsed without SQLAlchemy, with its grammar: same backend, same SQLite path."""

from __future__ import annotations

import pytest

from persistence.errors import UnsupportedDatabase
from persistence.urls import parse_url, redact
from statemachines import ConfigurationError, Engine


@pytest.mark.parametrize(
    ("url", "backend", "database"),
    [
        ("sqlite:///orders.db", "sqlite", "orders.db"),
        ("sqlite:////var/lib/x%20y.db", "sqlite", "/var/lib/x y.db"),
        ("sqlite://", "sqlite", None),
        ("sqlite:///:memory:", "sqlite", ":memory:"),
        ("sqlite+pysqlite:///a.db?mode=ro", "sqlite", "a.db"),
        ("postgresql://u:p%40ss@db.example:5432/app?options=-c%20x", "postgresql", "app"),
        ("postgresql+psycopg://[::1]:5432/test", "postgresql", "test"),
    ],
)
def test_a_url_is_split_into_its_backend_and_database(url: str, backend: str, database: str | None) -> None:
    parsed = parse_url(url)
    assert (parsed.backend, parsed.database) == (backend, database)


@pytest.mark.parametrize("url", ["orders", "://x", "postgresql://host:port/db"])
def test_an_unparsable_url_is_refused_naming_it(url: str) -> None:
    with pytest.raises(UnsupportedDatabase, match="cannot parse database URL"):
        parse_url(url)


def test_the_engine_reports_an_unparsable_url_as_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="port 'abc' is not a number"):
        Engine("postgresql://host:abc/db")


def test_redact_hides_the_password_only() -> None:
    assert redact("postgresql://app:s3cr%40t@db:5432/x?sslmode=require") == (
        "postgresql://app:***@db:5432/x?sslmode=require"
    )
    assert redact("postgresql://app@db/x") == "postgresql://app@db/x"
    assert redact("sqlite:///a.db") == "sqlite:///a.db"
