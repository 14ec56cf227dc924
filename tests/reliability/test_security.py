"""Security: callback tokens that are forged, signed with another key, expired, stale or replayed
are refused (and change nothing); definition files cannot execute code; SQL-looking ids, names
and payloads are stored verbatim and read back equal, the tables intact.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from persistence import Database
from reliability.support import FULL, T0, assert_unchanged, dump, record, scale, sm_tables
from statemachines import (
    DefinitionError,
    Engine,
    IdempotencyKeyReused,
    ManualClock,
    TokenInvalid,
    load_definition,
    loads_definition,
    machine,
    state,
    transition,
)
from statemachines.cli import main as cli_main

SECRET = "s3cr3t-" * 5


def touch(ctx: dict[str, Any], event: Any) -> None:
    ctx["touched"] = ctx.get("touched", 0) + 1


APPROVAL = machine(
    "approval",
    initial="waiting",
    states={
        "waiting": state(
            on={
                "APPROVE": "approved",
                "REJECT": "rejected",
                "NUDGE": transition(None, action=touch),  # internal: the state entry lasts
                "RESTART": "waiting",  # external self-transition: a new entry
            },
            after={"7d": "rejected"},
        ),
        "approved": state(final=True),
        "rejected": state(final=True),
    },
)
FIGURES: dict[str, int] = {}


def _count(what: str, n: int = 1) -> None:
    FIGURES[what] = FIGURES.get(what, 0) + n


@pytest.fixture(autouse=True, scope="module")
def _figures() -> Any:
    yield
    record("security", **dict(sorted(FIGURES.items())))


@pytest.fixture
def world(db_url: str) -> Any:
    clock = ManualClock(T0)
    engine = Engine(db_url, clock=clock, secret=SECRET)
    engine.register(APPROVAL)
    db = Database(db_url)
    yield engine, clock, db
    engine.close()
    db.close()


def _refused(engine: Engine, db: Database, token: Any, why: str) -> TokenInvalid:
    before = dump(db)
    with pytest.raises(TokenInvalid) as info:
        engine.send_token(token, {"approved": True})
    assert_unchanged(before, dump(db), f"{why}: {token!r:.80}")
    _count(f"tokens refused: {why}")
    return info.value


# Tokens --------------------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, f"smt1.{body}".encode(), hashlib.sha256).digest())


def _forge(claims: dict[str, Any], key: bytes) -> str:
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"smt1.{body}.{_sign(key, body)}"


def _claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_a_valid_token_works_once(world: Any) -> None:
    engine, _, db = world
    engine.start("approval", instance_id="doc-1")
    token = engine.token("doc-1", "APPROVE", ttl="1d")
    assert engine.send_token(token).state == "approved"
    err = _refused(engine, db, token, "replayed")
    assert "already used" in str(err)


@pytest.mark.timeout(scale(120, 1800))
@settings(
    max_examples=scale(200, 3000),
    deadline=None,
    derandomize=not FULL,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_forged_and_altered_tokens_are_refused_and_change_nothing(world: Any, data: Any) -> None:
    engine, _, db = world
    if not engine.instances(limit=1):
        engine.start("approval", instance_id="doc-1")
    token = engine.token("doc-1", "APPROVE", ttl="1d")
    prefix, body, sig = token.split(".")
    claims = _claims(token)
    kind = data.draw(
        st.sampled_from(["flip", "truncate", "extend", "swap-claims", "other-key", "garbage", "parts"])
    )
    if kind == "flip":  # one character changed anywhere
        i = data.draw(st.integers(0, len(token) - 1))
        c = data.draw(st.characters(codec="ascii"))
        forged: Any = token[:i] + c + token[i + 1 :]
    elif kind == "truncate":
        forged = token[: data.draw(st.integers(0, len(token) - 1))]
    elif kind == "extend":
        forged = token + data.draw(st.text(min_size=1, max_size=8))
    elif kind == "swap-claims":  # claims rewritten (another event, instance, entry, expiry), old signature
        field = data.draw(st.sampled_from(["e", "i", "s", "x", "n"]))
        claims[field] = data.draw(
            st.one_of(st.sampled_from(["REJECT", "doc-2", 99, 2**40, "", None]), st.text(max_size=5))
        )
        new_body = _b64(json.dumps(claims).encode())
        forged = f"{prefix}.{new_body}.{sig}"
    elif kind == "other-key":  # well-formed, signed, but not with our key
        other = data.draw(st.binary(min_size=16, max_size=64))
        assume(other != SECRET.encode())
        forged = _forge(claims, other)
    elif kind == "parts":
        forged = data.draw(
            st.sampled_from(
                [
                    f"{prefix}.{body}",
                    f"{body}.{sig}",
                    f"smt2.{body}.{sig}",
                    ".".join([prefix, body, sig, sig]),
                ]
            )
        )
    else:
        forged = data.draw(
            st.one_of(
                st.text(max_size=100), st.binary(max_size=50), st.integers(), st.none(), st.just("x" * 10_000)
            )
        )
    assume(forged != token)
    _refused(engine, db, forged, "forged")
    _count("forgeries tried")


def test_an_expired_token_is_refused(world: Any) -> None:
    engine, clock, db = world
    engine.start("approval", instance_id="doc-1")
    token = engine.token("doc-1", "APPROVE", ttl="1h")
    clock.advance("1h")
    assert "expired" in str(_refused(engine, db, token, "expired"))
    assert engine.get("doc-1").state == "waiting"


def test_a_token_of_a_state_left_or_reentered_is_stale(world: Any) -> None:
    engine, _, db = world
    engine.start("approval", instance_id="doc-1")
    left = engine.token("doc-1", "APPROVE")
    engine.send("doc-1", "RESTART")  # left and entered again: a new entry
    assert "stale" in str(_refused(engine, db, left, "stale"))
    nudged = engine.token("doc-1", "APPROVE")
    engine.send("doc-1", "NUDGE")  # internal: the same entry, the token still stands
    assert engine.send_token(nudged).state == "approved"


def test_a_token_of_a_cancelled_instance_is_refused(world: Any) -> None:
    engine, _, db = world
    engine.start("approval", instance_id="doc-1")
    token = engine.token("doc-1", "APPROVE")
    engine.cancel("doc-1", reason="withdrawn")
    _refused(engine, db, token, "closed")


def test_a_token_signed_with_another_secret_is_refused(world: Any, db_url: str) -> None:
    engine, _, db = world
    engine.start("approval", instance_id="doc-1")
    other = Engine(db_url, clock=ManualClock(T0), secret="another-secret-entirely")
    other.register(APPROVAL)
    token = other.token("doc-1", "APPROVE")
    assert "signature" in str(_refused(engine, db, token, "other secret"))
    other.close()


@pytest.mark.timeout(60)
def test_a_token_raced_by_eight_threads_applies_once(world: Any, db_url: str) -> None:
    engine, _, _ = world
    engine.start("approval", instance_id="doc-1")
    token = engine.token("doc-1", "APPROVE")
    engines = []
    for _ in range(8):
        e = Engine(db_url, clock=ManualClock(T0), secret=SECRET)
        e.register(APPROVAL)
        engines.append(e)
    barrier = threading.Barrier(8)
    results: list[str] = []

    def use(e: Engine) -> None:
        barrier.wait()
        try:
            results.append(e.send_token(token).state)
        except TokenInvalid as exc:
            results.append(f"refused: {exc.reason}")
        except Exception as exc:
            results.append(f"ERROR {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=use, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results.count("approved") == 1, results
    assert all(r == "approved" or r.startswith("refused") for r in results), results
    assert [r.event for r in engine.history("doc-1")] == ["start", "APPROVE"]
    _count("token races (8 threads, applied once)")
    for e in engines:
        e.close()


# Definition files cannot execute code --------------------------------------------------------------
def _payloads(marker: Path) -> list[str]:
    m = str(marker)
    return [
        f"!!python/object/apply:os.system ['touch {m}']",
        f"!!python/object/apply:subprocess.check_call [['touch', '{m}']]",
        f"!!python/object/new:subprocess.Popen [['touch', '{m}']]",
        f'!!python/object/apply:builtins.exec [\'open("{m}", "w")\']',
        "!!python/name:os.system",
        "!!python/module:os",
        f"!!python/object:__main__.X {{a: '{m}'}}",
        f"!python/object/apply:os.system ['touch {m}']",
        f"!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {m}']",
    ]


WHERE = [
    "name: {}\ninitial: a\nstates: {{a: {{}}}}\n",
    "{}",
    "name: m\ninitial: a\nstates:\n  a:\n    on_enter: {}\n",
]


@pytest.mark.parametrize("where", range(len(WHERE)))
@pytest.mark.parametrize("n", range(9))
def test_a_yaml_definition_cannot_execute_code(tmp_path: Path, n: int, where: int) -> None:
    marker = tmp_path / "pwned"
    text = WHERE[where].format(_payloads(marker)[n])
    with pytest.raises(DefinitionError):
        loads_definition(text)
    path = tmp_path / "evil.yaml"
    path.write_text(text)
    with pytest.raises(DefinitionError):
        load_definition(path)
    assert not marker.exists(), "a YAML tag ran code"
    _count("code-execution YAML payloads refused", 2)


def test_the_cli_refuses_a_yaml_file_that_would_execute_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(
        f"name: !!python/object/apply:os.system ['touch {marker}']\ninitial: a\nstates: {{a: {{}}}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "statemachines.cli", "--db", str(tmp_path / "x.db"), "--definition", str(evil),
         "start", "m"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert not marker.exists()


def test_names_in_a_definition_are_looked_up_never_imported_or_evaluated(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"""
name: m
initial: a
context: os.system
states:
  a:
    on_enter: ["os.system", "builtins.eval", "__import__('os').system('touch {marker}')"]
    on:
      GO: {{target: a, guard: "subprocess.call"}}
    effects: [{{name: e, fn: "os.system"}}]
"""
    with pytest.raises(DefinitionError) as info:
        loads_definition(text)
    assert "not in the registry" in str(info.value)
    assert not marker.exists()


@pytest.mark.timeout(30)
def test_a_yaml_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):  # 10**9 strings once expanded
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    bomb = "\n".join(f"x-{ln}" for ln in lines)
    started = time.perf_counter()
    for where in ("on: {E: *a8}", "on_enter: *a8", "description: *a8"):
        with pytest.raises(DefinitionError):
            loads_definition(f"name: m\ninitial: s\n{bomb}\nstates: {{s: {{{where}}}}}\n")
    assert time.perf_counter() - started < 5


# SQL-looking input is data -------------------------------------------------------------------------
SQLISH = "'; DROP TABLE sm_instances; --"
SQL_NAMES = [
    SQLISH,
    "x' OR '1'='1",
    "Robert'); DROP TABLE sm_history;--",
    "%(id)s",
    "%s",
    ":id",
    "$1",
    "?",
    "\\'",
]


def test_sql_looking_ids_names_and_payloads_are_stored_verbatim(db_url: str) -> None:
    s0, s1 = SQL_NAMES[1], SQL_NAMES[2]
    m = machine(
        "m'; DELETE FROM sm_definitions; --",
        initial=s0,
        states={
            s0: state(on={ev: transition(None, action=touch) for ev in SQL_NAMES} | {"GO": s1}),
            s1: state(final=True),
        },
    )
    engine = Engine(db_url, clock=ManualClock(T0))
    engine.register(m)
    db = Database(db_url)
    tables = sm_tables(db)
    payload = {name: [name, {name: name}] for name in SQL_NAMES} | {"nul": "a\x00b", "quote": "\"'`"}
    snap = engine.start(m.name, {SQLISH: SQLISH}, instance_id=SQLISH, actor=SQL_NAMES[3])
    assert snap.id == SQLISH
    for i, ev in enumerate(SQL_NAMES):
        engine.send(SQLISH, ev, payload, idempotency_key=SQL_NAMES[i - 1] + ev, actor=ev)
    got = engine.get(SQLISH)
    assert (got.id, got.machine, got.state, got.context) == (
        SQLISH,
        m.name,
        s0,
        {SQLISH: SQLISH, "touched": 9},
    )
    hist = engine.history(SQLISH)
    assert [r.event for r in hist] == ["start", *SQL_NAMES]
    assert all(r.payload == payload and r.actor == r.event for r in hist[1:])
    assert [s.id for s in engine.instances(machine=m.name, state=s0)] == [SQLISH]
    first_key = SQL_NAMES[-1] + SQL_NAMES[0]
    replay = engine.send(SQLISH, SQL_NAMES[0], payload, idempotency_key=first_key)  # the first request
    assert (replay.version, replay.state) == (2, s0), "a SQL-looking key must replay its own receipt"
    with pytest.raises(IdempotencyKeyReused):  # the same key for another request
        engine.send(SQLISH, "GO", {}, idempotency_key=first_key)
    engine.cancel(SQLISH, reason=SQLISH)
    assert engine.history(SQLISH)[-1].reason == SQLISH
    assert engine.stored_spec(m.name).initial == s0
    assert sm_tables(db) == tables, "a table disappeared"
    _count("SQL-looking round trips", len(SQL_NAMES) + 3)
    engine.close()
    db.close()


storable = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=200
)
json_values = st.recursive(
    # JSON values: no NaN/Infinity, which payloads refuse (PayloadInvalid) because JSON cannot hold them
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text()
    ),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
    max_leaves=15,
)


@pytest.mark.timeout(scale(120, 1800))
@settings(
    max_examples=scale(150, 2000),
    deadline=None,
    derandomize=not FULL,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(iid=storable, key=storable, actor=storable, payload=json_values)
def test_any_text_id_key_actor_and_payload_round_trip_exactly(
    db_url: str, iid: str, key: str, actor: str, payload: Any
) -> None:
    engine = _engine(db_url)
    if any(s.id == iid for s in engine.instances(limit=10_000)):
        return
    engine.start("approval", instance_id=iid, actor=actor)
    snap = engine.send(iid, "NUDGE", payload, idempotency_key=key, actor=actor)
    again = engine.send(iid, "NUDGE", payload, idempotency_key=key)  # the receipt, verbatim
    assert (again.id, again.version, again.context) == (iid, snap.version, snap.context)
    record_ = engine.history(iid)[-1]
    assert (record_.payload, record_.actor) == ({} if payload is None else payload, actor)
    assert engine.get(iid).id == iid
    _count("random text round trips")


_ENGINES: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    if url not in _ENGINES:
        _ENGINES.clear()
        _ENGINES[url] = Engine(url, clock=ManualClock(T0), secret=SECRET)
        _ENGINES[url].register(APPROVAL)
    return _ENGINES[url]


def test_cli_token_free_paths_take_sql_looking_ids_verbatim(tmp_path: Path, capsys: Any) -> None:
    definition = tmp_path / "m.yaml"
    definition.write_text("name: m\ninitial: a\nstates:\n  a:\n    on:\n      GO: b\n  b:\n    final: true\n")
    base = ["--db", str(tmp_path / "cli.db"), "--definition", str(definition)]
    assert cli_main([*base, "start", "m", "--id", SQLISH, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == SQLISH
    assert cli_main([*base, "send", SQLISH, "GO", "--payload", json.dumps({"q": SQLISH}), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "b"
    assert cli_main([*base, "history", SQLISH, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[-1]["payload"] == {"q": SQLISH}
