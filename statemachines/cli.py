"""The `statemachines` command: start, send, inspect, draw and run machine instances.

Every failure prints `error: ...` on stderr, one line (a broken definition's problems follow it,
one per line): exit 2 for a usage mistake (bad option or value, bad JSON, unknown --app, a worker
with no machines), 1 for everything the engine refuses or cannot do. No tracebacks unless
STATEMACHINES_DEBUG=1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from statemachines import cli_output as out
from statemachines.cli_app import CommandError, UsageError, error_lines, load_app, one_line
from statemachines.cli_args import MAX_BATCH, MAX_ROWS, MAX_SECONDS, int_in, seconds, ttl
from statemachines.definition import Definition
from statemachines.durations import MAX_DURATION
from statemachines.engine import Engine
from statemachines.errors import DefinitionError, StateMachineError, UnknownMachine
from statemachines.loading import load_definition

DIAGRAM_SUFFIXES = (".dot", ".gv", ".svg", ".png", ".pdf", ".mmd")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _global_options(parent: bool) -> _Parser:
    """--db/--app/--definition, accepted before or after the subcommand."""
    p = _Parser(add_help=False)
    default = None if parent else argparse.SUPPRESS
    p.add_argument(
        "--db",
        metavar="URL",
        default=default,
        help="database URL or SQLite file path (else $STATEMACHINES_DATABASE_URL, else ./statemachines.db)",
    )
    p.add_argument(
        "--app",
        metavar="MODULE[:ATTR]",
        default=default,
        help="import definitions (a Definition, a list/dict of them, or a module), or the Registry"
        " that resolves the names in --definition files",
    )
    p.add_argument(
        "--definition",
        metavar="FILE",
        action="append",
        default=default,
        help="a YAML/JSON definition file (repeatable)",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    from statemachines import __version__

    parser = _Parser(
        prog="statemachines",
        description="Durable state machines: start instances, send events, read their audit trail.",
        parents=[_global_options(parent=True)],
    )
    parser.add_argument("--version", action="version", version=f"statemachines {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = [_global_options(parent=False)]

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=common)

    cmd("demo", "run one order through its lifecycle, print its history, draw its diagrams")
    p = cmd("start", "start an instance of a machine")
    p.add_argument("machine")
    p.add_argument("--id", dest="instance_id", help="instance id (default: a random hex id)")
    p.add_argument("--context", help="initial context as JSON (or @file.json)")
    p.add_argument("--actor")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cmd("send", "send an event to an instance")
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("event")
    p.add_argument("--payload", help="event payload as JSON (or @file.json)")
    p.add_argument("--key", help="idempotency key: a resend with the same key changes nothing")
    p.add_argument("--actor")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cmd("status", "show an instance and what it is waiting on")
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cmd("history", "show an instance's audit trail")
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON (with the context after each step)")
    p = cmd("instances", "list instances")
    p.add_argument("--machine")
    p.add_argument("--state")
    p.add_argument("--status", choices=("active", "completed", "cancelled", "failed"))
    p.add_argument("--limit", type=int_in(0, MAX_ROWS), default=100, metavar="N")
    p.add_argument("--offset", type=int_in(0, MAX_ROWS), default=0, metavar="N")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cmd("cancel", "cancel an instance (its state is kept, its timers and effects dropped)")
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("--reason")
    p.add_argument("--actor")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cmd("retry", "redrive a failed instance: back to active, its failed effects run again")
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("--actor")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cmd("token", "issue a signed, single-use callback token for one event (needs $STATEMACHINES_SECRET)")
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("event")
    p.add_argument(
        "--ttl",
        type=ttl,
        default="7d",
        help=f"how long the token is valid (default 7d, at most {MAX_DURATION.days}d)",
    )
    p.add_argument(
        "--json", action="store_true", help='print JSON: {"token": ..., "instance": ..., "event": ...}'
    )
    p = cmd("send-token", "apply the event a callback token was issued for")
    p.add_argument("token")
    p.add_argument("--payload", help="event payload as JSON (or @file.json)")
    p.add_argument("--actor")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = cmd("diagram", "draw a definition, or one instance's run, to .svg/.png/.pdf/.dot/.mmd")
    p.add_argument("name", metavar="NAME", nargs="?", help="machine name (optional with --instance)")
    p.add_argument("--instance", metavar="ID", help="draw this instance's run on top of its definition")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file; format by suffix")
    p.add_argument(
        "--timeout",
        type=seconds,
        default=60.0,
        metavar="SECONDS",
        help=f"stop Graphviz after this long (default 60, at most {MAX_SECONDS:g})",
    )
    p = cmd("lint", "explore the loaded definitions' event sequences: unreachable transitions, dead ends")
    p.add_argument("names", metavar="NAME", nargs="*", help="only these machines (default: every one loaded)")
    p.add_argument("--depth", type=int_in(0, 1000), default=20, metavar="N", help="events per sequence (20)")
    p.add_argument("--context", help="evaluate guards and run actions on this context (JSON or @file)")
    p.add_argument("--payloads", help='with --context: {"EVENT": payload or [payloads]} (JSON or @file)')
    cmd("schema", "print the JSON Schema of the YAML/JSON definition format")
    p = cmd("worker", "fire due timers and run due effects until stopped")
    p.add_argument(
        "--batch",
        type=int_in(1, MAX_BATCH),
        default=100,
        metavar="N",
        help=f"items claimed per round (1-{MAX_BATCH})",
    )
    p.add_argument(
        "--idle", type=seconds, default=0.5, metavar="SECONDS", help="first sleep when idle (default 0.5)"
    )
    p.add_argument(
        "--max-idle",
        type=seconds,
        metavar="SECONDS",
        help=f"longest sleep when idle, >= --idle (default 5, or --idle if larger; at most {MAX_SECONDS:g})",
    )
    p.add_argument("--once", action="store_true", help="run what is due now, then exit")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines (default), or one JSON object per line: machine, instance, event, outcome...",
    )
    from statemachines import cli_web

    cli_web.add_commands(cmd)  # serve, keys (the web service)
    return parser


def open_engine(args: argparse.Namespace) -> tuple[Engine, dict[str, Definition]]:
    """The engine from --db, with the definitions of --app/--definition registered."""
    defs: list[Definition] = []
    registry: Mapping[str, Any] = {}
    if args.app:
        defs, registry = load_app(args.app)
    if args.definition:
        defs = [load_definition(path, registry) for path in args.definition]
    loaded: dict[str, Definition] = {}
    for d in defs:
        if d.name in loaded and loaded[d.name].version != d.version:
            raise UsageError(f"two different definitions are named {d.name!r}")
        loaded[d.name] = d
    try:
        engine = Engine(args.db, sqlite_synchronous=getattr(args, "sqlite_synchronous", "FULL"))
    except StateMachineError:
        raise
    except Exception as exc:  # e.g. a URL SQLAlchemy cannot parse
        raise CommandError(f"cannot open database {args.db!r}: {type(exc).__name__}: {exc}") from None
    if engine.db.in_memory:  # it would be empty, and gone when the command ends
        engine.close()
        raise CommandError(
            f"--db {args.db!r} is an in-memory database, which lives only as long as one process:"
            " give the command a SQLite file or PostgreSQL"
        )
    try:
        for d in loaded.values():
            engine.register(d)
    except BaseException:
        engine.close()
        raise
    return engine, loaded


# Definitions and commands -------------------------------------------------------------------------
def parse_json(text: str | None, option: str) -> Any:
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{option}: cannot read {text[1:]!r}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise UsageError(f"{option}: {text[1:]!r} is not UTF-8 text: {exc.reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{option} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise UsageError(f"{option} is not valid JSON here: nested too deeply") from None


def _print_snapshot(snap: Any, as_json: bool) -> None:
    print(out.to_json(snap.as_dict()) if as_json else out.snapshot_text(snap.as_dict()))


def run_command(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from statemachines.demo import run_demo

        return run_demo(args.db)
    for option in ("context", "payload", "payloads"):  # argument mistakes first, before the database
        if hasattr(args, option):
            setattr(args, option, parse_json(getattr(args, option), f"--{option}"))
    if args.command in ("lint", "schema"):  # about definitions: no database
        from statemachines.cli_lint import run_lint, run_schema

        return run_lint(args) if args.command == "lint" else run_schema()
    if args.command in ("serve", "keys"):
        from statemachines import cli_web

        return cli_web.run(args, open_engine)
    if args.command == "diagram":
        _check_diagram_args(args.name, args.instance, Path(args.output))
    if args.command == "worker":
        _check_worker_args(args)
    engine, loaded = open_engine(args)
    try:
        if args.command == "worker" and not loaded:
            raise UsageError(
                "the worker has no machines to serve: load their definitions with --app module[:attr]"
                " or --definition FILE (timers and effects of other machines are left alone)"
            )
        return _dispatch(engine, loaded, args)
    except UnknownMachine as exc:
        hint = "" if loaded else " (load it with --app module:attr or --definition FILE)"
        raise CommandError(f"{exc}{hint}") from None
    finally:
        engine.close()


def _dispatch(engine: Engine, loaded: dict[str, Definition], args: argparse.Namespace) -> int:
    c = args.command
    if c == "start":
        snap = engine.start(args.machine, args.context, instance_id=args.instance_id, actor=args.actor)
        _print_snapshot(snap, args.json)
    elif c == "send":
        snap = engine.send(
            args.instance_id, args.event, args.payload, idempotency_key=args.key, actor=args.actor
        )
        _print_snapshot(snap, args.json)
    elif c == "status":
        data = out.status_dict(engine.status(args.instance_id))
        print(out.to_json(data) if args.json else out.status_text(data))
    elif c == "history":
        records = engine.history(args.instance_id)
        print(out.to_json([r.as_dict() for r in records]) if args.json else out.history_table(records))
    elif c == "instances":
        snaps = engine.instances(
            machine=args.machine, state=args.state, status=args.status, limit=args.limit, offset=args.offset
        )
        print(out.to_json([s.as_dict() for s in snaps]) if args.json else out.instances_table(snaps))
    elif c == "cancel":
        _print_snapshot(engine.cancel(args.instance_id, args.reason, actor=args.actor), args.json)
    elif c == "diagram":
        print(draw_diagram(engine, loaded, args.name, args.instance, Path(args.output), args.timeout))
    elif c == "retry":
        _print_snapshot(engine.retry(args.instance_id, actor=args.actor), args.json)
    elif c == "token":
        token = engine.token(args.instance_id, args.event, ttl=args.ttl)
        if args.json:
            print(
                out.to_json(
                    {"token": token, "instance": args.instance_id, "event": args.event, "ttl": args.ttl}
                )
            )
        else:
            print(token)
    elif c == "send-token":
        _print_snapshot(engine.send_token(args.token, args.payload, actor=args.actor), args.json)
    elif c == "worker":
        from statemachines.worker import main as run_worker

        run_worker(engine, args, sorted(loaded))  # returns how many items it processed, not an exit status
    return 0


def _check_worker_args(args: argparse.Namespace) -> None:
    """--max-idle defaults to 5 s (or --idle when that is longer); given, it must be >= --idle."""
    if args.max_idle is None:
        args.max_idle = max(5.0, args.idle)
    elif args.max_idle < args.idle:
        raise UsageError(f"--max-idle {args.max_idle:g} is shorter than --idle {args.idle:g}")


def _check_diagram_args(name: str | None, instance: str | None, path: Path) -> None:
    if name is None and instance is None:
        raise UsageError("diagram needs a machine NAME or --instance ID")
    if path.suffix.lower() not in DIAGRAM_SUFFIXES:
        raise UsageError(
            f"-o {str(path)!r}: unknown diagram format; use one of {', '.join(DIAGRAM_SUFFIXES)}"
        )


def draw_diagram(
    engine: Engine,
    loaded: Mapping[str, Definition],
    name: str | None,
    instance: str | None,
    path: Path,
    timeout: float | None = None,
) -> Path:
    """Write a definition diagram (or an instance's run) to `path`, format by suffix."""
    _check_diagram_args(name, instance, path)
    try:
        import diagrams

        diagrams.save  # noqa: B018 - the API, not just an empty namespace package
    except (ImportError, AttributeError) as exc:
        raise CommandError(f"diagrams are not available: {exc}") from None
    mermaid = path.suffix.lower() == ".mmd"
    if instance is not None:
        machine = engine.get(instance).machine
        if name is not None and name != machine:
            raise UsageError(f"instance {instance!r} belongs to machine {machine!r}, not {name!r}")
        drawing = (
            diagrams.run_to_mermaid(engine, instance) if mermaid else diagrams.draw_run(engine, instance)
        )
    else:
        assert name is not None
        source = loaded.get(name) or engine.stored_spec(name)
        drawing = diagrams.to_mermaid(source) if mermaid else diagrams.draw(source)
    return Path(diagrams.save(drawing, path, timeout=timeout))


# Entry point -------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 refused/failed, 2 usage)."""
    try:
        args = build_parser().parse_args(argv)
        return run_command(args)
    except UsageError as exc:
        return _fail(one_line(exc), code=2)
    except DefinitionError as exc:  # a headline, then every problem on its own line
        return _fail(*error_lines(exc), code=1)
    except (StateMachineError, CommandError) as exc:
        return _fail(one_line(exc), code=1)
    except BrokenPipeError:  # `statemachines history X | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", code=1)
    except KeyboardInterrupt:
        return _fail("interrupted", code=130)
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("STATEMACHINES_DEBUG"):
            raise
        return _fail(
            f"internal error: {type(exc).__name__}: {one_line(exc)} (STATEMACHINES_DEBUG=1 shows more)",
            code=1,
        )


def _fail(message: str, *details: str, code: int) -> int:
    """`error: message` on stderr, then each detail (a definition's problems) on its own line."""
    if os.environ.get("STATEMACHINES_DEBUG") and sys.exc_info()[0] is not None:
        import traceback

        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    for detail in details:
        print(f"  - {detail}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
