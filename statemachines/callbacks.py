"""Callback tokens against the database: issue one for the state entry an instance is in, and
apply the event a token carries (once). `tokens.py` signs and verifies; this module decides.

Functions of the `Runtime`; `Engine.token/send_token` delegate here after checking arguments.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from persistence import Conflict
from statemachines import errors, tokens
from statemachines.durations import Duration, deadline
from statemachines.records import ACTIVE, Snapshot
from statemachines.rows import DEF_VERSION, ENTERED_SEQ, MACHINE, STATE, STATUS, atomic_states, chart_of
from statemachines.runtime import Runtime
from statemachines.sends import deliver_due_first, may_send

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
    cm = rt.compiled(row[MACHINE], row[DEF_VERSION])
    chart = chart_of(row)
    if chart is None:
        allowed = cm.allowed.get(row[STATE], [])
        entered_seq = row[ENTERED_SEQ]
    else:  # bound to the entry of the state that handles the event (the first, in document order)
        configuration = atomic_states(chart["active"])
        allowed = cm.allowed_events(configuration)
        handlers = cm.handlers(configuration, event) if event in allowed else []
        entered_seq = chart["active"][handlers[0]] if handlers else 0
    if event not in allowed:
        raise errors.EventNotAllowed(instance_id, row[STATE], event, allowed)
    expires = deadline(rt.clock.now(), ttl)
    return tokens.issue(key, instance_id, event, entered_seq, expires)


def _issued_entry_holds(rt: Runtime, row: tuple[Any, ...], event: str, entered_seq: int) -> bool:
    """Whether the instance is still in the state entry a token was issued for: a flat
    instance's own entry; for a statechart, a state handling the event entered at that seq."""
    chart = chart_of(row)
    if chart is None:
        return row[ENTERED_SEQ] == entered_seq
    active = chart["active"]
    handlers = rt.compiled(row[MACHINE], row[DEF_VERSION]).handlers(atomic_states(active), event)
    return any(active[h] == entered_seq for h in handlers)


def inspect_token(rt: Runtime, secret: str | bytes | None, token: str) -> tuple[tokens.TokenClaims, str]:
    """The claims of a token that would be accepted now, and its instance's machine; raises
    `TokenInvalid` (`TokenForged` for one we did not sign) as `redeem_token` would. Spends
    nothing: for showing the person who holds it what it will do."""
    key = tokens.resolve_secret(secret)
    claims = tokens.verify(key, token, rt.clock.now())
    with rt.read() as cur:
        row = rt.store.get_instance(cur, claims.instance_id)
        if row is None:
            raise errors.TokenInvalid("its instance does not exist")
        if rt.schedule.token_used(cur, claims.nonce):
            raise errors.TokenInvalid("already used")
    if row[STATUS] != ACTIVE or not _issued_entry_holds(rt, row, claims.event, claims.entered_seq):
        raise errors.TokenInvalid("stale: the instance has left the state it was issued in")
    return claims, row[MACHINE]


def redeem_token(
    rt: Runtime, secret: str | bytes | None, token: str, payload: Any, actor: str | None
) -> Snapshot:
    """Apply the token's event. The token is spent in the transaction that applies it, and a
    guard's refusal is committed too: a refused token is spent, and the refusal audited.

    A statechart with executable content has one external queue: the instance's `<send>` events
    already due are delivered first, as for `send` (`sends.deliver_due_first`). If they moved the
    instance out of the state the token was issued in, the token is stale: the deliveries (and
    the spent token) are committed, and `TokenInvalid` is raised after the commit."""
    key = tokens.resolve_secret(secret)
    now = rt.clock.now()
    claims = tokens.verify(key, token, now)
    stale = errors.TokenInvalid("stale: the instance has left the state it was issued in")
    outcome: Snapshot | errors.StateMachineError
    try:
        with rt.transaction() as cur:
            row = rt.store.lock_instance(cur, claims.instance_id, None)
            if row is None:
                raise errors.TokenInvalid("its instance does not exist")
            rt.schedule.use_token(cur, claims.nonce, claims.instance_id, now)
            cm = rt.compiled(row[MACHINE], row[DEF_VERSION]) if row[STATUS] == ACTIVE else None
            delivered = False
            if cm is not None and may_send(cm):
                fresh = deliver_due_first(rt, cur, row, now)
                delivered, row = fresh is not row, fresh
            if row[STATUS] != ACTIVE or not _issued_entry_holds(rt, row, claims.event, claims.entered_seq):
                if not delivered:
                    raise stale  # nothing happened: the token stays unspent
                outcome = stale  # the deliveries happened before it: they stay
            else:
                assert cm is not None  # the row was active when read, so cm was compiled
                who = actor or TOKEN_ACTOR
                outcome = rt.applier.apply(cur, cm, row, claims.event, payload, None, who, now)
    except Conflict:
        raise errors.TokenInvalid("already used") from None
    if not isinstance(outcome, Snapshot):
        raise outcome
    return outcome


BASE_URL_ENV = "STATEMACHINES_BASE_URL"


def link(token: str, base_url: str | None) -> str:
    """`<base>/callbacks/<token>`: the URL the web service answers for a token. The base is the
    service's public address, given or from $STATEMACHINES_BASE_URL; there is no default (a
    guessed host in a mailed link would send approvers somewhere else)."""
    base = base_url if base_url is not None else os.environ.get(BASE_URL_ENV)
    if not base:
        raise errors.ConfigurationError(
            f"callback URLs need the service's public address: pass base_url=... or set ${BASE_URL_ENV}"
            " (e.g. https://workflows.example.com)"
        )
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise errors.ConfigurationError(f"the base URL must be http(s)://host[:port][/path], got {base!r}")
    return f"{base.rstrip('/')}/callbacks/{token}"
