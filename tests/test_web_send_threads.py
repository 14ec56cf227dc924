"""`SendThreads` (statemachines/web/send_threads.py): the threads the short send path runs
`Engine.send` on, awaited from the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

pytest.importorskip("fastapi", reason="the web service needs the [web] extra")

from statemachines.web.send_threads import POSTGRESQL_THREADS, SendThreads, threads_for

REQUEST = contextvars.ContextVar("request", default="none")
T = TypeVar("T")


def _run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a thread of its own: the suite's browser tests leave an event loop
    running on the main thread (Playwright's sync API), where `asyncio.run` refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main).result()


def test_a_call_runs_on_another_thread_and_its_result_is_awaited() -> None:
    threads = SendThreads(1)

    async def main() -> tuple[str, int]:
        return await threads.run(lambda a, b=0: (threading.current_thread().name, a + b), 2, b=3)

    name, total = _run(main())
    assert name.startswith("statemachines-send") and total == 5


def test_an_error_of_the_call_is_raised_in_the_awaiting_coroutine() -> None:
    threads = SendThreads(1)

    def failing() -> None:
        raise KeyError("no such instance")

    async def main() -> None:
        await threads.run(failing)

    with pytest.raises(KeyError, match="no such instance"):
        _run(main())


def test_the_callers_context_variables_travel_with_the_call() -> None:
    """As with anyio's pool: an OpenTelemetry span open around the request stays the parent."""
    threads = SendThreads(2)

    async def one(value: str) -> str:
        REQUEST.set(value)
        return await threads.run(REQUEST.get)

    async def main() -> list[str]:
        return list(await asyncio.gather(*(one(f"r{i}") for i in range(8))))

    assert _run(main()) == [f"r{i}" for i in range(8)]


def test_one_thread_runs_the_calls_one_after_another_in_order() -> None:
    threads = SendThreads(1)
    seen: list[int] = []
    running = threading.Semaphore(1)

    def call(i: int) -> int:
        assert running.acquire(blocking=False), "two calls at once on one thread"
        time.sleep(0.001)
        seen.append(i)
        running.release()
        return i

    async def main() -> list[int]:
        return list(await asyncio.gather(*(threads.run(call, i) for i in range(20))))

    assert _run(main()) == list(range(20)) and seen == list(range(20))


def test_several_threads_overlap_calls_that_wait() -> None:
    threads = SendThreads(4)
    barrier = threading.Barrier(4, timeout=10)

    async def main() -> list[int]:
        return list(await asyncio.gather(*(threads.run(barrier.wait) for _ in range(4))))

    assert sorted(_run(main())) == [0, 1, 2, 3]  # all four waited at the barrier together


def test_a_call_whose_caller_was_cancelled_still_runs_to_its_end() -> None:
    threads = SendThreads(1)
    done = threading.Event()

    def slow() -> None:
        time.sleep(0.05)
        done.set()

    async def main() -> None:
        task = asyncio.ensure_future(threads.run(slow))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await threads.run(lambda: None)  # queued behind it: answered once it has finished

    _run(main())
    assert done.is_set()


def _used_and_dropped(name: str) -> list[threading.Thread]:
    """Threads of a `SendThreads` that ran a call and is no longer referenced."""
    threads = SendThreads(2, name=name)
    _run(threads.run(lambda: None))
    return [t for t in threading.enumerate() if t.name.startswith(name)]


def test_the_threads_end_when_the_send_threads_are_collected() -> None:
    started = _used_and_dropped("collected-send")
    assert len(started) == 2
    gc.collect()
    for thread in started:
        thread.join(timeout=5)
    assert not any(t.is_alive() for t in started)


def test_no_thread_starts_before_the_first_call() -> None:
    SendThreads(3, name="unused-send")
    assert not [t for t in threading.enumerate() if t.name.startswith("unused-send")]


def test_sqlite_sends_on_the_loop_and_postgresql_on_several_threads() -> None:
    assert threads_for("sqlite") == 0
    assert threads_for("postgresql") == POSTGRESQL_THREADS > 1


def test_size_zero_runs_the_call_on_the_loops_own_thread_and_starts_none() -> None:
    threads = SendThreads(0, name="inline-send")

    async def main() -> tuple[str, str]:
        return threading.current_thread().name, await threads.run(lambda: threading.current_thread().name)

    loop_thread, call_thread = _run(main())
    assert call_thread == loop_thread
    assert not [t for t in threading.enumerate() if t.name.startswith("inline-send")]


def test_size_zero_raises_the_calls_error_to_the_caller() -> None:
    threads = SendThreads(0)

    def failing() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError, match="nope"):
        _run(threads.run(failing))


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="0 \\(on the loop\\) or more"):
        SendThreads(-1)
