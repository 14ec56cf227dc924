"""Shared fixtures: every storage behaviour runs on SQLite and on PostgreSQL.

PostgreSQL tests use $STATEMACHINES_TEST_POSTGRES_URL (CI exports it and they are mandatory
there); elsewhere they skip with a reason when PostgreSQL is not reachable. Each test gets its
own PostgreSQL schema, dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from statemachines import Engine, ManualClock

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
#: The testing kit's plugin: registered by its entry point once statemachines is installed; named
#: here too so the suite runs from a checkout that is not (pytest skips a plugin loaded twice).
pytest_plugins = ["statemachines.testing"]


def _postgres_base() -> str | None:
    url = os.environ.get("STATEMACHINES_TEST_POSTGRES_URL")
    if url:
        return url
    try:
        import psycopg

        with psycopg.connect(DEFAULT_PG, connect_timeout=2):
            return DEFAULT_PG
    except Exception:
        return None


POSTGRES_URL = _postgres_base()


def _in_ci() -> bool:
    return bool(os.environ.get("STATEMACHINES_TEST_POSTGRES_URL"))


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if POSTGRES_URL is None:
        pytest.skip("PostgreSQL not reachable (set STATEMACHINES_TEST_POSTGRES_URL)")
    return POSTGRES_URL


def _fresh_schema(base: str) -> Iterator[str]:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if POSTGRES_URL is None:
        if _in_ci():
            pytest.fail("STATEMACHINES_TEST_POSTGRES_URL is set but PostgreSQL is unreachable")
        pytest.skip("PostgreSQL not reachable (set STATEMACHINES_TEST_POSTGRES_URL)")
    yield from _fresh_schema(POSTGRES_URL)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def clock() -> ManualClock:
    """Time that moves only when a test says so."""
    return ManualClock()


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    """An engine on a fresh database of each kind, on the test's clock (modules may override)."""
    eng = Engine(db_url, clock=clock)
    yield eng
    eng.close()


@pytest.fixture
def needs_dot() -> str:
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz `dot` not installed (apt-get install graphviz)")
    return dot
