"""`statemachines rewind ID --to SEQ|STATE [--event E --payload JSON]` and `cancel --compensate`."""

from __future__ import annotations

import json

from statemachines import Engine, machine, state, transition
from statemachines.cli import main


def note(ctx: dict, event) -> None:
    ctx["notes"] = event.payload["notes"]


CLI_APP = machine(
    "doc",
    initial="drafting",
    states={
        "drafting": state(on={"SUBMIT": "reviewing", "REVISE": transition(None, action=note)}),
        "reviewing": state(on={"APPROVE": "published"}),
        "published": state(final=True),
    },
)
APP = ["--app", "tests.test_rewind_cli:CLI_APP"]


def started(db_url: str) -> list[str]:
    engine = Engine(db_url)
    engine.register(CLI_APP)
    engine.start("doc", instance_id="d1")
    engine.send("d1", "SUBMIT")
    engine.close()
    return ["--db", db_url, *APP]


def test_rewind_to_a_state_with_feedback_prints_the_snapshot(db_url, capsys):
    args = started(db_url)
    code = main([*args, "rewind", "d1", "--to", "drafting", "--event", "REVISE",
                 "--payload", '{"notes": "shorter"}', "--reason", "too long", "--json"])  # fmt: skip
    assert code == 0
    snap = json.loads(capsys.readouterr().out)
    assert (snap["state"], snap["context"]) == ("drafting", {"notes": "shorter"})


def test_rewind_to_a_seq(db_url, capsys):
    args = started(db_url)
    assert main([*args, "rewind", "d1", "--to", "1"]) == 0
    assert "drafting" in capsys.readouterr().out


def test_rewind_of_a_completed_instance_needs_reopen(db_url, capsys):
    args = started(db_url)
    assert main([*args, "send", "d1", "APPROVE"]) == 0
    capsys.readouterr()
    assert main([*args, "rewind", "d1", "--to", "reviewing"]) == 1
    assert "--reopen" in capsys.readouterr().err
    assert main([*args, "rewind", "d1", "--to", "reviewing", "--reopen"]) == 0


def test_rewind_with_a_payload_but_no_event_is_a_usage_mistake(db_url, capsys):
    args = started(db_url)
    assert main([*args, "rewind", "d1", "--to", "1", "--payload", "{}"]) == 2
    assert "--event" in capsys.readouterr().err


def test_rewind_to_an_unknown_state_names_it(db_url, capsys):
    args = started(db_url)
    assert main([*args, "rewind", "d1", "--to", "draftin"]) == 1
    assert "did you mean 'drafting'" in capsys.readouterr().err


def test_rewind_to_a_wrong_seq_names_it_and_the_records_there_are(db_url, capsys):
    args = started(db_url)
    for seq in ("9", "0", "-1"):
        assert main([*args, "rewind", "d1", f"--to={seq}"]) == 1
        assert f"has no history record {seq} (its records are 1..2)" in capsys.readouterr().err


def test_history_shows_the_rewind_as_a_move(db_url, capsys):
    args = started(db_url)
    main([*args, "rewind", "d1", "--to", "drafting"])
    capsys.readouterr()
    assert main([*args, "history", "d1"]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if " rewind " in x]
    assert "reviewing -> drafting" in line and "rewound" in line


def test_cancel_with_compensate(db_url, capsys):
    args = started(db_url)
    assert main([*args, "cancel", "d1", "--compensate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "cancelled"
