"""Bad input: whatever arrives (definitions as dicts, YAML or JSON text or bytes, payloads, ids,
event names, keys, actors, CLI arguments) the API raises only `StateMachineError` subclasses, the
CLI never prints a traceback, and the database is unchanged by every error (a logical dump of all
`sm_*` tables is compared before and after; a rejected event may add exactly its documented
`rejected` record).

Inputs: huge strings (1 MB), deep nesting (up to 100,000 levels), NUL, lone surrogates (what
non-UTF-8 bytes become in Python), non-UTF-8 files, SQL-looking strings, wrong types.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import reprlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from persistence import Database
from reliability.support import (
    BUSY,
    FULL,
    assert_only_rejection_recorded,
    assert_unchanged,
    dump,
    record,
    scale,
)
from statemachines import (
    Definition,
    Effect,
    Engine,
    EventRejected,
    ManualClock,
    Registry,
    StateMachineError,
    load_definition,
    loads_definition,
    machine,
    state,
    transition,
)
from statemachines.cli import main as cli_main

SQLISH = [
    "'; DROP TABLE sm_instances; --",
    '" OR 1=1 --',
    "Robert'); DROP TABLE sm_history;--",
    "1; DELETE FROM sm_receipts",
    "%s",
    "%(id)s",
    "%%",
    ":id",
    "$1",
    "?",
    "\\",
    "' OR ''='",
    "/* */",
]
HUGE = "x" * 1_000_000
HUGE_WIDE = "\u00e9\U0001f600" * 100_000


def deep(levels: int, kind: str = "list") -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value] if kind == "list" else {"k": value}
    return value


class Deep(list):  # type: ignore[type-arg]
    """`levels` nested lists. Prints short in hypothesis reports (which recurse per level and
    would fail); its `repr` stays the real one, so code that reprs user input is still tested."""

    def __init__(self, levels: int) -> None:
        super().__init__([deep(levels - 1)])
        self.levels = levels

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(f"Deep({self.levels})")


class DeepDict(dict):  # type: ignore[type-arg]
    def __init__(self, levels: int) -> None:
        super().__init__({"k": deep(levels - 1, "dict")})
        self.levels = levels

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(f"DeepDict({self.levels})")


def cyclic() -> Any:
    value: list[Any] = []
    value.append(value)
    return value


surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
weird_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(SQLISH),
    st.sampled_from(["", " ", "\x00", "a\x00b", "x" * 200, "x" * 201, "\n", "\ufeff", "\u202e"]),
    st.builds(lambda a, b: a + b, st.text(max_size=5), surrogates),
)
weird_scalar = st.one_of(
    weird_text,
    st.binary(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
)
weird_json = st.one_of(
    st.recursive(
        weird_scalar,
        lambda c: st.lists(c, max_size=4) | st.dictionaries(weird_text, c, max_size=4),
        max_leaves=12,
    ),
    st.sampled_from(
        ["HUGE", "HUGE_WIDE", "deep50", "deep1000", "deep100000", "deepdict5000", "cyclic", "set", "object"]
    ).map(
        lambda name: {
            "HUGE": lambda: {"s": HUGE},
            "HUGE_WIDE": lambda: [HUGE_WIDE],
            "deep50": lambda: Deep(50),
            "deep1000": lambda: Deep(1000),
            "deep100000": lambda: Deep(100_000),
            "deepdict5000": lambda: DeepDict(5000),
            "cyclic": cyclic,
            "set": lambda: {1, 2},
            "object": object,
        }[name]()
    ),
)
weird_any = st.one_of(weird_text, weird_scalar, weird_json, st.just(HUGE))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), weird_text),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(weird_text, c, max_size=3),
    max_leaves=8,
)


class Account(BaseModel):
    n: int = 0
    note: str = ""


class Pay(BaseModel):
    amount: int


def pay(ctx: Account, event: Any) -> None:
    ctx.n += event.payload.amount


def fx(ctx: Any, call: Any) -> dict[str, bool]:
    return {"ok": True}


def is_ok(ctx: Any, event: Any) -> bool:
    return True


ACCOUNT = machine(
    "account",
    context=Account,
    events={"PAY": Pay},
    initial="open",
    states={
        "open": state(on={"PAY": transition(None, action=pay), "CLOSE": "closed", "WAIT": "waiting"}),
        "waiting": state(on={"APPROVE": "open"}, after={"1d": "open"}, effect=Effect(fx)),
        "closed": state(final=True),
    },
)
REG = Registry({"pay": pay, "fx": fx, "is_ok": is_ok, "Account": Account, "Pay": Pay})
BASE_SPEC: dict[str, Any] = {
    "name": "base",
    "context": "Account",
    "events": {"PAY": "Pay"},
    "initial": "open",
    "states": {
        "open": {
            "on": {"PAY": {"target": None, "actions": ["pay"]}, "GO": {"target": "done", "guard": "is_ok"}},
            "after": {"1h": "done"},
            "on_enter": ["pay"],
            "effects": [{"name": "fx", "fn": "fx", "retry": {"max_attempts": 3, "initial": "1s"}}],
        },
        "done": {"final": True},
    },
}
SETTINGS = settings(
    max_examples=scale(150, 3000),
    deadline=None,
    derandomize=not FULL,
    database=None if not FULL else settings.default.database,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
TRIED: dict[str, int] = {}


@pytest.fixture(autouse=True, scope="module")
def _figures() -> Any:
    yield
    record("bad-input", **dict(sorted(TRIED.items())))


def _tried(what: str) -> None:
    TRIED[what] = TRIED.get(what, 0) + 1


def _typed_only(call: Any, what: str) -> Any:
    """Run `call`; anything raised must be a StateMachineError (returned, not raised)."""
    try:
        return call()
    except StateMachineError as exc:
        return exc
    except BaseException as exc:
        pytest.fail(f"{what}: untyped {type(exc).__name__}: {str(exc)[:300]}", pytrace=False)


# Definitions ---------------------------------------------------------------------------------------
@st.composite
def mutated_specs(draw: Any) -> Any:
    """The valid BASE_SPEC with 1-4 random edits: a value replaced, a key dropped or added."""
    spec: Any = copy.deepcopy(BASE_SPEC)
    for _ in range(draw(st.integers(1, 4))):
        node = spec
        parent: Any = None
        key: Any = None
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            parent, key = node, draw(st.sampled_from(keys))
            node = node[key]
        op = draw(st.sampled_from(["replace", "drop", "add"]))
        if op == "replace" and parent is not None:
            parent[key] = draw(weird_json)
        elif op == "replace":
            spec = draw(weird_json)
        elif op == "drop" and isinstance(node, dict) and node:
            node.pop(draw(st.sampled_from(list(node))))
        elif isinstance(node, dict):
            node[draw(weird_text)] = draw(weird_json)
    return spec


@pytest.mark.timeout(scale(120, 1800))
@SETTINGS
@given(data=st.one_of(mutated_specs(), weird_json))
def test_definition_data_raises_only_definition_error(data: Any, tmp_path_factory: Any) -> None:
    _tried("definition dicts")
    got = _typed_only(lambda: Definition.from_dict(data, REG), "Definition.from_dict")
    if isinstance(got, Definition):  # accepted: it must also register and start cleanly
        engine = _scratch_engine(tmp_path_factory)
        _typed_only(lambda: engine.register(got), "register")
        _typed_only(lambda: engine.start(got.name), "start")
    else:
        assert type(got).__name__ == "DefinitionError", repr(got)


@pytest.mark.timeout(scale(120, 1800))
@SETTINGS
@given(
    states=st.one_of(weird_json, st.dictionaries(weird_text, weird_json, max_size=3)),
    initial=weird_any,
    name=weird_any,
)
def test_machine_builder_raises_only_definition_error(states: Any, initial: Any, name: Any) -> None:
    _tried("machine() calls")
    got = _typed_only(lambda: machine(name, states=states, initial=initial), "machine()")
    assert isinstance(got, Definition) or type(got).__name__ == "DefinitionError", repr(got)


BASE_YAML = yaml.safe_dump(BASE_SPEC, sort_keys=False)
DANGEROUS_YAML = [
    "!!python/object/apply:os.system ['echo pwned']",
    "!!python/name:os.system",
    "!!python/object/new:subprocess.Popen [['true']]",
    "!!python/module:os",
    "&a [*a]",
    "? [a, b]\n: c",
    "[" * 5000,
    "{a: " * 5000,
    "- " * 3000 + "x",
    "%YAML 9.9\n---\na: 1",
    "!!binary AAAA",
    "a: !!timestamp 2001-12-14t21:59:43.10-05:00",
    "\x00\x01\x02",
    "name: " + "x" * 200_000,
]


@st.composite
def definition_texts(draw: Any) -> str:
    kind = draw(st.sampled_from(["random", "mutated-yaml", "mutated-json", "dangerous"]))
    if kind == "random":
        return draw(st.text(max_size=200))
    if kind == "dangerous":
        danger = draw(st.sampled_from(DANGEROUS_YAML))
        where = draw(st.sampled_from(["whole", "value"]))
        return danger if where == "whole" else BASE_YAML.replace("open", danger, 1)
    base = BASE_YAML if kind == "mutated-yaml" else json.dumps(BASE_SPEC)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(base)))
        j = draw(st.integers(i, min(len(base), i + 20)))
        base = base[:i] + draw(st.one_of(weird_text, st.sampled_from(DANGEROUS_YAML[:4]))) + base[j:]
    return base


@pytest.mark.timeout(scale(120, 1800))
@SETTINGS
@given(text=definition_texts(), fmt=st.sampled_from(["yaml", "json"]))
def test_definition_text_raises_only_definition_error(text: str, fmt: str) -> None:
    _tried("definition texts")
    got = _typed_only(lambda: loads_definition(text, REG, fmt=fmt), "loads_definition")
    assert isinstance(got, Definition) or type(got).__name__ == "DefinitionError", repr(got)


@pytest.mark.timeout(scale(120, 1800))
@SETTINGS
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda t, b: t.encode("utf-8", "surrogatepass") + b, definition_texts(), st.binary(max_size=4)
        ),
        st.sampled_from(
            [b"\xff\xfe" + BASE_YAML.encode("utf-16-le"), b"\xef\xbb\xbf" + BASE_YAML.encode(), b""]
        ),
    ),
    suffix=st.sampled_from([".yaml", ".yml", ".json", ".txt", ""]),
)
def test_definition_files_of_any_bytes_raise_only_definition_error(
    raw: bytes, suffix: str, tmp_path_factory: Any
) -> None:
    _tried("definition files")
    path = tmp_path_factory.mktemp("defs") / f"def{suffix}"
    path.write_bytes(raw)
    got = _typed_only(lambda: load_definition(path, REG), "load_definition")
    assert isinstance(got, Definition) or type(got).__name__ == "DefinitionError", repr(got)


_SCRATCH: list[Engine] = []


def _scratch_engine(factory: Any) -> Engine:
    if not _SCRATCH:
        _SCRATCH.append(Engine(f"sqlite:///{factory.mktemp('scratch') / 'scratch.db'}"))
    return _SCRATCH[0]


# The API -------------------------------------------------------------------------------------------
class World:
    """One engine per database for the whole run: the junk accumulates, as in real life."""

    def __init__(self, url: str) -> None:
        self.engine = Engine(url, clock=ManualClock(), secret="s" * 32)
        self.engine.register(BUSY)
        self.engine.register(ACCOUNT)
        self.db = Database(url)
        self.ids = ["b1", "a1", "a2"]
        self.engine.start("busy", {"n": 0}, instance_id="b1")
        self.engine.start("account", {"n": 1}, instance_id="a1")
        self.engine.start("account", None, instance_id="a2")
        self.engine.send("a2", "WAIT")


ids = st.one_of(st.sampled_from(["b1", "a1", "a2", "missing"]), weird_any)
events = st.one_of(
    st.sampled_from(["INC", "FLIP", "MAYBE", "PAY", "CLOSE", "APPROVE", "after.1d", "done.fx"]), weird_any
)
machines = st.one_of(st.sampled_from(["busy", "account"]), weird_any)
maybe = st.one_of(st.none(), weird_any)


@st.composite
def api_calls(draw: Any) -> tuple[str, dict[str, Any]]:
    op = draw(
        st.sampled_from(
            [
                "start",
                "send",
                "send",
                "send",
                "cancel",
                "get",
                "history",
                "status",
                "instances",
                "token",
                "send_token",
                "retry",
            ]
        )
    )
    if op == "start":
        kw = {
            "machine": draw(machines),
            "context": draw(maybe),
            "instance_id": draw(maybe),
            "actor": draw(maybe),
        }
    elif op == "send":
        payload = draw(st.one_of(weird_json, st.fixed_dictionaries({"amount": weird_any}), st.none()))
        kw = {"instance_id": draw(ids), "event": draw(events), "payload": payload,
              "idempotency_key": draw(maybe), "actor": draw(maybe)}  # fmt: skip
    elif op == "cancel":
        kw = {"instance_id": draw(ids), "reason": draw(maybe), "actor": draw(maybe)}
    elif op in ("get", "history", "status", "retry"):
        kw = {"instance_id": draw(ids)}
    elif op == "instances":
        kw = {"machine": draw(maybe), "state": draw(maybe), "status": draw(maybe),
              "limit": draw(st.one_of(st.integers(-5, 2**65), weird_any)),
              "offset": draw(st.one_of(st.integers(-5, 2**65), weird_any))}  # fmt: skip
    elif op == "token":
        kw = {
            "instance_id": draw(ids),
            "event": draw(events),
            "ttl": draw(st.one_of(st.sampled_from(["1h", "7d"]), weird_any)),
        }
    else:  # send_token
        kw = {"token": draw(weird_any), "payload": draw(maybe)}
    return op, kw


MUTATING = {"start", "send", "cancel", "send_token", "retry"}


@pytest.mark.timeout(scale(150, 3600))
@SETTINGS
@given(call=api_calls())
def test_api_raises_only_typed_errors_and_changes_nothing_on_error(
    call: tuple[str, dict[str, Any]], db_url: str
) -> None:
    world = _world(db_url)
    op, kwargs = call
    _tried(f"api {op}")
    before = dump(world.db) if op in MUTATING else None
    got = _typed_only(lambda: getattr(world.engine, op)(**kwargs), f"{op}({_short(kwargs)})")
    if before is None:
        return
    after = dump(world.db)
    if isinstance(got, EventRejected) and kwargs.get("idempotency_key") is not None and before == after:
        pass  # a resent key: the recorded rejection is replayed and nothing is written
    elif isinstance(got, EventRejected):
        assert_only_rejection_recorded(before, after, f"{op}({_short(kwargs)})")
    elif isinstance(got, StateMachineError):
        assert_unchanged(before, after, f"{op}({_short(kwargs)}) -> {type(got).__name__}")
    elif op == "start":  # accepted: stored verbatim
        assert world.engine.get(got.id).id == got.id
        assert kwargs["instance_id"] is None or got.id == kwargs["instance_id"]


_WORLDS: dict[str, World] = {}


def _world(url: str) -> World:
    world = _WORLDS.get(url)
    if world is None:
        _WORLDS.clear()
        world = _WORLDS[url] = World(url)
    return world


def _short(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={reprlib.repr(v)}" for k, v in kwargs.items())


# The CLI -------------------------------------------------------------------------------------------
CLI_YAML = """\
name: cli
initial: a
states:
  a:
    on:
      GO: b
      STAY: {target: null}
  b:
    final: true
"""


@st.composite
def cli_argvs(draw: Any) -> list[str]:
    def text() -> str:  # mostly names that exist, else anything
        if draw(st.integers(0, 9)) < 6:
            return draw(st.sampled_from(["i1", "cli", "GO", "STAY", "a", "b", "new"]))
        return draw(weird_text)

    def json_text() -> str:  # mostly JSON, else anything
        if draw(st.integers(0, 9)) < 6:
            return json.dumps(draw(json_values))
        return draw(
            st.one_of(
                weird_text,
                st.sampled_from(
                    ["[" * 100_000, '{"a":' * 50_000, "1e999", "NaN", '"\\ud800"', "@/nonexistent", "@/"]
                ),
            )
        )

    cmd = draw(
        st.sampled_from(
            ["start", "send", "send", "status", "history", "instances", "cancel", "diagram", "nope"]
        )
    )
    argv = [cmd]
    if cmd == "start":
        argv += [text()]
        argv += ["--id", text()] if draw(st.booleans()) else []
        argv += ["--context", json_text()] if draw(st.booleans()) else []
    elif cmd == "send":
        argv += [text(), text()]
        argv += ["--payload", json_text()] if draw(st.booleans()) else []
        argv += ["--key", text()] if draw(st.booleans()) else []
        argv += ["--actor", text()] if draw(st.booleans()) else []
    elif cmd in ("status", "history", "cancel"):
        argv += [text()]
        argv += ["--reason", text()] if cmd == "cancel" and draw(st.booleans()) else []
    elif cmd == "instances":
        argv += ["--machine", text(), "--state", text()]
        argv += ["--limit", draw(st.sampled_from(["-1", "0", "5", "99999999999999999999999", "x"]))]
    elif cmd == "diagram":
        argv += [
            text(),
            "-o",
            draw(st.sampled_from(["out.dot", "out.mmd", "out.exe", "", "/nonexistent/x.dot"])),
        ]
    argv += ["--json"] if draw(st.booleans()) and cmd != "diagram" else []
    # Mostly the real database and definition, so that most calls get as far as the engine.
    bad_dbs = [
        "/nonexistent/dir/x.db",
        "mysql://x/y",
        "sqlite:///:memory:",
        ".",
        "postgresql://127.0.0.1:1/x",
    ]
    db = "DB" if draw(st.integers(0, 9)) < 8 else draw(st.sampled_from(bad_dbs))
    bad_defs = ["BAD", "BIN", "/nonexistent.yaml"]
    definition = "DEF" if draw(st.integers(0, 9)) < 8 else draw(st.sampled_from(bad_defs))
    return ["--db", db, "--definition", definition, *argv]


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


@pytest.mark.timeout(scale(150, 3600))
@SETTINGS
@given(argv=cli_argvs())
def test_cli_never_prints_a_traceback_and_changes_nothing_on_error(
    argv: list[str], tmp_path_factory: Any
) -> None:
    home = _cli_home(tmp_path_factory)
    files = {
        "DB": f"sqlite:///{home / 'cli.db'}",
        "DEF": str(home / "cli.yaml"),
        "BAD": str(home / "bad.yaml"),
        "BIN": str(home / "bin.yaml"),
    }
    argv = [files.get(a, a) for a in argv]
    argv = [str(home / a) if a.startswith("out.") else a for a in argv]
    _tried("cli calls")
    db = Database(files["DB"])
    before = dump(db)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(home)  # a --db given as a bare word is a file here, not in the repository
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(argv)
    except BaseException as exc:
        pytest.fail(f"cli {reprlib.repr(argv)}: raised {type(exc).__name__}: {str(exc)[:300]}", pytrace=False)
    finally:
        os.chdir(cwd)
    message = err.getvalue()
    _tried(f"cli exit {code}")
    assert code in (0, 1, 2), (argv, code, message)
    assert "Traceback" not in message, message
    assert "internal error" not in message, f"cli {argv!r:.300}: {message[:500]}"
    if code != 0:
        assert message.startswith("error: "), message
        after = dump(db)
        if ("is not allowed" in message or "refused by every guard" in message) and before != after:
            assert_only_rejection_recorded(before, after, f"cli {argv!r:.200}")
        else:
            assert_unchanged(before, after, f"cli {argv!r:.200}: {message[:200]}")
    db.close()


_CLI_HOME: list[Path] = []


def _cli_home(factory: Any) -> Path:
    if not _CLI_HOME:
        home = factory.mktemp("cli")
        (home / "cli.yaml").write_text(CLI_YAML)
        (home / "bad.yaml").write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
        (home / "bin.yaml").write_bytes(b"\xff\xfe\x00name: \xc3\x28")
        assert (
            cli_main(
                [
                    "--db",
                    str(home / "cli.db"),
                    "--definition",
                    str(home / "cli.yaml"),
                    "start",
                    "cli",
                    "--id",
                    "i1",
                ]
            )
            == 0
        )
        _CLI_HOME.append(home)
    return _CLI_HOME[0]


# The CLI as a real process: real argv bytes, real stdout/stderr encodings --------------------------
NASTY_ARGVS: list[list[bytes]] = [
    [b"send", b"\xff\xfe", b"GO"],
    [b"start", b"cli", b"--id", b"\xff"],
    [b"start", b"cli", b"--id", b"'; DROP TABLE sm_instances; --"],
    [b"status", b"'; DROP TABLE sm_instances; --"],
    [b"send", b"i1", b"STAY", b"--payload", b"[" * 50_000],
    [b"send", b"i1", b"STAY", b"--payload", json.dumps({"s": "y" * 100_000}).encode()],
    [b"send", b"i1", b"STAY", b"--payload", b'{"k": "\\ud800"}', b"--key", b"\xc3\x28"],
    [b"send", b"i1", b"\xe2\x82", b"--actor", b"\xff"],
    [b"history", b"i1", b"--json"],
    [b"instances", b"--state", b"\xff", b"--json"],
    [b"cancel", b"missing\xff", b"--reason", b"\xff"],
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv", NASTY_ARGVS, ids=[repr(a)[:40] for a in NASTY_ARGVS])
def test_cli_process_with_non_utf8_and_huge_arguments_never_prints_a_traceback(
    argv: list[bytes], tmp_path: Path
) -> None:
    (tmp_path / "cli.yaml").write_text(CLI_YAML)
    base = [
        sys.executable,
        "-m",
        "statemachines.cli",
        "--db",
        str(tmp_path / "cli.db"),
        "--definition",
        str(tmp_path / "cli.yaml"),
    ]
    first = subprocess.run(
        [*base, "start", "cli", "--id", "i1"], capture_output=True, timeout=60, check=False
    )
    assert first.returncode == 0, first.stderr
    db = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    before = dump(db)
    proc = subprocess.run(
        [*[a.encode() for a in base], *argv], capture_output=True, timeout=60, cwd=tmp_path, check=False
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode in (0, 1, 2), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr[:1000]
    if proc.returncode != 0:
        assert stderr.startswith("error: "), stderr[:500]
        after = dump(db)
        if "is not allowed" in stderr or "refused by every guard" in stderr:
            assert_only_rejection_recorded(before, after, repr(argv))
        else:
            assert_unchanged(before, after, repr(argv)[:200])
    db.close()
