"""Writes tests/data/release_c6f3d8f.db with the release code (commit c6f3d8f), for the upgrade test.

    git -C <repo> worktree add /tmp/release c6f3d8f
    PYTHONPATH=/tmp/release python tests/data/make_release_db.py tests/data/release_c6f3d8f.db

The machine below is repeated in tests/test_chart_engine_upgrade.py (same names, same callables),
which registers it with the current code and drives the old instances on.
"""

import sys

from statemachines import Effect, Engine, ManualClock, machine, state


def charge(ctx, call):
    return {"charged": True}


def release_order():
    return machine(
        "release_order",
        initial="waiting",
        states={
            "waiting": state(on={"GO": "working"}, after={"1h": "timed_out"}),
            "working": state(effect=Effect(charge), on={"done.charge": "charged"}),
            "timed_out": state(final=True),
            "charged": state(final=True),
        },
    )


if __name__ == "__main__":
    engine = Engine(f"sqlite:///{sys.argv[1]}", clock=ManualClock())
    engine.register(release_order())
    engine.start("release_order", {}, instance_id="waits-1")  # a pending timer
    engine.start("release_order", {}, instance_id="waits-2")
    engine.start("release_order", {}, instance_id="works-1")
    engine.send("works-1", "GO")  # a pending effect
    engine.close()
