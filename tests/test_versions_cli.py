"""`statemachines versions | migrate | check`, and `status` showing the definition version; then
the whole story as a team lives it, in real processes: instances started on v1, v2 deployed with
`review` renamed, the stranded instance refused, `check` failing in CI, a dry run, the migration,
and the instance approved."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from statemachines.cli import main

Cap = pytest.CaptureFixture[str]
APP_V1 = "from tests.versions_machines import doc_v1\ndoc = doc_v1()\n"
APP_V2 = "from tests.versions_machines import doc_v2\ndoc = doc_v2()\n"
APP_BOTH = "from tests.versions_machines import doc_v1, doc_v2\ndocs = [doc_v1(), doc_v2()]\n"
APP_V3 = "from tests.versions_machines import doc_v3\ndoc = doc_v3()\n"


def run(capsys: Cap, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Modules app_v1, app_v2, app_both, app_v3 in the current directory (as --app finds them)."""
    for name, text in (("app_v1", APP_V1), ("app_v2", APP_V2), ("app_both", APP_BOTH), ("app_v3", APP_V3)):
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def stranded(capsys: Cap, db_url: str, apps: Path) -> str:
    """f1 in `review` and d1 in `draft`, both on v1."""
    steps = (
        ["start", "doc", "--id", "f1", "--context", '{"title": "f"}'],
        ["send", "f1", "SUBMIT"],
        ["start", "doc", "--id", "d1", "--context", '{"title": "d"}'],
    )
    for argv in steps:
        assert run(capsys, "--db", db_url, "--app", "app_v1:doc", *argv)[0] == 0
    return db_url


def test_versions_lists_each_version_with_live_instances_per_state(capsys: Cap, stranded: str) -> None:
    assert run(capsys, "--db", stranded, "--app", "app_v2:doc", "start", "doc", "--id", "n1",
               "--context", '{"title": "n"}')[0] == 0  # fmt: skip
    code, out, _ = run(capsys, "--db", stranded, "versions", "doc")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("version 1  registered ")
    assert [line.split() for line in lines[1:3]] == [["draft", "1"], ["review", "1"]]
    assert lines[3].startswith("version 2  registered ") and lines[3].endswith("(latest)")
    assert lines[4].split() == ["draft", "1"]


def test_versions_of_an_unknown_machine_is_an_error(capsys: Cap, stranded: str) -> None:
    code, _, err = run(capsys, "--db", stranded, "versions", "nope")
    assert code == 1 and "unknown machine 'nope'" in err


def test_status_shows_the_definition_version(capsys: Cap, stranded: str) -> None:
    code, out, _ = run(capsys, "--db", stranded, "status", "f1")
    assert code == 0 and "definition 1" in out


def test_an_app_may_load_several_versions_of_a_machine(capsys: Cap, stranded: str) -> None:
    code, out, _ = run(capsys, "--db", stranded, "--app", "app_both:docs", "send", "f1", "APPROVE")
    assert code == 0 and "approved" in out
    code, out, _ = run(capsys, "--db", stranded, "--app", "app_both:docs", "start", "doc", "--id", "n",
                       "--context", '{"title": "n"}', "--json")  # fmt: skip
    assert code == 0 and '"definition_version": "2"' in out


def test_migrate_dry_run_reports_and_changes_nothing(capsys: Cap, stranded: str) -> None:
    code, out, _ = run(capsys, "--db", stranded, "--app", "app_v2:doc", "migrate", "doc", "--to", "2",
                       "--map", "review=in_review", "--dry-run")  # fmt: skip
    assert code == 0
    assert "would migrate 2 instance(s) to version 2; skipped 0" in out
    assert "f1: review (1) -> in_review" in out
    assert "definition 1" in run(capsys, "--db", stranded, "status", "f1")[1]


def test_migrate_without_the_map_skips_the_stranded_one_and_exits_1(capsys: Cap, stranded: str) -> None:
    code, out, _ = run(capsys, "--db", stranded, "--app", "app_v2:doc", "migrate", "doc", "--to", "2")
    assert code == 1
    assert "migrated 1 instance(s) to version 2; skipped 1" in out
    assert "skipped f1: state 'review' does not exist in version '2'" in out


def test_migrate_with_a_context_function(capsys: Cap, stranded: str) -> None:
    code, out, _ = run(capsys, "--db", stranded, "--app", "app_v3:doc", "migrate", "doc", "--to", "3",
                       "--id", "d1", "--context", "tests.versions_machines:add_owner")  # fmt: skip
    assert code == 0, out
    assert '"owner": "unassigned"' in run(capsys, "--db", stranded, "status", "d1")[1]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--map", "review"], "expected OLD=NEW"),
        (["--map", "a=b", "--map", "a=c"], "maps 'a' twice"),
        (["--context", "nonsense"], "expected module:function"),
    ],
)
def test_migrate_usage_mistakes_exit_2(capsys: Cap, stranded: str, extra: list[str], needle: str) -> None:
    code, _, err = run(capsys, "--db", stranded, "--app", "app_v2:doc", "migrate", "doc", "--to", "2", *extra)
    assert code == 2 and needle in err


def test_migrate_to_an_unregistered_version_is_an_error(capsys: Cap, stranded: str) -> None:
    code, _, err = run(capsys, "--db", stranded, "--app", "app_v2:doc", "migrate", "doc", "--to", "7")
    assert code == 1 and "version '7' is not registered" in err


def test_check_fails_with_a_readable_report_when_instances_would_break(capsys: Cap, stranded: str) -> None:
    code, out, _ = run(capsys, "--db", stranded, "check", "--app", "app_v2:doc")
    assert code == 1
    assert "error: doc version 1: state 'review' was removed; 1 live instance(s) are in it" in out
    assert "warning: doc version 1: 2 live instance(s) run on this version" in out
    assert "warning: doc version 1: state 'draft' changed" in out
    assert out.rstrip().endswith("check FAILED: 1 machine(s) compared, 1 error(s), 2 warning(s)")


def test_check_reports_contexts_that_fail_the_new_model(capsys: Cap, stranded: str) -> None:
    code, out, _ = run(capsys, "--db", stranded, "check", "--app", "app_v3:doc", "--sample", "0")
    assert code == 1
    assert "2 of 2 stored context(s) checked do not validate against OwnedDoc" in out
    assert "owner: Field required" in out


def test_check_reports_removed_events_instances_wait_on(capsys: Cap, stranded: str, tmp_path: Path) -> None:
    (tmp_path / "app_no_reject.py").write_text(
        "from tests.versions_machines import doc_v1\n"
        "from statemachines import machine\n"
        "v1 = doc_v1()\n"
        "spec = v1.to_dict()\n"
        "del spec['states']['review']['on']['REJECT']\n"
        "spec['version'] = '1.2'\n"
        "from statemachines.definition import Definition\n"
        "doc = Definition.from_dict(spec, {**v1.callables, 'Doc': v1.context_model})\n"
    )
    code, out, _ = run(capsys, "--db", stranded, "check", "--app", "app_no_reject:doc")
    assert code == 1
    assert "event(s) ['REJECT'] of state 'review' were removed; 1 live instance(s) wait on them" in out


def test_check_passes_when_the_code_registers_what_the_instances_run_on(capsys: Cap, stranded: str) -> None:
    code, out, _ = run(capsys, "--db", stranded, "check", "--app", "app_both:docs", "--strict")
    assert code == 0 and "check ok: 1 machine(s) compared, 0 error(s), 0 warning(s)" in out


def test_check_needs_an_app(capsys: Cap, stranded: str) -> None:
    code, _, err = run(capsys, "--db", stranded, "check")
    assert code == 2 and "--app" in err


def test_check_writes_nothing(capsys: Cap, stranded: str) -> None:
    run(capsys, "--db", stranded, "check", "--app", "app_v2:doc")
    out = run(capsys, "--db", stranded, "versions", "doc")[1]
    assert "version 2" not in out  # not registered by the check


# The whole story, in real processes --------------------------------------------------------------
def cli(tmp_path: Path, db: str, *argv: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("statemachines", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "statemachines.cli"]
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    env.pop("STATEMACHINES_DATABASE_URL", None)
    return subprocess.run([*cmd, "--db", db, *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_a_stranded_instance_is_rescued_end_to_end_through_the_cli(db_url: str, apps: Path) -> None:
    def ok(*argv: str) -> str:
        proc = cli(apps, db_url, *argv)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    ok("--app", "app_v1:doc", "start", "doc", "--id", "f2", "--context", '{"title": "contract"}')
    ok("--app", "app_v1:doc", "send", "f2", "SUBMIT")
    # v2 is deployed: `review` is now `in_review`. The old instance is refused, and nothing is written.
    refused = cli(apps, db_url, "--app", "app_v2:doc", "send", "f2", "APPROVE")
    assert refused.returncode == 1
    assert "machine 'doc' version '1' is not registered in this process" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "rejected" not in ok("history", "f2")
    # CI would have said so before the deploy.
    check = cli(apps, db_url, "check", "--app", "app_v2:doc")
    assert check.returncode == 1 and "state 'review' was removed" in check.stdout
    # A dry run, then the move.
    assert "f2: review (1) -> in_review" in ok("--app", "app_v2:doc", "migrate", "doc", "--to", "2",
                                               "--map", "review=in_review", "--dry-run")  # fmt: skip
    assert "definition 1" in ok("status", "f2")
    ok("--app", "app_v2:doc", "migrate", "doc", "--to", "2", "--map", "review=in_review",
       "--actor", "ops", "--reason", "rename review")  # fmt: skip
    status = ok("--app", "app_v2:doc", "status", "f2")
    assert "in_review" in status and "definition 2" in status and "after.3d" in status
    assert "approved" in ok("--app", "app_v2:doc", "send", "f2", "APPROVE")
    history = ok("history", "f2")
    moved = r"migrate\s+review -> in_review\s+migrated\s+ops\s+version 1 -> 2: rename review"
    assert re.search(moved, history)
    assert cli(apps, db_url, "check", "--app", "app_v2:doc").returncode == 0
