"""A CLI call on a database whose schema is current loads only what it uses.

SQLAlchemy and SQLModel describe the tables for migrations; PyYAML reads definition files;
Graphviz draws. A `status` call needs none of them, and importing them cost most of a call's
time. Each test runs the command in a fresh interpreter and lists the modules it loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from statemachines import Engine
from statemachines.examples.orders import orders

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sqlalchemy", "sqlmodel", "yaml", "graphviz", "diagrams")

PROBE = """
import contextlib, io, json, sys
from statemachines.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def loaded_by(*argv: str) -> tuple[int, set[str]]:
    """Run `statemachines ARGV` in a new interpreter: its exit code and top-level modules loaded."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


def started(db_url: str) -> str:
    engine = Engine(db_url)
    try:
        engine.register(orders)
        engine.start(orders.name, {"order_id": "A1", "total": 40}, instance_id="A1")
    finally:
        engine.close()
    return db_url


def test_status_on_a_current_schema_imports_no_table_definitions_yaml_or_graphviz(db_url: str) -> None:
    code, modules = loaded_by("--db", started(db_url), "status", "A1")
    assert code == 0
    assert modules.isdisjoint(HEAVY), sorted(modules.intersection(HEAVY))


def test_help_imports_no_table_definitions_yaml_or_graphviz() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "statemachines.cli", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()}
    assert imported.isdisjoint(HEAVY), sorted(imported.intersection(HEAVY))


def test_a_database_that_needs_its_schema_still_gets_it_from_the_cli(tmp_path: Path) -> None:
    """The lazy import is the migration's, not skipped: a new file gets every table."""
    db = tmp_path / "new.db"
    code, modules = loaded_by("--db", str(db), "instances")
    assert code == 0
    assert "sqlalchemy" in modules  # the table DDL was built, for this one call
    engine = Engine(str(db))
    try:
        assert engine.instances() == []
    finally:
        engine.close()
