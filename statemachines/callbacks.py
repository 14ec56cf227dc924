"""Callback tokens against the database: issue one for the state entry an instance is in, and
apply the event a token carries (once). `tokens.py` signs and verifies; this module decides.

Functions of the `Runtime`; `Engine.token/send_token` delegate here after checking arguments.
"""

from __future__ import annotations

from typing import Any

from persistence import Conflict
from statemachines import errors, tokens
from statemachines.durations import Duration, deadline
from statemachines.records import ACTIVE, Snapshot
from statemachines.rows import ENTERED_SEQ, MACHINE, STATE, STATUS
from statemachines.runtime import Runtime

TOKEN_ACTOR = "token"


def issue_token(rt: Runtime, secret: str | bytes | None, instance_id: str, event: str, ttl: Duration) -> str:
    """A signed token for `event`, bound to the instance's current state entry."""
    key = tokens.resolve_secret(secret)
    with rt.read() as cur:  # one read: the entry seq comes with the state
        row = rt.store.get_instance(cur, instance_id)
    if row is None:
        raise errors.InstanceNotFound(instance_id)
    if row[STATUS] != ACTIVE:
        raise errors.InstanceClosed(instance_id, row[STATUS], row[STATE])
    allowed = rt.compiled(row[MACHINE]).allowed.get(row[STATE], [])
    if event not in allowed:
        raise errors.EventNotAllowed(instance_id, row[STATE], event, allowed)
    expires = deadline(rt.clock.now(), ttl)
    return tokens.issue(key, instance_id, event, row[ENTERED_SEQ], expires)


def redeem_token(
    rt: Runtime, secret: str | bytes | None, token: str, payload: Any, actor: str | None
) -> Snapshot:
    """Apply the token's event. The token is spent in the transaction that applies it, and a
    guard's refusal is committed too: a refused token is spent, and the refusal audited."""
    key = tokens.resolve_secret(secret)
    now = rt.clock.now()
    claims = tokens.verify(key, token, now)
    try:
        with rt.transaction() as cur:
            row = rt.store.lock_instance(cur, claims.instance_id, None)
            if row is None:
                raise errors.TokenInvalid("its instance does not exist")
            rt.schedule.use_token(cur, claims.nonce, claims.instance_id, now)
            if row[STATUS] != ACTIVE or row[ENTERED_SEQ] != claims.entered_seq:
                raise errors.TokenInvalid("stale: the instance has left the state it was issued in")
            cm = rt.compiled(row[MACHINE])
            outcome = rt.applier.apply(cur, cm, row, claims.event, payload, None, actor or TOKEN_ACTOR, now)
    except Conflict:
        raise errors.TokenInvalid("already used") from None
    if isinstance(outcome, errors.EventRejected):
        raise outcome
    return outcome
