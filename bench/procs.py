"""Run N worker processes that start their timed work together (for concurrency and timers).

Each child is forked (the parent has already imported the engine, so a child starts in
milliseconds), does its untimed set-up (its own `Engine`, its own connection), waits on a
barrier with the parent, then works and puts a result dict on a queue. The parent notes the
system-wide CPU use over the timed window: on this 2-core machine it tells whether more
processes could have gone faster at all.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

#: fn(index, barrier, *args) -> result; must call barrier.wait() once its set-up is done.
Work = Callable[..., dict[str, Any]]


@dataclass
class Outcome:
    results: list[dict[str, Any]]
    started: float  # time.monotonic() when the barrier released (comparable across processes)
    wall: float  # until the last child reported
    cpu_busy: float  # system-wide CPU busy fraction over the window (0..1, all cores)


def _child(fn: Work, barrier: Any, queue: Any, index: int, args: tuple[Any, ...]) -> None:
    try:
        queue.put(fn(index, barrier, *args))
    except BaseException as exc:
        barrier.abort()
        queue.put({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def run(n: int, fn: Work, args_for: Callable[[int], tuple[Any, ...]], timeout: float = 600) -> Outcome:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n + 1)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(fn, barrier, queue, i, args_for(i))) for i in range(n)]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=120)
        started = time.monotonic()
        before = psutil.cpu_times()
        results = [queue.get(timeout=timeout) for _ in range(n)]
        after = psutil.cpu_times()
        wall = time.monotonic() - started
    except Exception:
        for p in procs:
            p.terminate()
        errors = []
        while not queue.empty():
            errors.append(queue.get_nowait())
        raise RuntimeError(f"worker processes failed: {errors}") from None
    finally:
        for p in procs:
            p.join(timeout=30)
    failed = [r for r in results if "error" in r]
    if failed:
        raise RuntimeError(f"{len(failed)} of {n} workers failed; first: {failed[0]['trace']}")
    return Outcome(results, started, wall, _busy(before, after))


def _busy(before: Any, after: Any) -> float:
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0) - getattr(before, "iowait", 0))
    return 1 - idle / total if total > 0 else float("nan")
