"""Every effect of an instance with its attempts and outcome: `engine.effects(id)` and the
`statemachines effects ID` command. The history holds each effect's final outcome; this adds
what the history leaves out on purpose: each attempt, its duration and error, and the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from persistence import saga_store
from statemachines import errors
from statemachines.durable import EffectAttempt
from statemachines.runtime import Runtime


@dataclass(frozen=True, slots=True)
class EffectReport:
    """One effect (or compensation) of an instance with its attempts: `engine.effects(id)`."""

    name: str
    state: str
    entered_seq: int
    key: str
    status: str  # pending, running, waiting, done, failed, held, cancelled
    attempts: list[EffectAttempt]
    last_error: str | None
    result: Any  # the parsed JSON result of a succeeded effect, else None
    compensates: str | None  # a compensation: the name of the effect it undoes
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "state": self.state, "entered_seq": self.entered_seq, "key": self.key,
            "status": self.status, "last_error": self.last_error, "result": self.result,
            "compensates": self.compensates, "updated_at": self.updated_at.isoformat(),
            "attempts": [
                {"attempt": a.attempt, "started_at": a.started_at.isoformat(),
                 "duration_ms": a.duration_ms, "ok": a.ok, "error": a.error}
                for a in self.attempts
            ],
        }  # fmt: skip


def effects(rt: Runtime, instance_id: str) -> list[EffectReport]:
    """Every effect of the instance, oldest first, with each attempt's start, duration and error
    and the final result: what `statemachines effects ID` prints."""
    store = saga_store.for_database(rt.db)
    with rt.read() as cur:
        if rt.store.get_instance(cur, instance_id) is None:
            raise errors.InstanceNotFound(instance_id)
        rows = store.effects(cur, instance_id)
        attempt_rows = store.attempts(cur, instance_id)
    names = {r[0]: r[1] for r in rows}
    by_effect: dict[int, list[EffectAttempt]] = {}
    for eid, attempt, at, ms, ok, error in attempt_rows:
        by_effect.setdefault(eid, []).append(
            EffectAttempt(names.get(eid, "?"), attempt, rt.db.from_ts(at), float(ms), bool(ok), error)
        )
    out = []
    for eid, name, state, seq, key, status, _attempt, error, result, undone, _done, updated in rows:
        value = json.loads(result) if result is not None and status == "done" else None
        original = names.get(undone) if undone is not None else None
        attempts = by_effect.get(eid, [])
        report = EffectReport(
            name, state, seq, key, status, attempts, error, value, original, rt.db.from_ts(updated)
        )
        out.append(report)
    return out
