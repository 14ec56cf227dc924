"""Who may call the API: `Authorization: Bearer <key>` with a scope (`read` < `write` < `admin`).

`require(scope)` is a FastAPI dependency; it answers 401 (no or unknown key: with a
`WWW-Authenticate` challenge) or 403 (a valid key without the scope) as problem+json, and gives the
route the `ApiKey`. Other ways to authenticate (the console's session cookie) are tried in
`authenticate` before the bearer header.
"""

from __future__ import annotations

from collections.abc import Callable
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


def authenticate(state: WebState, request: Request) -> ApiKey | None:
    """The key the request is made with, or None."""
    token = bearer(request)
    return state.keys.verify(token) if token is not None else None


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
