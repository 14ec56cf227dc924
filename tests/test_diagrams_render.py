"""Writing diagrams to files: the suffix picks the format; only SVG/PNG/PDF need Graphviz's `dot`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_diagrams_helpers import AWKWARD_NAMES, awkward_spec_dict, order_definition

from diagrams import GraphvizNotInstalled, UnsupportedFormat, draw, save, to_mermaid
from statemachines import StateMachineError

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def no_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH on which no `dot` can be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_svg_contains_every_state(tmp_path: Path, needs_dot: str) -> None:
    out = save(draw(order_definition()), tmp_path / "orders.svg")
    texts = svg_texts(out)
    for name in order_definition().spec.states:
        assert name in texts


def test_svg_of_awkward_names_parses_and_contains_each_name(tmp_path: Path, needs_dot: str) -> None:
    texts = svg_texts(save(draw(awkward_spec_dict()), tmp_path / "weird.svg"))
    for name in AWKWARD_NAMES:
        assert name in texts


def test_svg_groups_one_node_per_state(tmp_path: Path, needs_dot: str) -> None:
    root = ET.parse(save(draw(order_definition()), tmp_path / "o.svg")).getroot()
    titles = [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    assert sorted(titles) == sorted(["__initial__", *(f"s{i}" for i in range(6))])


def test_png_is_written(tmp_path: Path, needs_dot: str) -> None:
    out = save(draw(order_definition()), tmp_path / "orders.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pdf_is_written(tmp_path: Path, needs_dot: str) -> None:
    assert save(draw(order_definition()), tmp_path / "orders.pdf").read_bytes()[:5] == b"%PDF-"


def test_save_returns_the_path_and_creates_parent_directories(tmp_path: Path) -> None:
    out = save(draw(order_definition()), str(tmp_path / "a" / "b" / "orders.dot"))
    assert out == tmp_path / "a" / "b" / "orders.dot" and out.is_file()


def test_dot_file_is_the_dot_source(tmp_path: Path) -> None:
    graph = draw(order_definition())
    assert save(graph, tmp_path / "orders.dot").read_text() == graph.source


def test_mermaid_text_is_written_as_mmd(tmp_path: Path) -> None:
    text = to_mermaid(order_definition())
    assert save(text, tmp_path / "orders.mmd").read_text() == text


def test_a_definition_can_be_saved_directly(tmp_path: Path) -> None:
    definition = order_definition()
    assert save(definition, tmp_path / "d.mmd").read_text() == to_mermaid(definition)
    assert save(definition, tmp_path / "d.dot").read_text() == draw(definition).source


def test_missing_dot_raises_a_typed_error_that_says_how_to_install(tmp_path: Path, no_dot: None) -> None:
    with pytest.raises(GraphvizNotInstalled) as info:
        save(draw(order_definition()), tmp_path / "orders.png")
    message = str(info.value)
    assert "apt-get install graphviz" in message
    assert "brew install graphviz" in message
    assert "https://graphviz.org/download/" in message
    assert isinstance(info.value, StateMachineError)
    assert not (tmp_path / "orders.png").exists()


@pytest.mark.parametrize("suffix", [".svg", ".png", ".pdf"])
def test_every_binary_format_needs_dot(tmp_path: Path, no_dot: None, suffix: str) -> None:
    with pytest.raises(GraphvizNotInstalled, match=suffix[1:].upper()):
        save(draw(order_definition()), tmp_path / f"orders{suffix}")


def test_dot_and_mermaid_output_work_without_dot(tmp_path: Path, no_dot: None) -> None:
    assert save(draw(order_definition()), tmp_path / "o.dot").read_text().startswith("//")
    assert save(to_mermaid(order_definition()), tmp_path / "o.mmd").read_text().startswith("stateDiagram-v2")


def test_unknown_suffix_is_refused_with_the_supported_list(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match=r"\.svg"):
        save(draw(order_definition()), tmp_path / "orders.jpeg")


def test_mermaid_text_cannot_be_saved_as_an_image(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match=r"save Mermaid as \.mmd"):
        save(to_mermaid(order_definition()), tmp_path / "orders.svg")


def test_a_graphviz_graph_cannot_be_saved_as_mermaid(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="to_mermaid"):
        save(draw(order_definition()), tmp_path / "orders.mmd")
