"""Schema step 9: a history row stores the context only as far as its event changed it (nothing,
an edit of the previous text, or the whole context), and every reader (history, its pages,
rewind) still sees the exact context after each record; an existing database upgrades its
instance indexes in place."""

from __future__ import annotations

from typing import Any

import pytest

from persistence import migrations
from persistence.history_context import EDIT, EDIT_FROM, FULL_EVERY, UNCHANGED, recorded, resolve
from statemachines import Engine, ManualClock, errors, machine, state, transition


def add_item(ctx: dict[str, Any], event: Any) -> None:
    ctx["items"] = ctx.get("items", 0) + 1


CART = machine(
    "cart",
    initial="open",
    states={
        "open": state(on={"ADD": transition("open", action=add_item), "LOOK": "browsing", "PAY": "paid"}),
        "browsing": state(on={"BACK": "open"}),
        "paid": state(final=True),
    },
)


@pytest.fixture
def cart(db_url: str) -> Any:
    engine = Engine(db_url, clock=ManualClock())
    engine.register(CART)
    yield engine
    engine.close()


def stored_contexts(engine: Engine, iid: str) -> list[str]:
    with engine.db.read() as cur:
        sql = "SELECT context FROM sm_history WHERE instance_id = :id ORDER BY seq"
        cur.execute(engine.db.sql(sql), {"id": iid})
        return [r[0] for r in cur.fetchall()]


def drive(engine: Engine) -> None:
    engine.start("cart", {"items": 0}, instance_id="c")
    engine.send("c", "LOOK")  # 2: unchanged
    engine.send("c", "BACK")  # 3: unchanged
    engine.send("c", "ADD")  # 4: items 1
    with pytest.raises(errors.EventNotAllowed):
        engine.send("c", "BACK")  # 5: rejected in `open`, recorded, unchanged
    engine.send("c", "LOOK")  # 6: unchanged


def test_a_record_whose_event_left_the_context_as_it_was_stores_none(cart: Engine) -> None:
    drive(cart)
    stored = stored_contexts(cart, "c")
    assert stored[0] == '{"items":0}'
    assert [i for i, text in enumerate(stored) if text == UNCHANGED] == [1, 2, 4, 5]


def test_a_record_whose_event_changed_a_wide_context_stores_an_edit(cart: Engine) -> None:
    note = "n" * EDIT_FROM
    cart.start("cart", {"items": 0, "note": note}, instance_id="w")
    cart.send("w", "ADD")
    stored = stored_contexts(cart, "w")
    assert stored[1].startswith(EDIT) and len(stored[1]) < 20
    assert cart.history("w")[1].context == {"items": 1, "note": note}


def test_an_edit_gives_back_the_exact_text_whatever_changed() -> None:
    before = '{"a":1,"b":"x.y.z","c":[1,2,3],"d":"' + "p" * EDIT_FROM + '"}'
    for after in (
        before.replace('"a":1', '"a":12'),
        before.replace('"c":[1,2,3]', '"c":[]'),
        before.replace('"a":1,', ""),
        before[:-1] + ',"e":"+.."}',
        before[:-1] + ',"e":"' + "p" * EDIT_FROM + '"}',
        '{"z":0}',
        before + " ",
    ):
        stored = recorded(after, before, 2)
        assert stored.startswith(EDIT) or stored == after
        row = (2, "E", None, "s", "{}", stored)
        assert resolve([row], before)[0][5] == after, stored


def test_a_small_changed_context_is_stored_whole() -> None:
    assert recorded('{"items":2}', '{"items":1}', 3) == '{"items":2}'


def test_every_full_every_th_record_stores_the_whole_context() -> None:
    text = '{"items":1}'
    assert recorded(text, text, FULL_EVERY) == text
    assert recorded(text, text, 2 * FULL_EVERY) == text
    assert recorded(text, text, FULL_EVERY + 1) == UNCHANGED
    assert recorded(text, None, 3) == text


def test_a_history_page_far_into_a_long_history_resolves_its_first_context(cart: Engine) -> None:
    cart.start("cart", {"items": 0, "note": "n" * EDIT_FROM}, instance_id="long")
    for _ in range(3 * FULL_EVERY):
        cart.send("long", "ADD")
    whole = [r.context for r in cart.history("long")]
    assert whole[-1]["items"] == 3 * FULL_EVERY
    for after in (FULL_EVERY - 1, FULL_EVERY, 2 * FULL_EVERY + 5):
        cursor_page = cart.history_page("long", limit=after)
        page = cart.history_page("long", limit=3, cursor=cursor_page.next_cursor)
        assert [r.context for r in page.items] == whole[after : after + 3]


def test_history_gives_the_context_after_every_record(cart: Engine) -> None:
    drive(cart)
    records = cart.history("c")
    assert [r.outcome for r in records][4] == "rejected"
    assert [r.context["items"] for r in records] == [0, 0, 0, 1, 1, 1]


def test_a_history_page_that_starts_on_an_unchanged_record_has_its_context(cart: Engine) -> None:
    drive(cart)
    first = cart.history_page("c", limit=4)
    rest = cart.history_page("c", limit=4, cursor=first.next_cursor)
    assert [r.seq for r in rest.items] == [5, 6]
    assert [r.context["items"] for r in rest.items] == [1, 1]
    one = cart.history_page("c", limit=1, cursor=cart.history_page("c", limit=1).next_cursor)
    assert [(r.seq, r.context) for r in one.items] == [(2, {"items": 0})]


def test_cancelling_stores_no_context_and_history_still_has_it(cart: Engine) -> None:
    drive(cart)
    cart.cancel("c", reason="changed my mind")
    assert stored_contexts(cart, "c")[-1] == UNCHANGED
    assert cart.history("c")[-1].context == {"items": 1}


def test_rewinding_to_a_record_that_stored_no_context_restores_that_context(cart: Engine) -> None:
    drive(cart)
    cart.send("c", "BACK")  # 7: back to open
    cart.send("c", "ADD")  # 8: items 2
    snap = cart.rewind("c", 6)  # `browsing` as after record 6 (stored unchanged: items 1)
    assert (snap.state, snap.context) == ("browsing", {"items": 1})
    assert stored_contexts(cart, "c")[-1] != UNCHANGED  # a rewind record has the context
    assert cart.history("c")[-1].context == {"items": 1}


OLD_INSTANCE_INDEXES = (
    "CREATE INDEX ix_sm_instances_state_machine ON sm_instances (state, machine, created_at, id)",
    "CREATE INDEX ix_sm_instances_machine ON sm_instances (machine, created_at, id)",
    "CREATE INDEX ix_sm_instances_active ON sm_instances (created_at, id) WHERE status = 'active'",
    "CREATE INDEX ix_sm_instances_closed ON sm_instances (status, created_at, id) WHERE status <> 'active'",
)


def instance_index_sql(engine: Engine) -> str:
    with engine.db.read() as cur:
        if engine.db.dialect == "sqlite":
            cur.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sm_instances'")
        else:
            cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'sm_instances'"
                        " AND schemaname = current_schema()")  # fmt: skip
        return "\n".join(r[0] or "" for r in cur.fetchall())


def test_a_version_8_database_narrows_its_instance_indexes_and_keeps_its_rows(db_url: str) -> None:
    engine = Engine(db_url, clock=ManualClock())
    engine.register(CART)
    engine.start("cart", {"items": 0}, instance_id="old")
    engine.send("old", "ADD")
    with engine.db.transaction() as cur:  # the schema as step 8 left it
        for name in migrations.INSTANCE_INDEXES:
            cur.execute(f"DROP INDEX {name}")
        for statement in OLD_INSTANCE_INDEXES:
            cur.execute(statement)
        cur.execute("UPDATE sm_schema SET version = 8")
    assert "created_at, id" in instance_index_sql(engine)
    engine.close()

    upgraded = Engine(db_url, clock=ManualClock())
    try:
        upgraded.register(CART)
        text = instance_index_sql(upgraded)
        assert "created_at, id" not in text
        assert all(name in text for name in migrations.INSTANCE_INDEXES)
        with upgraded.db.read() as cur:
            cur.execute("SELECT version FROM sm_schema")
            assert cur.fetchone()[0] == len(migrations.MIGRATIONS)
        assert [r.context["items"] for r in upgraded.history("old")] == [0, 1]  # full old rows
        upgraded.send("old", "LOOK")  # a new row stores none; history still has it
        assert [r.context["items"] for r in upgraded.history("old")] == [0, 1, 1]
        assert [s.id for s in upgraded.instances(machine="cart", state="browsing")] == ["old"]
    finally:
        upgraded.close()
