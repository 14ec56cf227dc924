"""Statecharts in Mermaid: composite states, `--` between regions, checked by Mermaid's own parser."""

from __future__ import annotations

from typing import Any

from test_diagrams_chart_dot import big_chart, child_to_parent
from test_diagrams_chart_helpers import KYC_EVENTS, chart_history, kyc_definition
from test_diagrams_helpers import AWKWARD_NAMES
from test_diagrams_mermaid_parser import mermaid_parse, shown

from diagrams import run_to_mermaid, to_mermaid

__all__ = ["mermaid_parse"]  # the fixture, shared with the flat Mermaid tests


def block(text: str, state_id: str) -> list[str]:
    """The lines directly inside `state "..." as <state_id> {` (not in nested composites), stripped."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().endswith(f"as {state_id} {{"))
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next(i for i in range(start + 1, len(lines)) if lines[i] == " " * indent + "}")
    own = " " * (indent + 4)
    return [line.strip() for line in lines[start + 1 : end] if line.startswith(own) and line[len(own)] != " "]


def test_the_kyc_chart_parses_with_its_nesting(mermaid_parse: Any) -> None:
    (result,) = mermaid_parse([to_mermaid(kyc_definition())])
    assert result.get("error") is None
    parents = result["parents"]
    assert parents["s1"] is None and parents["s17"] is None  # checks, review
    assert [parents[s] for s in ("s2", "s8", "s12")] == ["s1"] * 3  # the regions of checks
    assert [parents[s] for s in ("s4", "s5", "s6")] == ["s3"] * 3  # documents, 3 levels down
    assert parents["s20"] == "s17"  # the history state of review


def test_parallel_regions_are_separated_by_dashes(mermaid_parse: Any) -> None:
    text = to_mermaid(kyc_definition())
    (result,) = mermaid_parse([text])
    assert result["regions"] == {"s1": 3}
    assert block(text, "s1").count("--") == 2


def test_every_compound_state_starts_at_its_own_initial(mermaid_parse: Any) -> None:
    text = to_mermaid(kyc_definition())
    assert "[*] --> s4" in block(text, "s3") and "[*] --> s18" in block(text, "s17")
    assert not [line for line in block(text, "s1") if line.startswith("[*]")]  # parallel: no initial


def test_final_children_end_inside_their_composite() -> None:
    assert "s6 --> [*]" in block(to_mermaid(kyc_definition()), "s3")


def test_history_is_an_H_state_naming_its_default(mermaid_parse: Any) -> None:
    review = block(to_mermaid(kyc_definition()), "s17")
    assert 'state "H" as s20' in review and "s20 : history last, default first" in review


def test_compound_state_actions_are_in_a_note() -> None:
    text = to_mermaid(kyc_definition())
    assert "note left of s17\n        entry / log_decision\n    end note" in text


def test_arrows_are_written_in_the_innermost_composite_holding_both_ends() -> None:
    text = to_mermaid(kyc_definition())
    assert "s4 --> s5 : UPLOADED" in block(text, "s3")
    assert "s3 --> s7 : done.state.checks.identity.documents" in block(text, "s2")
    assert "    s1 --> s17 : done.state.checks" in text.splitlines()  # between top-level states
    assert not [line for line in block(text, "s1") if "-->" in line]  # a parallel block holds regions only


def test_reentering_and_self_transitions_parse(mermaid_parse: Any) -> None:
    text = to_mermaid(child_to_parent())
    (result,) = mermaid_parse([text])
    assert result.get("error") is None
    assert "RESET \u21bb" in text  # the compound state's self-transition, in its note


def test_awkward_names_inside_composites_are_shown_as_written(mermaid_parse: Any) -> None:
    names = [n for n in AWKWARD_NAMES if "." not in n]
    inner = {n: {"on": {f'go "{i}" <&>;': names[(i + 1) % len(names)]}} for i, n in enumerate(names)}
    spec = {"name": 'chart "x"', "initial": "outer;%%", "states": {
        "outer;%%": {"initial": names[0], "states": inner, "on_enter": ['ent"er']},
    }}  # fmt: skip
    (result,) = mermaid_parse([to_mermaid(spec)])
    assert result.get("error") is None
    assert [shown(d) for d in result["states"]["s0"]] == ["outer;%%"]
    assert all(result["parents"][f"s{i + 1}"] == "s0" for i in range(len(names)))


def test_a_run_of_a_chart_parses_and_classes_the_active_configuration(mermaid_parse: Any) -> None:
    history = chart_history(kyc_definition(), KYC_EVENTS[:3])  # three regions running, one refusal
    text = run_to_mermaid(history, spec=kyc_definition(), instance_id="k1")
    (result,) = mermaid_parse([text])
    assert result.get("error") is None
    current = next(line for line in text.splitlines() if line.strip().endswith(" current"))
    assert set(current.split()[1].split(",")) == {"s1", "s2", "s3", "s5", "s8", "s9", "s12", "s13"}
    assert "s4 --> s5 : UPLOADED \u00b7 #3" in block(text, "s3")


def test_a_big_chart_parses(mermaid_parse: Any) -> None:
    (result,) = mermaid_parse([to_mermaid(big_chart())])
    assert result.get("error") is None and result["regions"] == {"s0": 6}
