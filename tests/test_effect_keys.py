"""Effect idempotency keys are unambiguous: ids and effect names may contain `:`."""

from __future__ import annotations

import json

import pytest

from statemachines import Effect, InstanceExists, StorageError, machine, state


def one_effect_machine(name: str, effect_name: str, keys: list[str]):
    def work(ctx: dict, call) -> dict:
        keys.append(call.key)
        return {}

    return machine(
        name,
        initial="working",
        states={"working": state(effect=Effect(work, name=effect_name), on={"done." + effect_name: "done"}),
                "done": state(final=True)},
    )  # fmt: skip


def test_ids_and_effect_names_with_colons_never_share_an_effect_key(engine):
    keys: list[str] = []
    engine.register(one_effect_machine("a", "v1", keys))
    engine.register(one_effect_machine("b", "1:v1", keys))
    engine.start("a", instance_id="order-7:1")  # once keyed "order-7:1:1:v1"
    engine.start("b", instance_id="order-7")  # once keyed "order-7:1:1:v1" too: InstanceExists
    engine.run_due()
    assert sorted(keys) == ['["order-7",1,"1:v1"]', '["order-7:1",1,"v1"]']
    assert [engine.get(i).state for i in ("order-7:1", "order-7")] == ["done", "done"]


def test_effect_key_is_the_json_array_of_instance_entry_and_name(engine):
    keys: list[str] = []
    engine.register(one_effect_machine("a", "mail", keys))
    engine.start("a", instance_id='ü "quoted" :id')
    engine.run_due()
    [key] = keys
    assert json.loads(key) == ['ü "quoted" :id', 1, "mail"]
    assert key.isascii()


def test_starting_an_existing_id_still_raises_instance_exists(engine):
    engine.register(one_effect_machine("a", "mail", []))
    engine.start("a", instance_id="x")
    with pytest.raises(InstanceExists):
        engine.start("a", instance_id="x")


def test_effect_key_clash_with_an_old_format_row_is_not_reported_as_instance_exists(engine, clock):
    engine.register(one_effect_machine("a", "mail", []))
    engine.start("a", instance_id="old")
    rt = engine.runtime
    with rt.transaction() as cur:  # a stored row whose key happens to equal a new-format key
        rt.schedule.arm_effects(cur, "old", "a", 1, "working", [("mail", '["new",1,"mail"]')], clock.now())
    with pytest.raises(StorageError, match="conflicted") as info:
        engine.start("a", instance_id="new")
    assert not isinstance(info.value, InstanceExists)
