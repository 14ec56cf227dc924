"""Child processes of the reliability suite: `python child.py MODE ARGS...`.

The suite starts them with `support.launch`: a multiprocessing `forkserver` that imported the engine
once forks each child, so a fresh process is working within milliseconds and a kill costs no
interpreter start-up (the test process itself is never forked). A child exits when its parent
disappears. `python child.py MODE ARGS...` runs one by hand.

Modes:
  send URL LOG IDS          crash test: send keyed BUSY events forever, logging each attempt
  work URL LOG BASE REF SPEED  crash test: run due timers and effects of TIMED until all are done
  load URL OUT WID N SEED IDS  concurrency test: N keyed BUSY events, results written as JSON
  timers URL OUT STOP       concurrency test: fire due timers until the STOP file appears
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reliability.support import BUSY, TIMED, ScaledClock, plan
from statemachines import Engine, EventRejected
from statemachines.effects import run_due_effects
from statemachines.timers import fire_due_timers

PARENT = [os.getppid()]


def orphaned() -> bool:
    return os.getppid() != PARENT[0]


class Log:
    """Append-only, unbuffered: a line written before a SIGKILL is in the file afterwards."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def __call__(self, *parts: object) -> None:
        os.write(self.fd, (" ".join(str(p) for p in parts) + "\n").encode())


def send_one(engine: Engine, log: Log, key: str, ids: list[str]) -> None:
    iid, event = plan(key, ids)
    log("A", key)
    try:
        snap = engine.send(iid, event, {"key": key}, idempotency_key=key)
    except EventRejected as exc:
        log("D", key, "rejected", type(exc).__name__)
        return
    log("D", key, "applied", snap.version, snap.state)


def mode_send(url: str, log_path: str, ids_arg: str) -> int:
    ids = ids_arg.split(",")
    log = Log(log_path)
    engine = Engine(url)
    engine.register(BUSY)
    lines = [ln.split(" ") for ln in Path(log_path).read_text().splitlines() if ln]
    life = sum(1 for ln in lines if ln[0] == "L")
    log("L", life)
    done = {ln[1] for ln in lines if ln[0] == "D"}
    # A client that crashed retries what it had in flight (with the same key) before anything new.
    for key in dict.fromkeys(ln[1] for ln in lines if ln[0] == "A" and ln[1] not in done):
        send_one(engine, log, key, ids)
    for i in range(1_000_000):
        if orphaned():
            return 0
        send_one(engine, log, f"{life}-{i}", ids)
    return 0


def mode_work(url: str, log_path: str, base: str, ref: str, speed: str) -> int:
    log = Log(log_path)
    clock = ScaledClock(datetime.fromisoformat(base), float(ref), float(speed))
    engine = Engine(url, clock=clock)
    engine.register(TIMED)
    log("L")
    while not orphaned():
        log("T")
        fired = fire_due_timers(engine.runtime, 3)
        log("t", fired)
        ran = run_due_effects(engine.runtime, 3)
        if fired == 0 and ran == 0 and not engine.instances(status="active", limit=1):
            log("FINISHED")
            return 0
        if fired == 0 and ran == 0:
            time.sleep(0.005)  # retries are due a few (scaled) seconds later
    return 0


def mode_load(url: str, out: str, wid: str, n: str, seed: str, ids_arg: str) -> int:
    ids = ids_arg.split(",")
    rng = random.Random(int(seed))
    engine = Engine(url)
    engine.register(BUSY)
    results = []
    sent: list[str] = []
    for i in range(int(n)):
        if i % 10 == 9:
            # The same key from every process at about the same time: exactly one may apply.
            key = f"shared-{i}"
        elif sent and rng.random() < 0.05:
            key = rng.choice(sent)  # a client retry of one of its own keys
        else:
            key = f"w{wid}-{i}"
            sent.append(key)
        iid, event = plan(key, ids)
        try:
            snap = engine.send(iid, event, {"key": key}, idempotency_key=key)
            results.append([key, iid, event, "applied", snap.version, snap.state, snap.context["n"]])
        except EventRejected as exc:
            results.append([key, iid, event, "rejected", type(exc).__name__])
        except Exception as exc:
            results.append([key, iid, event, "error", f"{type(exc).__name__}: {exc}"])
    Path(out).write_text(json.dumps(results))
    return 0


def mode_timers(url: str, out: str, stop: str) -> int:
    engine = Engine(url)
    engine.register(BUSY)
    fired = 0
    errors = []
    while not Path(stop).exists() and not orphaned():
        try:
            got = fire_due_timers(engine.runtime, 20)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            got = 0
        fired += got
        if not got:
            time.sleep(0.002)
    Path(out).write_text(json.dumps({"fired": fired, "errors": errors}))
    return 0


MODES = {"send": mode_send, "work": mode_work, "load": mode_load, "timers": mode_timers}


def run(mode: str, args: list[str], stderr_path: str, env: dict[str, str]) -> None:
    """The target of a forkserver child: stderr to a file, the mode, its exit status."""
    PARENT[0] = os.getppid()
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.update(env)
    try:
        code = MODES[mode](*args)
    except Exception:
        traceback.print_exc()
        code = 3
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    sys.exit(MODES[sys.argv[1]](*sys.argv[2:]))
