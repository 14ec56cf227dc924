"""An effect's lease covers its own run, not the batch it was claimed in: each lease starts when
its effect starts, so effects late in a long batch are not run a second time by another worker."""

from __future__ import annotations

from statemachines import Effect, machine, state


def test_each_effect_of_a_batch_is_leased_from_its_own_start(engine, clock):
    calls: list[str] = []
    others: list[int] = []

    def charge(ctx: dict, call) -> dict:
        calls.append(call.instance_id)
        clock.advance("1.5s")  # each effect takes 1.5 s of a 2 s lease
        if len(calls) <= 2:  # meanwhile another worker looks for work
            others.append(engine.run_due())
        return {}

    engine.register(
        machine(
            "pay",
            initial="charging",
            states={
                "charging": state(effect=Effect(charge, lease="2s"), on={"done.charge": "paid"}),
                "paid": state(final=True),
            },
        )
    )
    engine.start("pay", instance_id="p1")
    engine.start("pay", instance_id="p2")
    assert engine.run_due() == 2  # one batch: p1 then p2 (which starts 1.5 s after the claim)
    assert calls == ["p1", "p2"]  # p2 ran once: its lease ran from +1.5 s, not from the claim
    assert others == [0, 0]
    assert [engine.get(i).state for i in ("p1", "p2")] == ["paid", "paid"]


def test_effect_whose_lease_holds_at_its_start_is_run_even_if_the_claim_lease_ran_out(engine, clock):
    """Nobody took it over: the worker that claimed it still runs it, once."""
    calls: list[str] = []

    def charge(ctx: dict, call) -> dict:
        calls.append(call.instance_id)
        clock.advance("3s")  # longer than the lease: p2's claim lease runs out meanwhile
        return {}

    engine.register(
        machine(
            "pay",
            initial="charging",
            states={
                "charging": state(effect=Effect(charge, lease="2s"), on={"done.charge": "paid"}),
                "paid": state(final=True),
            },
        )
    )
    engine.start("pay", instance_id="p1")
    engine.start("pay", instance_id="p2")
    assert engine.run_due() == 2
    assert calls == ["p1", "p2"]
    assert [a.attempt for a in engine.effect_attempts("p2")] == [1]
