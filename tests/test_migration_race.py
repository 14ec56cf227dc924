"""A bulk migration while another process sends events and fires timers: no event is lost, no
timer fires twice, every instance is migrated exactly once.

The machine: `review` takes NOTE (a targetless transition counting notes in the context) and
escalates after 2 s; v2 renames `review` to `in_review`. The child process (spawned: a fresh
interpreter, like another host) registers both versions, sends NOTE to random instances and runs
the worker's rounds; the parent migrates all of them from v1 to v2 in small batches meanwhile.
Afterwards every instance's notes equal the NOTEs the child saw applied, and each escalated once.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import _fresh_schema
from pydantic import BaseModel

from statemachines import Engine, machine, state, transition
from statemachines.errors import EventRejected, InstanceClosed
from statemachines.worker import Worker

SPAWN = mp.get_context("spawn")
INSTANCES = 300
DEADLINE = 90.0


class Notes(BaseModel):
    notes: int = 0


def count_note(ctx: Any, event: Any) -> None:
    ctx.notes += 1


def racing(version: str, review: str) -> Any:
    note = transition(None, action=count_note)
    return machine(
        "racing",
        context=Notes,
        initial=review,
        version=version,
        states={
            review: state(on={"NOTE": note}, after={"2s": "escalated"}),
            "escalated": state(on={"NOTE": note, "CLOSE": "closed"}),
            "closed": state(final=True),
        },
    )


def _sender(url: str, ids: list[str], go: Any, stop: Any, sent: Any, out: str) -> None:
    """Child: NOTE to random instances and worker rounds until told to stop; report what applied."""
    engine = Engine(url)
    engine.register(racing("1", "review"))
    engine.register(racing("2", "in_review"))
    worker = Worker(engine, batch=20, idle=0.01, max_idle=0.05)
    applied: dict[str, int] = {}
    rng = random.Random(7)
    go.wait(DEADLINE)
    end = time.monotonic() + DEADLINE
    while not stop.is_set() and time.monotonic() < end:
        for _ in range(5):
            iid = rng.choice(ids)
            try:
                engine.send(iid, "NOTE")
            except (EventRejected, InstanceClosed):  # pragma: no cover - NOTE is always allowed
                continue
            applied[iid] = applied.get(iid, 0) + 1
            with sent.get_lock():
                sent.value += 1
        worker.run_once()
    Path(out).write_text(json.dumps(applied))
    engine.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def race_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'race.db'}"
        return
    yield from _fresh_schema(request.getfixturevalue("postgres_url"))


def wait_until(condition: Any, child: Any) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert child.is_alive(), "the sending process died"
        assert time.monotonic() < end, "the sending process made no progress"
        time.sleep(0.02)


def history_counts(engine: Engine, event: str) -> dict[str, int]:
    with engine.runtime.read() as cur:
        cur.execute(
            engine.db.sql(
                "SELECT instance_id, COUNT(*) FROM sm_history WHERE event = :event AND outcome = :outcome"
                " GROUP BY instance_id"
            ),
            {"event": event, "outcome": "migrated" if event == "migrate" else "applied"},
        )
        return {iid: int(n) for iid, n in cur.fetchall()}


def notes_around_migration(engine: Engine, ids: list[str]) -> tuple[int, int]:
    """NOTEs recorded before and after their instance's migration record."""
    before = after = 0
    for iid in ids:
        events = [r.event for r in engine.history(iid)]
        at = events.index("migrate")
        before += events[:at].count("NOTE")
        after += events[at:].count("NOTE")
    return before, after


def test_bulk_migration_while_another_process_sends_and_fires_timers(race_url: str, tmp_path: Path) -> None:
    engine = Engine(race_url)
    engine.register(racing("1", "review"))
    ids = [f"r{i:04d}" for i in range(INSTANCES)]
    for iid in ids:
        engine.start("racing", instance_id=iid)
    engine.register(racing("2", "in_review"))
    go, stop = SPAWN.Event(), SPAWN.Event()
    sent = SPAWN.Value("i", 0)  # NOTEs the child has applied so far
    out = tmp_path / "applied.json"
    child = SPAWN.Process(target=_sender, args=(race_url, ids, go, stop, sent, str(out)))
    child.start()
    try:
        go.set()
        # The child is sending before the migration starts (a spawned interpreter may take seconds
        # to start on a loaded machine: wait for its sends, not for a fixed time) ...
        wait_until(lambda: sent.value >= 10, child)
        rename = {"review": "in_review"}
        report = engine.migrate(machine="racing", from_version="1", state_map=rename, batch=25)
        during = sent.value
        wait_until(lambda: sent.value >= during + 10, child)  # ... and after it ends
        stop.set()
        child.join(timeout=DEADLINE)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
    applied = json.loads(out.read_text())
    assert sum(applied.values()) > 0
    assert len(report.migrated) == INSTANCES and report.skipped == []
    # Every timer still armed fires once, here (on v2 now).
    end = time.monotonic() + 30
    while time.monotonic() < end and engine.next_due() is not None:
        engine.run_due()
        time.sleep(0.1)
    snaps = {s.id: s for s in engine.instances(machine="racing", limit=INSTANCES)}
    assert {s.definition_version for s in snaps.values()} == {"2"}
    assert {s.state for s in snaps.values()} == {"escalated"}
    assert history_counts(engine, "migrate") == dict.fromkeys(ids, 1)
    assert history_counts(engine, "after.2s") == dict.fromkeys(ids, 1), "a timer fired twice or never"
    notes = {iid: s.context.notes for iid, s in snaps.items()}
    assert notes == {iid: applied.get(iid, 0) for iid in ids}, "an applied NOTE was lost"
    assert history_counts(engine, "NOTE") == {iid: n for iid, n in applied.items()}
    before, after = notes_around_migration(engine, ids)
    assert before > 0 and after > 0, "the sends did not overlap the migration"
    engine.close()
