"""Awkward state and event names never break DOT or Mermaid, and are shown exactly as written."""

from __future__ import annotations

import re
import shutil

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_diagrams_helpers import AWKWARD_NAMES, awkward_spec_dict, layout, mermaid_decode

from diagrams import draw, draw_run, to_mermaid
from diagrams.mermaid import text as mermaid_text

# a printable name without leading/trailing or repeated whitespace (Graphviz and Mermaid fold those)
names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp", "Co", "Cn")), min_size=1, max_size=20
)


def test_awkward_names_render_through_dot_exactly(needs_dot: str) -> None:
    lay = layout(draw(awkward_spec_dict()))
    for name in AWKWARD_NAMES:
        assert lay.state(name).text == f'{name} | entry / ent"er'


def test_awkward_event_guard_and_action_names_render_exactly(needs_dot: str) -> None:
    lay = layout(draw(awkward_spec_dict()))
    assert lay.edge(AWKWARD_NAMES[0], AWKWARD_NAMES[1], "EV").text == 'EV "0" \\ <0>; | [g<1>] / a&b'


def test_awkward_machine_name_is_the_title(needs_dot: str) -> None:
    lay = layout(draw(awkward_spec_dict()))
    assert lay.title == 'weird "machine" \\ <x>'


def test_node_ids_never_contain_names() -> None:
    source = draw(awkward_spec_dict()).source
    ids = [i for i in re.findall(r"^\t(\S+) \[", source, flags=re.M) if i not in ("graph", "node", "edge")]
    assert all(re.fullmatch(r"s\d+|__initial__", i) for i in ids)
    assert len(ids) == len(AWKWARD_NAMES) + 1


def test_run_of_awkward_names_renders_through_dot(needs_dot: str) -> None:
    spec = awkward_spec_dict()
    history = [
        {"seq": 1, "event": "start", "source": None, "target": AWKWARD_NAMES[0], "outcome": "applied"},
        {
            "seq": 2,
            "event": 'EV "0" \\ <0>;',
            "source": AWKWARD_NAMES[0],
            "target": AWKWARD_NAMES[1],
            "outcome": "applied",
        },
        {
            "seq": 3,
            "event": '<bad "ev">',
            "source": AWKWARD_NAMES[1],
            "target": AWKWARD_NAMES[1],
            "outcome": "rejected",
            "reason": "EventNotAllowed: ...",
        },
    ]
    lay = layout(draw_run(history, spec=spec, instance_id='id "<1>"'))
    assert '#3 <bad "ev"> in say "hi": not allowed' in lay.nodes["__rejected__"].text
    assert 'run id "<1>"' in lay.title


def test_mermaid_declares_each_awkward_state_once_with_a_safe_id() -> None:
    lines = to_mermaid(awkward_spec_dict()).splitlines()
    declared = [re.fullmatch(r'    state "([^"]*)" as (s\d+)', line) for line in lines]
    labels = [mermaid_decode(m.group(1)) for m in declared if m]
    assert labels == AWKWARD_NAMES


def test_mermaid_labels_carry_no_syntax_characters() -> None:
    labels = []
    for line in to_mermaid(awkward_spec_dict()).splitlines():
        declared = re.fullmatch(r'    state "(.*)" as s\d+', line)
        labels.append(declared.group(1) if declared else line.split(" : ", 1)[1] if " : " in line else "")
    assert len([x for x in labels if x]) == 3 * len(AWKWARD_NAMES)
    for label in labels:
        bare = re.sub(r"#\d+;", "", label)
        assert not set(bare) & set('";<>&%`') and ":::" not in bare, label


def test_mermaid_edge_label_decodes_to_the_original(needs_dot: str) -> None:
    line = next(
        ln for ln in to_mermaid(awkward_spec_dict()).splitlines() if ln.startswith("    s0 --> s1 : ")
    )
    assert mermaid_decode(line.split(" : ", 1)[1]) == 'EV "0" \\ <0>; [g<1>] / a&b'


@settings(max_examples=40, deadline=None)
@given(name=names)
def test_any_printable_state_name_survives_dot(name: str) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` not installed")
    assume(name != "end")
    spec = {"name": "m", "initial": name, "states": {name: {"on": {name: "end"}}, "end": {"final": True}}}
    lay = layout(draw(spec))
    assert lay.nodes["s0"].text == name
    assert lay.edge(name, "end", "").text == name


@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=1, max_size=30))
def test_any_text_survives_mermaid_escaping(name: str) -> None:
    escaped = mermaid_text(name)
    bare = re.sub(r"#\d+;", "", escaped)  # what is left outside entity codes
    assert not set(bare) & set('\n";<>&%`') and ":::" not in bare
    assert mermaid_decode(escaped) == " ".join(name.split())


NASTY = ["]", "]]", "[", "]]>", "x]", "<", "&", '"', "\\", "line\nbreak", "Zustellung \u2713 \u65e5\u672c"]


@pytest.mark.parametrize("name", NASTY)
def test_nasty_state_and_event_names_render_through_dot_as_written(needs_dot: str, name: str) -> None:
    """Graphviz 2.43 read `]` in an HTML label as markup (RenderFailed): every name must render."""
    spec = {"name": name, "initial": name, "states": {name: {"on": {name: "end"}}, "end": {"final": True}}}
    lay = layout(draw(spec))
    shown = " ".join(name.split())  # a newline is shown as a space
    assert lay.nodes["s0"].text == shown
    assert lay.edge(shown, "end", "").text == shown
    assert lay.title == shown


@pytest.mark.parametrize("name", ["\\N", "\\G", "a\\Lb", "\\", "x\\\\y"])
def test_backslash_escapes_render_as_written_not_as_graphviz_escapes(needs_dot: str, name: str) -> None:
    """Graphviz expands `\\N` to the node's id even inside HTML-like labels (Hypothesis found it)."""
    spec = {"name": "m", "initial": name, "states": {name: {"on": {name: "end"}}, "end": {"final": True}}}
    lay = layout(draw(spec))
    assert lay.nodes["s0"].text == name
    assert lay.edge(name, "end", "").text == name
