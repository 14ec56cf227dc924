"""`statemachines versions | migrate | check`: definition versions from the command line.

- `versions MACHINE`: each stored version, when it was first registered, live instances per state;
- `migrate MACHINE --to V [--from V] --map old=new [--context module:fn] [--dry-run]`: move
  instances (all live ones of other versions, those of `--from`, or `--id`s); exit 1 when any
  instance was skipped, so a script notices;
- `check --app myapp [--db URL]`: compare the definitions in code with the database (for CI
  before a deploy); exit 1 on any error. Registers nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from statemachines import cli_output as out
from statemachines.cli_app import CommandError, UsageError, load_app
from statemachines.cli_args import MAX_ROWS, int_in
from statemachines.compatibility import check
from statemachines.engine import Engine
from statemachines.migration import MAX_BATCH

COMMANDS = ("versions", "migrate", "check")


def add_commands(cmd: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Register the subcommands on the main parser (`cmd(name, help)` makes one)."""
    p = cmd("versions", "list a machine's stored definition versions and live instances per state")
    p.add_argument("machine")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cmd("migrate", "move instances of a machine to another definition version (audited)")
    p.add_argument("machine")
    p.add_argument("--to", required=True, metavar="VERSION", help="the target version (registered by --app)")
    p.add_argument("--from", dest="from_version", metavar="VERSION", help="only instances of this version")
    p.add_argument("--id", dest="ids", action="append", metavar="ID", help="only this instance (repeatable)")
    p.add_argument("--map", dest="maps", action="append", default=[], metavar="OLD=NEW",
                   help="state OLD of the old version is NEW in the target (repeatable)")  # fmt: skip
    p.add_argument("--context", dest="context_fn", metavar="MODULE:FN",
                   help="convert each stored context (plain JSON data) with this function")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="report what would happen; change nothing")
    p.add_argument("--actor")
    p.add_argument("--reason")
    p.add_argument("--batch", type=int_in(1, MAX_BATCH), default=500, metavar="N", help="instances per page")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cmd("check", "compare the definitions in code (--app) with the database's live instances (for CI)")
    p.add_argument("--sample", type=int_in(0, MAX_ROWS), default=1000, metavar="N",
                   help="stored contexts validated per version (0: all; default 1000)")  # fmt: skip
    p.add_argument("--strict", action="store_true", help="fail on warnings too")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace, open_engine: Callable[[argparse.Namespace], tuple[Engine, Any]]) -> int:
    if args.command == "check":
        return _check(args)
    state_map = _maps(args.maps) if args.command == "migrate" else {}
    convert = _function(args.context_fn) if args.command == "migrate" and args.context_fn else None
    engine, _ = open_engine(args)
    try:
        if args.command == "versions":
            return _versions(engine, args)
        report = engine.migrate(
            args.ids, machine=args.machine, from_version=args.from_version, to_version=args.to,
            state_map=state_map, context=convert, dry_run=args.dry_run, actor=args.actor,
            reason=args.reason, batch=args.batch,
        )  # fmt: skip
    finally:
        engine.close()
    if args.json:
        print(out.to_json({
            "to_version": report.to_version, "dry_run": report.dry_run,
            "migrated": [{"id": m.instance_id, "from_version": m.from_version, "source": m.source,
                          "target": m.target, "timers_dropped": list(m.timers_dropped),
                          "effects_cancelled": list(m.effects_cancelled), "armed": list(m.armed)}
                         for m in report.migrated],
            "skipped": [{"id": s.instance_id, "reason": s.reason} for s in report.skipped],
        }))  # fmt: skip
    else:
        print(report)
    return 1 if report.skipped else 0


def _versions(engine: Engine, args: argparse.Namespace) -> int:
    infos = engine.versions(args.machine)
    if args.json:
        print(out.to_json([{"version": i.version, "registered_at": i.registered_at, "latest": i.latest,
                            "live": i.live} for i in infos]))  # fmt: skip
        return 0
    for info in infos:
        flags = (("latest", info.latest), ("registered here", info.registered_here))
        marks = ", ".join(m for m, on in flags if on)
        line = f"version {info.version}  registered {out.when(info.registered_at)}"
        print(line + (f"  ({marks})" if marks else ""))
        if not info.live:
            print("  no live instances")
        for state, count in info.live.items():
            print(f"  {state:<30} {count}")
    return 0


def _check(args: argparse.Namespace) -> int:
    if not args.app:
        raise UsageError("check compares the definitions in code with the database: give --app module[:attr]")
    defs, _ = load_app(args.app)
    if not defs:
        raise UsageError(f"--app {args.app!r} holds no definitions")
    engine = Engine(args.db)
    try:
        report = check(engine.runtime, defs, sample=args.sample or None)
    finally:
        engine.close()
    if args.json:
        print(out.to_json({"ok": report.ok, "checked": report.checked, "findings": [
            {"level": f.level, "machine": f.machine, "version": f.version, "message": f.message,
             "instances": f.instances} for f in report.findings]}))  # fmt: skip
    else:
        print(report)
    return 0 if report.ok and not (args.strict and report.findings) else 1


def _maps(items: list[str]) -> dict[str, str]:
    state_map: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise UsageError(f"--map {item!r}: expected OLD=NEW (an old state, its name in the new version)")
        if old in state_map:
            raise UsageError(f"--map maps {old!r} twice")
        state_map[old] = new
    return state_map


def _function(spec: str) -> Callable[[Any], Any]:
    module_name, _, attr = spec.partition(":")
    if not re.fullmatch(r"[\w.]+", module_name) or not re.fullmatch(r"[\w.]+", attr or ""):
        raise UsageError(f"--context {spec!r}: expected module:function")
    if os.getcwd() not in sys.path:  # as --app: the project's own modules
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise CommandError(f"--context {spec!r}: {exc}") from None
    if not callable(target):
        raise UsageError(f"--context {spec!r} is not a function")
    return target
