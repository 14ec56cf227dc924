"""Callback tokens for human input: HMAC-signed, expiring, bound to one state entry, single-use.

A token carries (instance, event, state entry seq, expiry, nonce) and a SHA-256 HMAC over them.
The signature proves we issued it; the expiry bounds it in time; the entry seq makes it stale as
soon as the instance leaves (or re-enters) the state; the nonce, stored when the token is used,
makes it work once.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from statemachines.errors import ConfigurationError, TokenForged, TokenInvalid

PREFIX = "smt1"
SECRET_ENV = "STATEMACHINES_SECRET"
MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class TokenClaims:
    instance_id: str
    event: str
    entered_seq: int
    expires_at: datetime
    nonce: str


def resolve_secret(secret: str | bytes | None) -> bytes:
    """The signing key: given explicitly, else $STATEMACHINES_SECRET; there is no default."""
    value = secret if secret is not None else os.environ.get(SECRET_ENV)
    if not value:
        raise ConfigurationError(
            f"callback tokens need a signing key: pass Engine(secret=...) or set ${SECRET_ENV}"
        )
    key = value.encode() if isinstance(value, str) else value
    if len(key) < 16:
        raise ConfigurationError("the token signing key must be at least 16 bytes long")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, f"{PREFIX}.{body}".encode(), hashlib.sha256).digest())


def issue(key: bytes, instance_id: str, event: str, entered_seq: int, expires_at: datetime) -> str:
    claims = {
        "i": instance_id,
        "e": event,
        "s": entered_seq,
        "x": expiry_seconds(expires_at),
        "n": secrets.token_urlsafe(12),
    }
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{PREFIX}.{body}.{_sign(key, body)}"


def expiry_seconds(expires_at: datetime) -> int:
    """Whole Unix seconds, rounded up: a token lives at least its ttl, never a fraction less
    (rounded down, `ttl="500ms"` would be expired when issued)."""
    return calendar.timegm(expires_at.utctimetuple()) + (1 if expires_at.microsecond else 0)


def verify(key: bytes, token: object, now: datetime) -> TokenClaims:
    """Check signature and expiry (not staleness or reuse: those need the database)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenForged("malformed token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or not token.isascii():  # ours are base64url: ASCII
        raise TokenForged("malformed token")
    _, body, signature = parts
    if not hmac.compare_digest(_sign(key, body), signature):
        raise TokenForged("bad signature (forged or altered)")
    try:
        raw = json.loads(_unb64(body))
        claims = TokenClaims(
            str(raw["i"]), str(raw["e"]), int(raw["s"]),
            datetime.fromtimestamp(int(raw["x"]), UTC), str(raw["n"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenForged(f"malformed token body: {exc}") from None
    if now >= claims.expires_at:
        raise TokenInvalid(f"expired at {claims.expires_at.isoformat()}")
    return claims
