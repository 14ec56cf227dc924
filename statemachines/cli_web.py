"""`statemachines serve` and `statemachines keys create|list|revoke`: the web service's commands.

`serve` runs `create_app` on uvicorn. Each uvicorn worker process builds its own engine from the
same options (passed through the environment to `app_from_environment`, uvicorn's app factory),
so `--workers N` scales across cores; with `--worker`, each process also runs the timer/effect
loop in a thread (claims never overlap, so N loops are safe). Without any API key the server
binds to 127.0.0.1 only, says so, and admits loopback requests without a key; see docs/service.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from statemachines import cli_output as out
from statemachines.cli_app import CommandError, UsageError
from statemachines.cli_args import int_in

COMMANDS = ("serve", "keys")
CONFIG_ENV = "STATEMACHINES_SERVE_CONFIG"
LOOPBACK = "127.0.0.1"
WEB_EXTRA = "the web service needs the [web] extra: pip install 'statemachines[web]'"


def add_commands(cmd: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Register `serve` and `keys` with the main parser (`cmd(name, help)` makes a subparser)."""
    p = cmd("serve", "run the HTTP API, callback URLs and console (FastAPI on uvicorn)")
    p.add_argument("--host", default=LOOPBACK, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int_in(0, 65535), default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int_in(1, 64), default=1, metavar="N", help="uvicorn worker processes")
    p.add_argument("--worker", action="store_true", help="also fire timers and run effects in each process")
    p.add_argument(
        "--base-url", metavar="URL", help="public address for callback URLs ($STATEMACHINES_BASE_URL)"
    )
    p.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default="info")
    p.add_argument(
        "--access-log", action="store_true",
        help="log a line per request (off by default: it costs more CPU than the rest of a send's HTTP"
        " handling; use a reverse proxy's log, or /metrics)",
    )  # fmt: skip
    p.add_argument(
        "--sqlite-synchronous", choices=("FULL", "NORMAL"), default="FULL",
        help="SQLite only: FULL (default) survives power loss; NORMAL (WAL) may lose the last"
        " commits on power loss, never on a crash of the process, and is faster",
    )  # fmt: skip
    p = cmd("keys", "manage the API keys of the web service")
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = keys.add_parser("create", help="make a key; its secret is printed once")
    create.add_argument("name", help="who or what uses it (e.g. billing-service)")
    create.add_argument(
        "--scope", action="append", choices=("read", "write", "admin"), dest="scopes",
        help="read (GET), write (start, send, cancel), admin (retry, everything); repeatable; default read",
    )  # fmt: skip
    create.add_argument("--json", action="store_true", help="print JSON")
    listing = keys.add_parser("list", help="the live keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", metavar="ID")


def run(
    args: argparse.Namespace, open_engine: Callable[[argparse.Namespace], tuple[Any, dict[str, Any]]]
) -> int:
    try:
        from statemachines.web.keys import KeyStore
    except ImportError as exc:
        raise CommandError(f"{WEB_EXTRA} ({exc})") from None
    if args.command == "serve":
        return serve(args, open_engine)
    engine, _ = open_engine(args)
    try:
        store = KeyStore(engine)
        if args.keys_command == "create":
            key, secret = store.create(args.name, args.scopes or ["read"])
            if args.json:
                print(out.to_json({**_key_dict(key), "secret": secret}))
            else:
                print(secret)
                print(f"key {key.id} ({key.name}, {', '.join(sorted(key.scopes))}): the secret above is shown"
                      " only now; it is stored hashed", file=sys.stderr)  # fmt: skip
        elif args.keys_command == "list":
            keys = store.list()
            if args.json:
                print(out.to_json([_key_dict(k) for k in keys]))
            else:
                for k in keys:
                    print(f"{k.id}  {','.join(sorted(k.scopes)):<16}  {k.created.isoformat()}  {k.name}")
        elif not store.revoke(args.key_id):
            raise CommandError(f"no live key with id {args.key_id!r} (see `statemachines keys list`)")
        else:
            print(f"revoked {args.key_id}")
    finally:
        engine.close()
    return 0


def _key_dict(key: Any) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "scopes": sorted(key.scopes), "created": key.created.isoformat()}


def serve(
    args: argparse.Namespace, open_engine: Callable[[argparse.Namespace], tuple[Any, dict[str, Any]]]
) -> int:
    try:
        import uvicorn  # noqa: F401 - checked here, used by _run_uvicorn

        from statemachines.web.auth import is_loopback
        from statemachines.web.keys import KeyStore
    except ImportError as exc:
        raise CommandError(f"{WEB_EXTRA} ({exc})") from None
    engine, loaded = open_engine(args)  # checks --db and --app now, and migrates once before forking
    try:
        has_keys = KeyStore(engine).any()
        url = engine.url
    finally:
        engine.close()
    host = args.host
    if not has_keys and not (host == "localhost" or is_loopback(host)):
        print(
            f"no API keys exist: binding to {LOOPBACK} only, not {host} (requests from this machine need"
            " no key until one exists; make one with `statemachines keys create NAME --scope admin`)",
            file=sys.stderr,
        )
        host = LOOPBACK
    elif not has_keys:
        print(
            "no API keys exist: serving loopback only; local requests need no key until one exists",
            file=sys.stderr,
        )
    config = {
        "db": url, "app": args.app, "definition": args.definition, "worker": args.worker,
        "base_url": args.base_url, "sqlite_synchronous": args.sqlite_synchronous,
    }  # fmt: skip
    os.environ[CONFIG_ENV] = json.dumps(config)
    share_session_secret(os.environ)
    machines = ", ".join(sorted(loaded)) or "none"
    print(
        f"serving http://{host}:{args.port} with {args.workers} process(es)"
        f"{' and the timer/effect worker' if args.worker else ''}; machines: {machines}",
        file=sys.stderr,
    )
    return _run_uvicorn(host, args.port, args.workers, args.log_level, access_log=args.access_log)


def share_session_secret(environ: Any) -> None:
    """Make one console session secret for every worker process, unless the operator set one.

    Each process would otherwise draw its own random secret (`session_secret_from`), and with
    `--workers N` a login cookie signed by one worker is forged to the others: the console would
    log the user out on alternate requests. uvicorn's worker processes inherit the environment,
    so a secret put there before they start is the one they all use (it still ends with `serve`:
    set $STATEMACHINES_SESSION_SECRET for sessions that survive a restart or span replicas)."""
    from statemachines.web.app import SESSION_SECRET_ENV

    if not environ.get(SESSION_SECRET_ENV):
        environ[SESSION_SECRET_ENV] = secrets.token_hex(32)


def _run_uvicorn(host: str, port: int, workers: int, log_level: str, *, access_log: bool = False) -> int:
    """`uvicorn.run` of our app factory; its exit status. Several workers on Linux: a socket of
    their own each (`web/server_processes.py`, so connections spread over all of them); elsewhere
    uvicorn's supervisor on one listening socket that says it is TCP. uvicorn binds it with
    `proto=0` and asyncio then leaves Nagle's algorithm on for every accepted connection: each
    keep-alive request after the first waited ~40 ms for a delayed ACK (uvicorn issue 3149).
    Marking the socket as TCP restores TCP_NODELAY.

    uvicorn's access log is off unless asked for: at the default `info` level it formats and
    writes a line per request, measured at 150-250 µs of CPU per `POST .../events` (more than
    the application's own work around `send`; bench/RESULTS.md section 20)."""
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from statemachines.web.server_processes import ServerProcesses, balances_connections, bind_sockets

    config = uvicorn.Config(
        "statemachines.cli_web:app_from_environment", factory=True, host=host, port=port, workers=workers,
        log_level=log_level, access_log=access_log,
    )  # fmt: skip
    with suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has shut down gracefully, exit 0
        if workers == 1:
            uvicorn.Server(config).run()
            return 0
        if balances_connections():
            try:
                sockets = bind_sockets(host, port, workers, config.backlog)
            except OSError as exc:
                raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            return ServerProcesses(config, sockets).run()
        bound = config.bind_socket()
        sock = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
        Multiprocess(config, sockets=[sock]).run()
    return 0


def app_from_environment() -> Any:
    """uvicorn's app factory: the engine and app of one server process, from `serve`'s options."""
    from statemachines.cli import open_engine
    from statemachines.web import create_app

    try:
        config = json.loads(os.environ[CONFIG_ENV])
    except (KeyError, ValueError) as exc:
        raise UsageError(
            f"app_from_environment runs under `statemachines serve` (${CONFIG_ENV}: {exc})"
        ) from None
    namespace = argparse.Namespace(
        db=config["db"], app=config["app"], definition=config["definition"],
        sqlite_synchronous=config.get("sqlite_synchronous", "FULL"),
    )  # fmt: skip
    engine, _ = open_engine(namespace)
    app = create_app(engine, base_url=config.get("base_url"))
    if config.get("worker"):
        app.router.lifespan_context = _with_worker(engine)
    return app


def _with_worker(engine: Any) -> Callable[[Any], Any]:
    """A lifespan that runs the timer/effect loop in a thread while the server runs."""
    from statemachines.worker import Worker

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        worker = Worker(engine)
        thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
        thread.start()
        try:
            yield
        finally:
            worker.stop()
            thread.join(timeout=30)

    return lifespan
