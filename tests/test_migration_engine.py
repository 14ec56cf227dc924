"""`engine.migrate(...)`: each instance moves in its own transaction, audited once (outcome
`migrated`, both versions, the state map); timers and effects of vanished states go, those of
states entered anew are armed, kept entries keep theirs; no entry action runs; the context is
converted and must validate; a dry run changes nothing; mistakes change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from statemachines import Engine, ManualClock
from statemachines.errors import InvalidArgument, MigrationError, TokenInvalid, VersionNotRegistered
from tests.versions_machines import ENTERED, NOTIFIED, add_owner, doc_v1, doc_v1_1, doc_v2, doc_v3

RENAME = {"review": "in_review"}


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    ENTERED.clear()
    NOTIFIED.clear()
    eng = Engine(db_url, clock=clock, secret="s" * 32)
    eng.register(doc_v1())
    yield eng
    eng.close()


def in_review(engine: Engine, iid: str = "f1") -> None:
    engine.start("doc", {"title": iid}, instance_id=iid)
    engine.send(iid, "SUBMIT")


def test_a_renamed_state_is_rescued_and_takes_events_again(engine: Engine) -> None:
    in_review(engine)
    engine.register(doc_v2())
    report = engine.migrate(["f1"], state_map=RENAME)
    assert [(m.instance_id, m.source, m.target) for m in report.migrated] == [("f1", "review", "in_review")]
    snap = engine.send("f1", "APPROVE")
    assert (snap.state, snap.definition_version) == ("approved", "2")


def test_a_migration_is_one_history_record_with_both_versions_and_the_map(engine: Engine) -> None:
    in_review(engine)
    engine.register(doc_v2())
    engine.migrate(["f1"], state_map=RENAME, actor="ops", reason="rename review")
    record = engine.history("f1")[-1]
    assert (record.event, record.source, record.target, record.outcome) == (
        "migrate", "review", "in_review", "migrated"
    )  # fmt: skip
    assert record.payload == {"from_version": "1", "to_version": "2", "state_map": RENAME}
    assert (record.actor, record.reason) == ("ops", "rename review")
    assert len(engine.history("f1")) == 3


def test_a_migration_runs_no_entry_action(engine: Engine) -> None:
    in_review(engine)
    engine.register(doc_v2())
    ENTERED.clear()
    engine.migrate(["f1"], state_map=RENAME)
    assert ENTERED == []


def test_timers_of_a_vanished_state_are_replaced_by_those_of_the_state_entered(
    engine: Engine, clock: ManualClock
) -> None:
    in_review(engine)
    clock.advance("1d")
    engine.register(doc_v2())
    engine.migrate(["f1"], state_map=RENAME)
    timers = engine.status("f1").timers
    assert [(t.state, t.event) for t in timers] == [("in_review", "after.3d")]
    assert timers[0].fire_at == clock.now() + timedelta(days=3)  # counted from the migration
    clock.advance("3d")
    engine.run_due()
    assert engine.get("f1").state == "expired"
    assert [r.outcome for r in engine.history("f1")].count("applied") == 3  # start, SUBMIT, the timer once


def test_a_kept_state_keeps_its_entry_its_timer_deadline_and_its_tokens(engine: Engine) -> None:
    engine.start("doc", {"title": "d"}, instance_id="d1")
    engine.register(doc_v2())
    token = engine.token("d1", "SUBMIT")
    before = engine.status("d1").timers
    report = engine.migrate(["d1"])
    assert report.migrated[0].armed == () and report.migrated[0].timers_dropped == ()
    assert engine.status("d1").timers == before
    assert engine.send_token(token).state == "in_review"


def test_tokens_of_a_renamed_state_are_stale_after_the_move(engine: Engine) -> None:
    in_review(engine)
    token = engine.token("f1", "APPROVE")
    engine.register(doc_v2())
    engine.migrate(["f1"], state_map=RENAME)
    with pytest.raises(TokenInvalid, match="stale"):
        engine.send_token(token)


def test_effects_of_a_vanished_state_are_cancelled_and_the_new_states_armed(engine: Engine) -> None:
    in_review(engine)
    engine.register(doc_v2())
    report = engine.migrate(["f1"], state_map=RENAME)
    assert report.migrated[0].effects_cancelled == ("review: notify",)
    effects = engine.status("f1").effects
    assert [(e.state, e.name, e.status) for e in effects] == [("in_review", "notify", "pending")]
    engine.run_due()
    assert NOTIFIED == ['["f1",3,"notify"]']  # the old state's effect never ran


def test_the_context_function_converts_and_the_new_model_validates(engine: Engine) -> None:
    engine.register(doc_v2())
    engine.start("doc", {"title": "t"}, instance_id="d1")
    engine.register(doc_v3())
    report = engine.migrate(["d1"], context=add_owner)
    assert report.skipped == []
    assert engine.get("d1").context.owner == "unassigned"


def test_a_context_that_fails_the_new_model_is_skipped_and_nothing_is_written(engine: Engine) -> None:
    engine.register(doc_v2())
    engine.start("doc", {"title": "t"}, instance_id="d1")
    engine.register(doc_v3())
    report = engine.migrate(["d1"])
    assert report.migrated == []
    assert [s.instance_id for s in report.skipped] == ["d1"]
    assert "does not validate against version '3'" in report.skipped[0].reason
    assert "owner" in report.skipped[0].reason
    assert engine.get("d1").definition_version == "2" and len(engine.history("d1")) == 1


def test_a_context_function_that_raises_skips_the_instance(engine: Engine) -> None:
    engine.start("doc", {"title": "t"}, instance_id="d1")
    engine.register(doc_v2())

    def broken(ctx: dict) -> dict:
        raise KeyError("owner")

    report = engine.migrate(["d1"], context=broken)
    assert "context function raised KeyError" in report.skipped[0].reason
    assert engine.get("d1").definition_version == "1"


def test_a_dry_run_reports_and_changes_nothing(engine: Engine) -> None:
    in_review(engine)
    engine.register(doc_v2())
    status, history = engine.status("f1"), engine.history("f1")
    report = engine.migrate(machine="doc", from_version="1", state_map=RENAME, dry_run=True)
    assert report.dry_run and [m.target for m in report.migrated] == ["in_review"]
    assert report.migrated[0].timers_dropped == ("review: after.3d",)
    assert "would migrate 1 instance(s) to version 2" in str(report)
    assert engine.status("f1") == status and engine.history("f1") == history


def test_an_unmapped_vanished_state_is_skipped_with_the_fix_named(engine: Engine) -> None:
    in_review(engine)
    engine.register(doc_v2())
    report = engine.migrate(["f1"])
    assert report.migrated == []
    assert "state 'review' does not exist in version '2'" in report.skipped[0].reason
    assert "--map review=NEW" in report.skipped[0].reason
    assert engine.get("f1").definition_version == "1"


def test_a_map_to_a_state_the_target_lacks_raises_before_anything_moves(engine: Engine) -> None:
    in_review(engine)
    engine.register(doc_v2())
    with pytest.raises(MigrationError, match="'reviewing'"):
        engine.migrate(machine="doc", state_map={"review": "reviewing"})
    assert engine.get("f1").definition_version == "1"


def test_a_map_naming_a_state_the_source_version_lacks_raises(engine: Engine) -> None:
    engine.register(doc_v2())
    with pytest.raises(MigrationError, match="'reveiw'"):
        engine.migrate(machine="doc", from_version="1", state_map={"reveiw": "in_review"})


def test_an_unregistered_target_version_raises(engine: Engine) -> None:
    in_review(engine)
    with pytest.raises(VersionNotRegistered):
        engine.migrate(["f1"], to_version="2")


def test_migrate_needs_ids_or_a_machine(engine: Engine) -> None:
    with pytest.raises(InvalidArgument, match="instance ids, or machine="):
        engine.migrate()


def test_closed_instances_and_instances_already_there_are_skipped(engine: Engine) -> None:
    engine.start("doc", {"title": "c"}, instance_id="closed")
    engine.cancel("closed")
    engine.register(doc_v2())
    engine.start("doc", {"title": "n"}, instance_id="new")
    report = engine.migrate(["closed", "new", "nobody"])
    assert {s.instance_id: s.reason for s in report.skipped} == {
        "closed": "cancelled: a closed instance is not migrated",
        "new": "already on version '2'",
        "nobody": "no such instance",
    }


def test_a_failed_instance_moves_and_stays_failed(engine: Engine) -> None:
    in_review(engine)
    with engine.runtime.transaction() as cur:
        row = engine.store.lock_instance(cur, "f1", None)
        engine.runtime.applier.fail(cur, row, "x", "broken", engine.clock.now())
    engine.register(doc_v2())
    engine.migrate(["f1"], state_map=RENAME)
    snap = engine.get("f1")
    assert (snap.state, snap.status, snap.definition_version) == ("in_review", "failed", "2")


def test_bulk_migration_moves_only_the_from_version(engine: Engine) -> None:
    for i in range(5):
        in_review(engine, f"a{i}")
    engine.register(doc_v2())
    engine.start("doc", {"title": "b"}, instance_id="b", version="2")
    report = engine.migrate(machine="doc", from_version="1", state_map=RENAME, batch=2)
    assert sorted(m.instance_id for m in report.migrated) == [f"a{i}" for i in range(5)]
    assert report.skipped == []
    assert {s.definition_version for s in engine.instances(machine="doc")} == {"2"}


def test_register_compatible_moves_instances_whose_states_are_unchanged(engine: Engine) -> None:
    in_review(engine, "reviewing")
    engine.start("doc", {"title": "d"}, instance_id="drafting")
    engine.register(doc_v1_1(), migrate="compatible")
    assert {s.id: s.definition_version for s in engine.instances(machine="doc")} == {
        "reviewing": "1.1", "drafting": "1.1"
    }  # fmt: skip
    assert engine.history("drafting")[-1].actor == "register"
    assert engine.send("reviewing", "APPROVE").definition_version == "1.1"


def test_register_compatible_leaves_instances_in_changed_or_vanished_states(engine: Engine) -> None:
    in_review(engine, "stranded")  # `review` is gone from v2
    engine.start("doc", {"title": "d"}, instance_id="drafting")  # `draft` changed: SUBMIT goes elsewhere
    engine.register(doc_v2(), migrate="compatible")
    assert {s.id: s.definition_version for s in engine.instances(machine="doc")} == {
        "stranded": "1", "drafting": "1"
    }  # fmt: skip


def test_an_effect_finishing_after_its_instance_moved_to_a_version_unknown_here_keeps_its_result(
    engine: Engine, db_url: str, clock: ManualClock
) -> None:
    from statemachines.effects import claim, run_claimed

    in_review(engine)
    (item,) = claim(engine.runtime, 10)  # this process (v1 only) claims the review's effect
    other = Engine(db_url, clock=clock)
    other.register(doc_v1())
    other.register(doc_v1_1())  # `review` unchanged: the effect stays with the entry
    try:
        assert other.migrate(["f1"]).migrated[0].effects_cancelled == ()
        run_claimed(engine.runtime, item)  # runs here; the result waits for a process with 1.1
        assert NOTIFIED == ['["f1",2,"notify"]']
        assert [e.status for e in engine.status("f1").effects] == ["pending"]
        other.run_due()
        assert engine.status("f1").effects == []  # delivered as done, not run again
        assert NOTIFIED == ['["f1",2,"notify"]'] and len(engine.effect_attempts("f1")) == 1
    finally:
        other.close()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"ids": 7}, "ids must be an instance id or an iterable"),
        ({"machine": "doc", "state_map": [("review", "in_review")]}, "state_map must map"),
        ({"machine": "doc", "batch": 0}, "batch must be an integer"),
        ({"machine": "doc", "context": "add_owner"}, "context must be a function"),
    ],
)
def test_bad_arguments_are_refused_before_anything_moves(engine: Engine, kwargs: dict, needle: str) -> None:
    in_review(engine)
    engine.register(doc_v2())
    with pytest.raises(InvalidArgument, match=needle):
        engine.migrate(**kwargs)
    assert engine.get("f1").definition_version == "1"


def test_a_timer_the_new_version_removed_is_dropped_and_never_fires_as_a_rejection(
    engine: Engine, clock: ManualClock
) -> None:
    from statemachines.definition import Definition

    in_review(engine)
    v1 = doc_v1()
    spec = v1.to_dict()
    del spec["states"]["review"]["after"]  # v1.5: reviews no longer expire (an editor can expire them)
    spec["states"]["review"]["on"]["EXPIRE"] = "expired"
    spec["version"] = "1.5"
    engine.register(Definition.from_dict(spec, {**v1.callables, "Doc": v1.context_model}))
    report = engine.migrate(["f1"])
    assert report.migrated[0].timers_dropped == ("review: after.3d",)
    assert engine.status("f1").timers == []
    clock.advance("4d")
    engine.run_due()
    # The review's notify effect still reports (recorded: no transition takes it); no timer fires.
    assert [(r.event, r.outcome) for r in engine.history("f1")][2:] == [
        ("migrate", "migrated"),
        ("done.notify", "recorded"),
    ]
