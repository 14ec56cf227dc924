"""The testing kit (statemachines.testing): fixtures, run_until_idle, assert_history, the plugin."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from statemachines import Engine, InvalidArgument, ManualClock, machine, state, transition
from statemachines.examples.orders import orders
from statemachines.testing import NotIdle, assert_history, run_until_idle, visited

ROOT = Path(__file__).resolve().parents[1]
ORDER = {"order_id": "A1", "total": 40}


def shipped_order(engine: Engine, iid: str = "a") -> None:
    engine.register(orders)
    engine.start("order-lifecycle", ORDER, instance_id=iid)
    engine.send(iid, "PAYMENT_RECEIVED", {"amount": 40})
    engine.send(iid, "SHIPPED", {"carrier": "ups", "tracking": "1Z"})


# run_until_idle -----------------------------------------------------------------------------------
def test_run_until_idle_jumps_the_clock_to_each_timer(engine: Engine, clock: ManualClock) -> None:
    engine.register(orders)
    start = clock.now()
    engine.start("order-lifecycle", ORDER, instance_id="a")
    assert run_until_idle(engine) == 1
    assert engine.get("a").state == "cancelled"
    assert clock.now() == start + timedelta(days=7)


def test_run_until_idle_runs_effects_and_delivers_their_results(engine: Engine) -> None:
    shipped_order(engine)
    run_until_idle(engine)
    assert engine.get("a").context.log[-1] == "tracking mail sent"
    assert engine.next_due() is None


def test_run_until_idle_stops_before_until(engine: Engine, clock: ManualClock) -> None:
    engine.register(orders)
    engine.start("order-lifecycle", ORDER, instance_id="a")
    assert run_until_idle(engine, until=clock.now() + timedelta(days=6)) == 0
    assert engine.get("a").state == "pending"


def test_run_until_idle_gives_up_on_a_timer_that_rearms_forever(engine: Engine) -> None:
    ticking = machine("ticking", initial="on", states={"on": state(after={"1h": transition("on")})})
    engine.register(ticking)
    engine.start("ticking", instance_id="t")
    with pytest.raises(NotIdle, match="still not idle after 5 rounds"):
        run_until_idle(engine, limit=5)


def test_run_until_idle_needs_a_clock_it_can_move(tmp_path: Path) -> None:
    eng = Engine.in_memory()  # the system clock
    try:
        with pytest.raises(InvalidArgument, match="ManualClock"):
            run_until_idle(eng)
    finally:
        eng.close()


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_run_until_idle_refuses_a_bad_limit(sm_engine: Engine, limit: object) -> None:
    with pytest.raises(InvalidArgument, match="limit"):
        run_until_idle(sm_engine, limit=limit)  # type: ignore[arg-type]


# assert_history -----------------------------------------------------------------------------------
def test_assert_history_compares_the_states_visited(engine: Engine) -> None:
    shipped_order(engine)
    run_until_idle(engine)
    assert_history(engine, "a", ["pending", "processing", "shipped"])


def test_assert_history_compares_event_and_state_pairs(engine: Engine) -> None:
    shipped_order(engine)
    run_until_idle(engine)
    assert_history(
        engine,
        "a",
        [
            ("start", "pending"),
            ("PAYMENT_RECEIVED", "processing"),
            ("SHIPPED", "shipped"),
            ("done.send_tracking_mail", "shipped"),
        ],
    )


def test_visited_leaves_out_rejected_events(sm_engine: Engine) -> None:
    from statemachines import GuardRejected

    sm_engine.register(orders)
    sm_engine.start("order-lifecycle", ORDER, instance_id="a")
    with pytest.raises(GuardRejected):
        sm_engine.send("a", "PAYMENT_RECEIVED", {"amount": 1})
    assert visited(sm_engine, "a") == ["pending"]
    assert [r.outcome for r in sm_engine.history("a")] == ["applied", "rejected"]


def test_a_history_mismatch_fails_with_a_diff_and_the_audit_trail(sm_engine: Engine) -> None:
    shipped_order(sm_engine)
    with pytest.raises(AssertionError) as caught:
        assert_history(sm_engine, "a", ["pending", "backorder", "shipped"])
    message = str(caught.value)
    assert "- backorder" in message and "+ processing" in message
    assert "  pending" in message
    assert "2 PAYMENT_RECEIVED: pending -> processing (applied)" in message


def test_assert_history_refuses_a_mixed_expectation(sm_engine: Engine) -> None:
    shipped_order(sm_engine)
    with pytest.raises(InvalidArgument, match="state names or of"):
        assert_history(sm_engine, "a", ["pending", ("SHIPPED", "shipped")])


# The plugin ---------------------------------------------------------------------------------------
def test_sm_engine_is_in_memory_on_sm_clock(sm_engine: Engine, sm_clock: ManualClock) -> None:
    assert sm_engine.url == "sqlite://"
    assert sm_engine.clock is sm_clock


def test_the_plugin_is_declared_as_a_pytest11_entry_point() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"statemachines.testing": "statemachines.testing"}


def test_the_entry_point_gives_a_project_the_fixtures(tmp_path: Path) -> None:
    """An installed distribution with the same entry point (a stand-in for `pip install`): a test
    file with no conftest gets `sm_engine`; a conftest naming the plugin too does not clash."""
    dist = tmp_path / "site" / "statemachines_kit_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: statemachines-kit-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\nstatemachines.testing = statemachines.testing\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_probe.py").write_text(
        textwrap.dedent(
            """
            from statemachines.testing import run_until_idle

            def test_fixtures(sm_engine, sm_clock):
                assert sm_engine.clock is sm_clock and run_until_idle(sm_engine) == 0
            """
        )
    )
    env_path = f"{tmp_path / 'site'}:{ROOT}"
    for conftest in ("", "pytest_plugins = ['statemachines.testing']\n"):
        (project / "conftest.py").write_text(conftest)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
            capture_output=True,
            text=True,
            cwd=project,
            env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "1 passed" in result.stdout


def test_the_plugin_imports_nothing_beyond_the_package_until_used() -> None:
    code = (
        "import sys, statemachines; before = set(sys.modules); import statemachines.testing;"
        " print(sorted(m for m in set(sys.modules) - before if m.startswith('statemachines')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    ).stdout  # fmt: skip
    assert out.strip() == "['statemachines.testing']"
