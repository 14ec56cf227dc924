"""Every ```python example in docs/statecharts.md runs as written (each one is self-contained)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "statecharts.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_statecharts_page_has_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example{i}" for i in range(1, len(EXAMPLES) + 1)])
def test_each_example_in_the_statecharts_page_runs(code: str) -> None:
    exec(compile(code, f"{DOC.name} example", "exec"), {"__name__": "statecharts_example"})
