"""`SendThreads`: a few threads that run `Engine.send` for the event loop, with a cheap hop.

Why: `Engine.send` blocks on the database; against PostgreSQL, where each commit waits on the
server, a loop that waited with it would serve nothing else meanwhile, so the short send path
(`web/fast_send.py`) runs it on threads, and the hop to a thread and back was the largest cost of
the path outside `send` itself. Measured per call on this 2-core machine (a ~100 µs function,
uvloop, 8 calls in flight as in a server process under load; two runs, machine load 3 and 9): anyio's
`run_in_threadpool` added 75-150 µs of CPU, a one-thread `ThreadPoolExecutor` through
`loop.run_in_executor` 17-75 µs, this 1-30 µs. Two reasons:

- **Few threads.** anyio's pool grows to 40 threads; with 8 requests in flight, 8 threads take
  turns at the GIL (each switch is a futex wake and a context switch); PostgreSQL's commits wait
  on the server and release the GIL, so a handful of threads is what lets them overlap
  (`threads_for`).
- **Little machinery.** One `queue.SimpleQueue` (C) in, `loop.call_soon_threadsafe` out: no
  capacity limiter, cancel scope or `concurrent.futures.Future` per call. Under load a thread
  takes the next call without sleeping, and the loop's wake-ups coalesce.

On SQLite there are no threads at all (`threads_for` gives 0): the call runs on the event loop's
own thread. A database file takes one write transaction at a time, so a thread of its own gives a
process no overlap, only the hop: two GIL hand-offs and a wake-up per call, and a transaction
that holds the file's write lock while its thread waits for the GIL from a busy loop. Measured
with bench/http.py (2 processes, 16 clients, alternated runs): 4,358-4,502 events/s and
302-311 µs of server CPU per request inline, against 3,327-3,568 and 366-380 on one thread
(bench/RESULTS.md section 23). The price: while another process holds the write lock, this
process's loop waits with it (normally one short transaction; at most the busy timeout, after
which the request is answered 503), and an entry or exit action runs on the loop, which is one
more reason for actions to be quick and leave I/O to effects.

The caller's context variables travel with the call (as with anyio), so an OpenTelemetry span
open around the request is still the parent of the engine's `send` span. A call runs to its
end once queued: cancelling the awaiting task leaves the answer unread, never half a `send`.
The threads are daemons started on first use, and stop when the `SendThreads` is collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Threads for a PostgreSQL engine: commits of one process overlap while each waits on the server.
#: `bench/RESULTS.md` section 20 compared 2, 4, 8 and 16 and 8 carried the most events per second;
#: section 23, with connections spread over the processes, found 4 within 2% of 8's throughput
#: with a p99 of 16-18 ms against 20 (fewer threads to take turns at the GIL), and 2 ~10% slower.
POSTGRESQL_THREADS = 4

_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context, Callable[[], Any]]


def threads_for(dialect: str) -> int:
    """How many threads a process needs for its sends: none for SQLite (a database file takes one
    write transaction at a time; the loop's own thread runs them), a few for servers."""
    return 0 if dialect == "sqlite" else POSTGRESQL_THREADS


class SendThreads:
    """Run blocking calls on `size` threads and await them from an event loop (size 0: on the
    loop's own thread, blocking it for the call)."""

    def __init__(self, size: int, name: str = "statemachines-send") -> None:
        if size < 0:
            raise ValueError(f"size must be 0 (on the loop) or more, got {size}")
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # Collected (the app dropped): wake each thread with the stop mark. The threads hold the
        # queue, never this object, so they do not keep it alive.
        weakref.finalize(self, _stop, self._queue, self._threads)

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`func(*args, **kwargs)` on one of the threads, in a copy of the caller's context."""
        if self.size == 0:
            return func(*args, **kwargs)
        if len(self._threads) < self.size:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        call = functools.partial(func, *args, **kwargs) if args or kwargs else func
        self._queue.put((loop, future, contextvars.copy_context(), call))
        return await future

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.size:
                thread = threading.Thread(
                    target=_work, args=(self._queue,), name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)


def _work(calls: queue.SimpleQueue[_Call | None]) -> None:
    """A thread's loop: run each call, hand its result or error back to the caller's loop."""
    while (item := calls.get()) is not None:
        loop, future, context, call = item
        try:
            result = context.run(call)
        except BaseException as exc:  # every outcome goes back to the caller
            _settle_soon(loop, future, None, exc)
        else:
            _settle_soon(loop, future, result, None)
        del item, future, call, context  # not held while waiting for the next call


def _settle_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, exc: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
        loop.call_soon_threadsafe(_settle, future, result, exc)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _stop(calls: queue.SimpleQueue[_Call | None], threads: list[threading.Thread]) -> None:
    for _ in threads:
        calls.put(None)
