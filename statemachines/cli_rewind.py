"""The commands `rewind`, `effects` and `prune` (docs/rewind-and-compensation.md).

Registered by `statemachines.cli` (`add_commands`), run by `run` with the engine it opened.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from statemachines import cli_output as out
from statemachines.cli_app import UsageError
from statemachines.cli_args import int_in
from statemachines.durations import parse_duration
from statemachines.engine import Engine
from statemachines.errors import StateMachineError
from statemachines.prune import MAX_BATCH, PRUNABLE_STATUSES

COMMANDS = ("rewind", "effects", "prune")


def add_commands(cmd: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Add the three subcommands with `cmd(name, help)` (the parser's own factory)."""
    p = cmd("rewind", "put an instance back where it was after a history record, with feedback")
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("--to", required=True, type=_seq_or_state, metavar="SEQ|STATE",
                   help="a history seq, or a state name (its latest entry)")  # fmt: skip
    p.add_argument("--event", help="the feedback event, applied right after the rewind")
    p.add_argument("--payload", help="the feedback event's payload as JSON (or @file.json)")
    p.add_argument("--reason", help="why (stored in the rewind's history record)")
    p.add_argument("--reopen", action="store_true", help="allow rewinding a completed or cancelled instance")
    p.add_argument("--key", help="idempotency key: a resend with the same key changes nothing")
    p.add_argument("--actor")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cmd("effects", "list an instance's effects with their attempts, durations, errors and results")
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cmd("prune", "delete closed instances (and all their rows) last changed before a cutoff")
    p.add_argument("--before", required=True, type=_cutoff, metavar="DURATION|TIME",
                   help="a duration ago (90d, 12h) or an ISO time with a zone")  # fmt: skip
    p.add_argument("--status", action="append", choices=PRUNABLE_STATUSES,
                   help="only this status (repeatable; default: completed and cancelled)")  # fmt: skip
    p.add_argument("--batch", type=int_in(1, MAX_BATCH), default=500, metavar="N",
                   help=f"instances deleted per transaction (1-{MAX_BATCH}, default 500)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="count what would be removed; delete nothing")
    p.add_argument("--json", action="store_true", help="print JSON")


_SEQ = re.compile(r"[+-]?[0-9]+")
# Text that means to be a duration (a number and letters): its own error says what is wrong.
_DURATION_LIKE = re.compile(r"\s*[+-]?[0-9.]+(e[+-]?[0-9]+)?\s*[a-z]+\s*", re.IGNORECASE)


def _seq_or_state(text: str) -> int | str:
    """A history seq (ASCII digits, signed: `-1` is a wrong seq, not a state) or a state name."""
    return int(text) if _SEQ.fullmatch(text) else text


def _cutoff(text: str) -> datetime | str:
    """A duration (checked now: a usage mistake exits 2) or an aware ISO time."""
    try:
        parse_duration(text)
        return text
    except StateMachineError as exc:
        if _DURATION_LIKE.fullmatch(text):
            raise argparse.ArgumentTypeError(str(exc)) from None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (90d, 12h) nor an ISO time (2025-01-01T00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add Z or +00:00")
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is outside the years 1-9999 in UTC") from None


def run(engine: Engine, args: argparse.Namespace) -> None:
    if args.command == "rewind":
        if args.payload is not None and args.event is None:
            raise UsageError("--payload is the payload of --event: give --event too")
        snap = engine.rewind(
            args.instance_id, args.to, event=args.event, payload=args.payload, actor=args.actor,
            reason=args.reason, reopen=args.reopen, idempotency_key=args.key,
        )  # fmt: skip
        print(out.to_json(snap.as_dict()) if args.json else out.snapshot_text(snap.as_dict()))
    elif args.command == "effects":
        reports = engine.effects(args.instance_id)
        print(out.to_json([r.as_dict() for r in reports]) if args.json else effects_text(reports))
    elif args.command == "prune":
        statuses = tuple(args.status) if args.status else PRUNABLE_STATUSES
        report = engine.prune(before=args.before, status=statuses, batch=args.batch, dry_run=args.dry_run)
        print(out.to_json(report.as_dict()) if args.json else prune_text(report))


def effects_text(reports: list[Any]) -> str:
    """One block per effect: its line, then one indented line per attempt."""
    if not reports:
        return "no effects"
    lines: list[str] = []
    for r in reports:
        head = f"{r.name}  state {r.state} (entry {r.entered_seq})  {r.status}  key {r.key}"
        if r.compensates:
            head += f"  compensates {r.compensates}"
        lines.append(head)
        for a in r.attempts:
            result = "ok" if a.ok else f"error: {out.compact(a.error or '', 200)}"
            lines.append(f"  attempt {a.attempt}  {out.when(a.started_at)}  {a.duration_ms:.1f} ms  {result}")
        if r.status == "done":
            lines.append(f"  result {out.compact(r.result, 200)}")
        elif r.last_error and not r.attempts:
            lines.append(f"  last error: {out.compact(r.last_error, 200)}")
    return "\n".join(lines)


def prune_text(report: Any) -> str:
    verb = "would remove" if report.dry_run else "removed"
    c = report.counts
    rows = ", ".join(f"{c[k]} {k.replace('_', ' ')}" for k in c if k != "instances")
    return f"{verb} {c['instances']} instance(s) last changed before {out.when(report.before)}: {rows}"
