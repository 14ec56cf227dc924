"""An instance runs on the definition version it started on: events, timers, effects and tokens
follow that version's rules while newer versions are registered beside it; an instance whose
version this process lacks is refused with `VersionNotRegistered` and nothing is written; a
worker leaves such instances alone and says so once; `register` warns about stranded ones."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from statemachines import Engine, ManualClock, machine, state
from statemachines.errors import InvalidArgument, VersionNotRegistered
from statemachines.worker import Worker
from tests.versions_machines import ENTERED, NOTIFIED, doc_v1, doc_v2


@pytest.fixture
def v1_engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    """An engine with v1 registered, then v2 (the latest): both side by side."""
    ENTERED.clear()
    NOTIFIED.clear()
    eng = Engine(db_url, clock=clock, secret="s" * 32)
    eng.register(doc_v1())
    yield eng
    eng.close()


def submitted_on_v1(engine: Engine, iid: str = "f1") -> None:
    engine.start("doc", {"title": iid}, instance_id=iid)
    engine.send(iid, "SUBMIT")


def test_a_named_version_is_the_instances_definition_version(v1_engine: Engine) -> None:
    assert v1_engine.start("doc", {"title": "a"}).definition_version == "1"


def test_an_unnamed_version_is_the_spec_hash() -> None:
    d = machine("m", initial="a", states={"a": state()})
    assert len(d.version) == 16 and d.version == machine("m", initial="a", states={"a": state()}).version


def test_naming_a_version_does_not_change_the_hash_of_other_definitions() -> None:
    plain = machine("m", initial="a", states={"a": state()})
    named = machine("m", initial="a", states={"a": state()}, version="7")
    assert named.version == "7" and plain.version != "7"
    assert named.spec.canonical_json() == plain.spec.canonical_json()


def test_start_uses_the_latest_registered_version(v1_engine: Engine) -> None:
    v1_engine.register(doc_v2())
    assert v1_engine.start("doc", {"title": "a"}).definition_version == "2"


def test_start_with_version_uses_that_version(v1_engine: Engine) -> None:
    v1_engine.register(doc_v2())
    snap = v1_engine.start("doc", {"title": "a"}, instance_id="old", version="1")
    assert snap.definition_version == "1"
    assert v1_engine.send("old", "SUBMIT").state == "review"


def test_start_with_an_unregistered_version_raises_and_writes_nothing(v1_engine: Engine) -> None:
    with pytest.raises(VersionNotRegistered, match="'doc' version '9' is not registered"):
        v1_engine.start("doc", {"title": "a"}, instance_id="x", version="9")
    assert v1_engine.instances(machine="doc") == []


def test_events_of_an_old_instance_follow_its_version(v1_engine: Engine) -> None:
    submitted_on_v1(v1_engine)
    v1_engine.register(doc_v2())
    snap = v1_engine.send("f1", "APPROVE")
    assert (snap.state, snap.definition_version) == ("approved", "1")


def test_timers_of_an_old_instance_fire_on_its_version(v1_engine: Engine, clock: ManualClock) -> None:
    submitted_on_v1(v1_engine)
    v1_engine.register(doc_v2())
    clock.advance("3d")
    v1_engine.run_due()
    snap = v1_engine.get("f1")
    assert (snap.state, snap.definition_version) == ("expired", "1")
    assert [r.outcome for r in v1_engine.history("f1")][-1] == "applied"


def test_effects_of_an_old_instance_run_on_its_version(v1_engine: Engine) -> None:
    submitted_on_v1(v1_engine)
    v1_engine.register(doc_v2())
    v1_engine.run_due()
    assert NOTIFIED == ['["f1",2,"notify"]']
    assert v1_engine.status("f1").effects == []  # done


def test_tokens_of_an_old_instance_apply_on_its_version(v1_engine: Engine) -> None:
    submitted_on_v1(v1_engine)
    token = v1_engine.token("f1", "APPROVE")
    v1_engine.register(doc_v2())
    assert v1_engine.send_token(token).state == "approved"


def test_a_send_to_an_instance_of_an_unregistered_version_raises_and_writes_nothing(
    v1_engine: Engine, db_url: str, clock: ManualClock
) -> None:
    submitted_on_v1(v1_engine)
    before = v1_engine.history("f1")
    only_v2 = Engine(db_url, clock=clock)
    only_v2.register(doc_v2())
    try:
        with pytest.raises(VersionNotRegistered) as info:
            only_v2.send("f1", "APPROVE")
        assert (info.value.name, info.value.version) == ("doc", "1")
        assert "statemachines migrate doc" in str(info.value) and "register" in str(info.value)
        assert only_v2.history("f1") == before
        assert only_v2.get("f1").state == "review"
    finally:
        only_v2.close()


def test_a_token_of_an_unregistered_version_raises_and_is_not_spent(
    v1_engine: Engine, db_url: str, clock: ManualClock
) -> None:
    submitted_on_v1(v1_engine)
    token = v1_engine.token("f1", "APPROVE")
    only_v2 = Engine(db_url, clock=clock, secret="s" * 32)
    only_v2.register(doc_v2())
    try:
        with pytest.raises(VersionNotRegistered):
            only_v2.send_token(token)
    finally:
        only_v2.close()
    assert v1_engine.send_token(token).state == "approved"


def test_status_of_an_unregistered_version_reads_its_stored_definition(
    v1_engine: Engine, db_url: str, clock: ManualClock
) -> None:
    submitted_on_v1(v1_engine)
    only_v2 = Engine(db_url, clock=clock)
    only_v2.register(doc_v2())
    try:
        status = only_v2.status("f1")
    finally:
        only_v2.close()
    assert status.snapshot.definition_version == "1"
    assert status.events == ["APPROVE", "NOTE", "REJECT"]


def test_a_worker_skips_instances_of_an_unregistered_version_with_one_log_line(
    v1_engine: Engine, db_url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    submitted_on_v1(v1_engine, "old")
    only_v2 = Engine(db_url, clock=clock)
    only_v2.register(doc_v2())
    try:
        only_v2.start("doc", {"title": "new"}, instance_id="new")
        only_v2.send("new", "SUBMIT")
        clock.advance("3d")
        worker = Worker(only_v2, batch=10)
        worker.unserved.every = 0.0  # look every round: still told once
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="statemachines.versions"):
            for _ in range(3):
                worker.run_once()
        lines = [r.getMessage() for r in caplog.records if r.name == "statemachines.versions"]
        assert len(lines) == 1 and "machine 'doc' run on version '1'" in lines[0]
        assert only_v2.get("new").state == "expired"
        old = only_v2.get("old")
        assert (old.state, old.status) == ("review", "active")
        assert [t.event for t in only_v2.status("old").timers] == ["after.3d"]  # left for v1 workers
    finally:
        only_v2.close()
    assert v1_engine.run_due() >= 1  # a process with v1 fires it
    assert v1_engine.get("old").state == "expired"


def test_next_due_ignores_instances_of_unregistered_versions(
    v1_engine: Engine, db_url: str, clock: ManualClock
) -> None:
    submitted_on_v1(v1_engine)
    only_v2 = Engine(db_url, clock=clock)
    only_v2.register(doc_v2())
    try:
        assert only_v2.next_due() is None
        assert v1_engine.next_due() is not None
    finally:
        only_v2.close()


def test_register_warns_about_live_instances_in_states_the_new_version_lacks(
    v1_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    submitted_on_v1(v1_engine, "f1")
    submitted_on_v1(v1_engine, "f2")
    v1_engine.start("doc", {"title": "d"}, instance_id="d1")
    with caplog.at_level(logging.WARNING, logger="statemachines.versions"):
        v1_engine.register(doc_v2())
    lines = [r.getMessage() for r in caplog.records if r.name == "statemachines.versions"]
    assert len(lines) == 1
    assert "version '2' lacks states where live instances of version '1' are: review (2)" in lines[0]
    assert "statemachines migrate doc --to 2" in lines[0]


def test_register_says_nothing_when_no_instance_is_stranded(
    v1_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    v1_engine.start("doc", {"title": "d"}, instance_id="d1")  # in draft, which v2 keeps
    with caplog.at_level(logging.WARNING, logger="statemachines.versions"):
        v1_engine.register(doc_v2())
    assert [r for r in caplog.records if r.name == "statemachines.versions"] == []


def test_register_refuses_an_unknown_migrate_option(v1_engine: Engine) -> None:
    with pytest.raises(InvalidArgument, match="migrate"):
        v1_engine.register(doc_v2(), migrate="everything")


def test_snapshots_carry_the_definition_version(v1_engine: Engine) -> None:
    submitted_on_v1(v1_engine)
    v1_engine.register(doc_v2())
    assert v1_engine.get("f1").as_dict()["definition_version"] == "1"
    assert v1_engine.status("f1").snapshot.definition_version == "1"


def test_a_definition_file_may_name_its_version() -> None:
    from statemachines.definition import Definition

    data = {"name": "m", "initial": "a", "version": "2024-06", "states": {"a": {}}}
    assert Definition.from_dict(data).version == "2024-06"


def test_a_run_is_drawn_on_the_instances_own_version(v1_engine: Engine) -> None:
    from diagrams import run_to_mermaid

    submitted_on_v1(v1_engine)
    v1_engine.register(doc_v2())
    drawing = run_to_mermaid(v1_engine, "f1")
    assert 'state "review"' in drawing and "in_review" not in drawing
