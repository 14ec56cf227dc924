"""Console sessions: a person logs in with an API key and gets a signed cookie, not the key.

The cookie holds only the key's id, an expiry and a random nonce, signed with HMAC-SHA256 under
the service's session secret; it is HttpOnly (no script reads it) and SameSite=Strict (no other
site's page sends it). The key itself is looked up again on every request, so revoking a key
ends its sessions at once and a changed scope applies at once.

Every form also carries a CSRF token: HMAC(secret, "csrf:" + nonce), so it is tied to one
session, needs no storage, and a page from another origin cannot know it. The login form, before
any session, is protected the same way by a short-lived nonce cookie. Every comparison of a
secret value is `hmac.compare_digest` (constant time).

The API's loopback rule holds here too (statemachines.web.auth): while no key exists at all, a
browser on the server's own machine gets a session as "local" (every scope) without logging in,
still with a cookie and CSRF tokens; creating the first key ends those sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

COOKIE = "sm_console"
LOGIN_COOKIE = "sm_console_login"
SESSION_TTL = 12 * 3600  # seconds a login lasts
LOGIN_TTL = 3600  # seconds a login form stays valid
LOCAL = "local"  # the key id and name of a session under the loopback rule
#: Each scope and the scopes it includes: admin can do what write can, write what read can.
GRANTS = {"read": {"read"}, "write": {"read", "write"}, "admin": {"read", "write", "admin"}}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def allows(scopes: frozenset[str] | set[str], need: str) -> bool:
    """Whether a key with `scopes` may do what needs scope `need` (as `ApiKey.allows`)."""
    return any(need in GRANTS.get(scope, ()) for scope in scopes)


@dataclass(frozen=True)
class Session:
    """Who is using the console: the key's id and name, its scopes, and this session's CSRF token."""

    key_id: str
    name: str
    scopes: frozenset[str]
    csrf: str

    @property
    def actor(self) -> str:
        """What history records as the actor of events sent from the console."""
        return f"console:{self.name}"

    def can(self, need: str) -> bool:
        return allows(self.scopes, need)


class Forged(Exception):
    """A cookie that is present but not one this service signed, expired, or of a revoked key."""


class Sessions:
    """Issues and checks session cookies and CSRF tokens under one secret."""

    def __init__(self, secret: bytes, keys: Any, ttl: int = SESSION_TTL) -> None:
        if len(secret) < 16:
            raise ValueError("the console session secret must be at least 16 bytes")
        self._secret = secret
        self.keys = keys
        self.ttl = ttl

    # signing -------------------------------------------------------------------------------------
    def _sign(self, purpose: str, data: bytes) -> str:
        return _b64(hmac.new(self._secret, purpose.encode() + b"\0" + data, hashlib.sha256).digest())

    def _seal(self, purpose: str, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(purpose, body.encode())}"

    def _open(self, purpose: str, value: str) -> dict[str, Any]:
        body, _, signature = value.partition(".")
        if (
            not body
            or not signature
            or not hmac.compare_digest(signature.encode(), self._sign(purpose, body.encode()).encode())
        ):
            raise Forged("the cookie's signature does not match")
        try:
            payload = json.loads(_unb64(body))
        except ValueError as exc:
            raise Forged("the cookie is malformed") from exc
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("e"), int)
            or payload["e"] < time.time()
        ):
            raise Forged("the session has expired")
        return payload

    def csrf_of(self, nonce: str) -> str:
        return self._sign("csrf", nonce.encode())

    # sessions ------------------------------------------------------------------------------------
    def issue(self, key_id: str) -> str:
        """A new session cookie value for the key `key_id`."""
        return self._seal(
            "session", {"k": key_id, "e": int(time.time()) + self.ttl, "n": secrets.token_hex(16)}
        )

    def local_allowed(self, loopback: bool) -> bool:
        """Whether the loopback rule admits a request: from loopback, and no key exists."""
        return loopback and not self.keys.any_cached()

    def read(self, cookie: str | None, loopback: bool = False) -> Session | None:
        """The session of a cookie; None when there is none; `Forged` when it is not valid."""
        if not cookie:
            return None
        payload = self._open("session", cookie)
        key_id, nonce = payload.get("k"), payload.get("n")
        if not isinstance(key_id, str) or not isinstance(nonce, str):
            raise Forged("the cookie is malformed")
        if key_id == LOCAL:
            if not self.local_allowed(loopback):
                raise Forged("API keys exist now (or this is not loopback): log in with a key")
            return Session(LOCAL, LOCAL, frozenset(GRANTS["admin"]), self.csrf_of(nonce))
        key = self._key(key_id)
        if key is None:
            raise Forged("the key of this session was revoked")
        return Session(key.id, key.name, frozenset(key.scopes), self.csrf_of(nonce))

    def _key(self, key_id: str) -> Any:
        """The live key with this id (KeyStore.list has live keys only), or None."""
        return next((k for k in self.keys.list() if k.id == key_id), None)

    def check_csrf(self, session: Session, token: Any) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), session.csrf.encode())

    # the login form ------------------------------------------------------------------------------
    def login_nonce(self) -> tuple[str, str]:
        """(cookie value, form token) for one login form."""
        nonce = secrets.token_hex(16)
        return self._seal("login", {"e": int(time.time()) + LOGIN_TTL, "n": nonce}), self.csrf_of(
            "login:" + nonce
        )

    def check_login_csrf(self, cookie: str | None, token: Any) -> bool:
        if not cookie or not isinstance(token, str):
            return False
        try:
            nonce = self._open("login", cookie).get("n")
        except Forged:
            return False
        return isinstance(nonce, str) and hmac.compare_digest(
            token.encode(), self.csrf_of("login:" + nonce).encode()
        )
