"""`statemachines worker`: the production loop around timers and effects.

Claims work in batches, sleeps with a growing back-off while idle, stops gracefully on
SIGTERM/SIGINT (the effect in flight finishes and is recorded; claimed but unstarted effects are
given back), survives database restarts (the failed round is retried after a pause), and logs
one line per action: text, or JSON with `--log-format json` (statemachines.logs). Run as many
as you like side by side: claims never overlap.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from persistence.urls import redact
from statemachines.effects import run_due_effects
from statemachines.errors import InvalidArgument, StorageUnavailable
from statemachines.logs import configure_logging
from statemachines.sends import deliver_due_sends
from statemachines.timers import fire_due_timers
from statemachines.versions import UnservedWatch

if TYPE_CHECKING:
    from statemachines.engine import Engine

log = logging.getLogger("statemachines.worker")
SQLITE_BREATH = 0.005  # seconds between busy rounds on SQLite


class Worker:
    def __init__(self, engine: Engine, *, batch: int = 100, idle: float = 0.5, max_idle: float = 5.0) -> None:
        _check_settings(batch, idle, max_idle)
        self.engine = engine
        self.batch = batch
        self.idle = idle
        self.max_idle = max_idle
        self._stop = threading.Event()
        self.processed = 0
        # Instances pinned to a version not registered here are never claimed: say so, once.
        self.unserved = UnservedWatch(engine.runtime)

    def stop(self, *_: Any) -> None:
        if not self._stop.is_set():
            log.info("stopping after the current item")
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run_once(self) -> int:
        """One round: due timers, due sends (SCXML `<send>`), then due effects. Returns the number
        of items handled."""
        self.unserved.check()
        done = fire_due_timers(self.engine.runtime, self.batch)
        done += deliver_due_sends(self.engine.runtime, self.batch)
        if not self.stopping:
            done += run_due_effects(self.engine.runtime, self.batch, lambda: self.stopping)
        self.processed += done
        return done

    def run(self, *, install_signals: bool = True, max_rounds: int | None = None) -> int:
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        log.info("worker started on %s", _safe_url(self.engine.url))
        pause = self.idle
        rounds = 0
        while not self.stopping and (max_rounds is None or rounds < max_rounds):
            rounds += 1
            try:
                done = self.run_once()
            except StorageUnavailable as exc:
                log.warning("database unavailable (%s); retrying in %.1fs", exc, self.max_idle)
                self._stop.wait(self.max_idle)
                continue
            except Exception:
                # Rows are handled one by one (a bad row fails alone), so this is a bug or a
                # permanent database error: log it and go on after a pause; never die, or the
                # timers and effects of every machine would stop.
                log.exception("round failed; retrying in %.1fs", self.max_idle)
                self._stop.wait(self.max_idle)
                continue
            if done:
                pause = self.idle
                if self.engine.db.dialect == "sqlite":
                    # SQLite's busy handler polls: a worker that re-takes the write lock at once
                    # would starve `send` from other processes during a large backlog.
                    self._stop.wait(SQLITE_BREATH)
            else:
                self._stop.wait(pause)
                pause = min(pause * 2, self.max_idle)
        log.info("worker stopped after %d items", self.processed)
        return self.processed


def _check_settings(batch: Any, idle: Any, max_idle: Any) -> None:
    """Typed refusal of settings that would crash or spin: a NaN pause makes `wait` return at once."""
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 2**31:
        raise InvalidArgument(f"batch must be an integer from 1 to {2**31}, got {batch!r}")
    for name, value in (("idle", idle), ("max_idle", max_idle)):
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise InvalidArgument(f"{name} must be a finite number of seconds > 0, got {value!r}")
    if max_idle < idle:
        raise InvalidArgument(f"max_idle ({max_idle!r}) must be >= idle ({idle!r})")


def _safe_url(url: str) -> str:
    return redact(url)


def main(engine: Engine, args: argparse.Namespace, machines: Sequence[str] = ()) -> int:
    """Entry point used by the CLI; returns the number of items processed.

    `machines` are the definitions loaded for it: only their timers and effects are claimed, so
    the worker says which at start.
    """
    configure_logging(getattr(args, "log_format", "text"))
    log.info("serving machines: %s", ", ".join(machines) if machines else "none")
    batch = getattr(args, "batch", 100)
    if getattr(args, "once", False):
        count = engine.run_due(batch=batch)
        log.info("ran %d due items", count)
        return count
    idle = getattr(args, "idle", 0.5)
    worker = Worker(
        engine, batch=batch, idle=idle, max_idle=getattr(args, "max_idle", None) or max(5.0, idle)
    )
    return worker.run()
