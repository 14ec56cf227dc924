"""`statemachines.compatibility.check` from Python: what the code would break, read-only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from statemachines import Engine, ManualClock, machine, state
from statemachines.compatibility import check
from tests.versions_machines import doc_v1, doc_v1_1, doc_v2


def notes(model: type[BaseModel]) -> Any:
    return machine("notes", context=model, initial="open", states={"open": state(on={"CLOSE": "done"}),
                                                                   "done": state(final=True)})  # fmt: skip


@pytest.fixture
def engine(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    eng = Engine(db_url, clock=clock)
    yield eng
    eng.close()


def test_a_context_model_changed_under_the_same_version_is_an_error(engine: Engine) -> None:
    class Note(BaseModel):
        text: str

    engine.register(notes(Note))
    engine.start("notes", {"text": "hello"}, instance_id="n1")

    class Note(BaseModel):  # type: ignore[no-redef]  # the next deploy: same name, a new required field
        text: str
        author: str

    code = notes(Note)
    assert code.version == engine.get("n1").definition_version  # the spec names the model only
    report = check(engine, [code])
    assert not report.ok
    assert "1 of 1 stored context(s) checked do not validate against Note" in str(report)
    assert "author: Field required" in str(report)


def test_a_compatible_change_is_only_warned_about(engine: Engine) -> None:
    engine.register(doc_v1())
    engine.start("doc", {"title": "t"}, instance_id="d1")
    report = check(engine, [doc_v1_1()])
    assert report.ok and [f.level for f in report.findings] == ["warning"]
    assert "run on this version, which the code does not register" in report.findings[0].message


def test_the_check_registers_and_writes_nothing(engine: Engine) -> None:
    engine.register(doc_v1())
    engine.start("doc", {"title": "t"}, instance_id="d1")
    check(engine, [doc_v2()])
    assert [v.version for v in engine.versions("doc")] == ["1"]
    assert engine.get("d1").definition_version == "1"


def test_nothing_to_compare_is_ok(engine: Engine) -> None:
    report = check(engine, [doc_v2()])
    assert report.ok and report.findings == [] and report.checked == ["doc"]
