"""The Mermaid we write, read back by Mermaid's own parser (node + the `mermaid` npm package).

tests/mermaid_check.mjs runs `mermaid.parse` (under jsdom: Mermaid's sanitiser needs a DOM even
to parse) and returns the states and arrows Mermaid's state-diagram database holds, so the tests
compare what Mermaid will display with the names we started from. The packages are installed by
.ci/run into $STATEMACHINES_NPM_DIR (default `${XDG_CACHE_HOME:-~/.cache}/statemachines-npm`).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_diagrams_escaping import NASTY
from test_diagrams_helpers import AWKWARD_NAMES, awkward_spec_dict, order_definition, run_order
from test_diagrams_limits import reset_anywhere

from diagrams import run_to_mermaid, to_mermaid
from statemachines import Engine

SCRIPT = Path(__file__).with_name("mermaid_check.mjs")


def npm_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "statemachines-npm"
    return Path(os.environ.get("STATEMACHINES_NPM_DIR") or default)


@pytest.fixture(scope="module")
def mermaid_parse() -> Any:
    """parse([text, ...]) -> Mermaid's result for each text; skips where node or mermaid is absent."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: Mermaid's parser cannot run")
    modules = npm_dir() / "node_modules"
    if not (modules / "mermaid").is_dir() or not (modules / "jsdom").is_dir():
        pytest.skip(f"npm packages mermaid and jsdom are not in {npm_dir()} (.ci/run installs them)")

    def parse(texts: list[str]) -> list[dict[str, Any]]:
        proc = subprocess.run(
            [node, str(SCRIPT)],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "STATEMACHINES_NPM_DIR": str(npm_dir())},
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        results: list[dict[str, Any]] = json.loads(proc.stdout)
        return results

    return parse


def shown(label: str) -> str:
    """What Mermaid displays for a stored label: its entity encoding undone, then HTML entities."""
    return html.unescape(label.replace("ﬂ°°", "&#").replace("ﬂ°", "&").replace("¶ß", ";"))


def test_the_checker_rejects_broken_mermaid(mermaid_parse: Any) -> None:
    (result,) = mermaid_parse(['stateDiagram-v2\n    state "a"b" as s0\n'])
    assert not result["ok"] and "Parse error" in result["error"]


def test_definitions_parse(mermaid_parse: Any) -> None:
    specs = [order_definition(), awkward_spec_dict(), reset_anywhere()]
    results = mermaid_parse([to_mermaid(s) for s in specs])
    assert [r.get("error") for r in results] == [None] * len(specs)
    assert len(results[2]["relations"]) == 1 + 99 + 98 + 1  # start, NEXT chain, every RESET, end


def test_runs_parse(mermaid_parse: Any, tmp_path: Path) -> None:
    engine = Engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        run_order(engine)
        text = run_to_mermaid(engine, "A1")
    finally:
        engine.close()
    history = [
        {"seq": 1, "event": "start", "source": None, "target": AWKWARD_NAMES[0], "outcome": "applied"},
        {"seq": 2, "event": '<bad "ev">;', "source": AWKWARD_NAMES[0], "target": AWKWARD_NAMES[0],
         "outcome": "rejected", "reason": "EventNotAllowed: %%{x}%% end note"},
    ]  # fmt: skip
    awkward = run_to_mermaid(history, spec=awkward_spec_dict(), instance_id='id "<1>";')
    results = mermaid_parse([text, awkward])
    assert [r.get("error") for r in results] == [None, None]
    assert "current" not in results[0]["states"]  # classes are not states


def test_awkward_state_names_are_shown_as_written(mermaid_parse: Any) -> None:
    (result,) = mermaid_parse([to_mermaid(awkward_spec_dict())])
    states = result["states"]
    for i, name in enumerate(AWKWARD_NAMES):
        assert [shown(d) for d in states[f"s{i}"]] == [name, 'entry / ent"er']


def test_nasty_state_and_event_names_are_shown_as_written(mermaid_parse: Any) -> None:
    specs = [
        {"name": n, "initial": n, "states": {n: {"on": {n: "end"}}, "end": {"final": True}}} for n in NASTY
    ]
    results = mermaid_parse([to_mermaid(spec) for spec in specs])  # one node process for all
    for name, result in zip(NASTY, results, strict=True):
        assert result.get("error") is None, name
        expected = " ".join(name.split())  # a newline is folded into a space
        assert [shown(d) for d in result["states"]["s0"]] == [expected]
        assert ["s0", "s1", expected] in [[a, b, shown(t)] for a, b, t in result["relations"]]


def test_awkward_edge_labels_are_shown_as_written(mermaid_parse: Any) -> None:
    (result,) = mermaid_parse([to_mermaid(awkward_spec_dict())])
    titles = {(a, b): shown(t) for a, b, t in result["relations"]}
    assert titles[("s0", "s1")] == 'EV "0" \\ <0>; [g<1>] / a&b'
