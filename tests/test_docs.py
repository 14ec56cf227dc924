"""The documentation runs: every ```python block of README.md and docs/*.md is a test.

One test per block, named `file:line` (the line of its opening fence). The blocks of one file
share one namespace and run in order, so a later block may use what an earlier one defined (as a
reader would, top to bottom); selecting a single block runs the ones before it first. Each file
runs in a temporary directory of its own, so the databases and diagrams the examples write land
there, not in the repository, and without the environment variables that would change what the
examples do.

A block that is deliberately not runnable (a fragment, a sketch that needs a server) is preceded
by the HTML comment `<!-- not-a-test: why -->`, with the reason; use it sparingly.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```\s*python\s*$")
NOT_A_TEST = re.compile(r"^<!--\s*not-a-test\b(?P<why>.*?)-->\s*$")
#: Blocks known to fail, by file, with why: each is an expected failure (strict: once it runs, the
#: entry must go). Kept empty but for files this branch may not edit.
KNOWN_BROKEN: dict[str, str] = {}
#: Settings read from the environment that the examples must not inherit from the test run.
ENVIRONMENT = ("STATEMACHINES_DATABASE_URL", "STATEMACHINES_SECRET", "STATEMACHINES_DEBUG")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    skip_reason: str | None  # the reason of a `<!-- not-a-test: ... -->` marker

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    """Every ```python block of a Markdown file, with the marker (if any) on the line before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if not FENCE.match(lines[i]):
            i += 1
            continue
        start = i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise AssertionError(f"{path.name}:{start + 1}: the ```python block is never closed")
        marker = NOT_A_TEST.match(lines[start - 1].strip()) if start > 0 else None
        why = marker.group("why").strip(" :-") if marker else None
        blocks.append(Block(path, start + 1, "\n".join(lines[start + 1 : end]) + "\n", why))
        i = end + 1
    return blocks


ALL_BLOCKS = [b for path in DOC_FILES for b in python_blocks(path)]


@dataclass
class FileRun:
    """One document's shared namespace, working directory and progress through its blocks."""

    cwd: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__docs__"})
    done: int = 0  # blocks of the file already run (or skipped)
    broken: str | None = None  # the id of a block that failed: later ones cannot run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, FileRun]:
    return {path: FileRun(tmp_path_factory.mktemp(path.stem)) for path in DOC_FILES}


def _repository_files() -> set[Path]:
    return {*ROOT.iterdir(), *(ROOT / "docs").iterdir()}


def _execute(block: Block, run: FileRun, monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker example installs its SIGTERM/SIGINT handlers: give the test run its own back.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with monkeypatch.context() as m:
        m.chdir(run.cwd)
        for name in ENVIRONMENT:
            m.delenv(name, raising=False)
        try:
            # Padded so that a traceback names the document's own file and line.
            exec(compile("\n" * block.line + block.code, str(block.path), "exec"), run.namespace)
        except BaseException:
            run.broken = block.id
            raise
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


def _params() -> list[Any]:
    params = []
    for b in ALL_BLOCKS:
        why = KNOWN_BROKEN.get(str(b.path.relative_to(ROOT)))
        marks = [pytest.mark.xfail(reason=why, strict=True)] if why else []
        params.append(pytest.param(b, id=b.id, marks=marks))
    return params


@pytest.mark.timeout(120)
@pytest.mark.parametrize("block", _params())
def test_doc_block_runs(block: Block, runs: dict[Path, FileRun], monkeypatch: pytest.MonkeyPatch) -> None:
    run = runs[block.path]
    mine = [b for b in ALL_BLOCKS if b.path == block.path]
    index = mine.index(block)
    for earlier in mine[run.done : index]:  # the blocks before this one, when selected alone
        if run.broken is None and earlier.skip_reason is None:
            _execute(earlier, run, monkeypatch)
    run.done = max(run.done, index + 1)
    if block.skip_reason is not None:
        pytest.skip(f"marked not-a-test: {block.skip_reason}")
    if run.broken is not None:
        pytest.fail(f"{run.broken}, an earlier block of this file, failed: this one cannot run")
    before = _repository_files()
    _execute(block, run, monkeypatch)
    assert _repository_files() == before, "the example wrote into the repository, not its directory"


def test_every_not_a_test_marker_gives_a_reason() -> None:
    unexplained = [b.id for b in ALL_BLOCKS if b.skip_reason == ""]
    assert unexplained == [], "write the reason: <!-- not-a-test: why -->"


def test_the_readme_quick_start_is_a_test() -> None:
    readme = [b for b in ALL_BLOCKS if b.path.name == "README.md"]
    quick_start = [b for b in readme if "engine.start(" in b.code and "engine.send(" in b.code]
    assert quick_start and all(b.skip_reason is None for b in quick_start)


def test_the_block_parser_reads_fences_markers_and_lines(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# t\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n\n"
        "<!-- not-a-test: needs a server -->\n```python\nconnect()\n```\n",
        encoding="utf-8",
    )
    first, second = python_blocks(doc)
    assert (first.line, first.code, first.skip_reason) == (3, "x = 1\n", None)
    assert (second.line, second.code, second.skip_reason) == (12, "connect()\n", "needs a server")
