"""Who may call the API: `Authorization: Bearer <key>` with a scope (`read` < `write` < `admin`).

The loopback rule: while no key exists at all, requests from a loopback address are admitted as
`LOCAL` (all scopes), so `statemachines serve` works out of the box on a developer's machine;
`serve` then binds to 127.0.0.1 only, and requests from anywhere else still get 401. Creating
the first key ends it: from then on every request needs a key.

`require(scope)` is a FastAPI dependency; it answers 401 (no or unknown key: with a
`WWW-Authenticate` challenge) or 403 (a valid key without the scope) as problem+json, and gives the
route the `ApiKey`. Other ways to authenticate (the console's session cookie) are tried in
`authenticate` before the bearer header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from statemachines.web.keys import SCOPES, ApiKey
from statemachines.web.problems import Problem
from statemachines.web.state import WebState


def bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer ...` header, if there is one."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


#: Who a request is while no key exists, from loopback (the loopback rule above).
LOCAL = ApiKey("local", "local", frozenset(SCOPES), datetime(1970, 1, 1, tzinfo=UTC))


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authenticate(state: WebState, request: Request) -> ApiKey | None:
    """The key the request is made with, `LOCAL` under the loopback rule, or None."""
    token = bearer(request)
    if token is not None:
        return state.keys.verify(token)
    client = request.client.host if request.client else None
    if is_loopback(client) and not state.keys.any_cached():
        return LOCAL
    return None


def require(scope: str) -> Callable[[Request], Any]:
    """A dependency admitting requests whose key has `scope` (or a higher one)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose from {list(SCOPES)}")

    def dependency(request: Request) -> ApiKey:
        state: WebState = request.app.state.web
        key = authenticate(state, request)
        if key is None:
            raise Problem(
                401,
                "Unauthorized",
                "send an API key as 'Authorization: Bearer KEY' (make one with `statemachines keys create`)",
                headers={"WWW-Authenticate": 'Bearer realm="statemachines"'},
            )
        if not key.allows(scope):
            raise Problem(403, "Forbidden", f"key {key.id!r} lacks the {scope!r} scope")
        request.state.api_key = key
        return key

    return dependency
