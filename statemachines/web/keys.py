"""API keys of the HTTP service: made by `statemachines keys create`, stored as digests.

A key reads `smk_<id>_<secret>`: the id finds the row, the secret (256 random bits) is checked
against its stored SHA-256 digest with a constant-time comparison. A fast hash is enough for a
random secret of that size (there is no dictionary to try), and it keeps a request's check cheap.

Verified keys are remembered for a few seconds per process, so a busy API does not read the key
table on every request; a revocation therefore takes effect within `CACHE_SECONDS` in other
processes (immediately in the one that revoked).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from statemachines.errors import InvalidArgument

if TYPE_CHECKING:
    from statemachines.engine import Engine

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[str, ...] = ("read", "write", "admin")
PREFIX = "smk"
CACHE_SECONDS = 5.0
_KEY = re.compile(r"smk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


@dataclass(frozen=True)
class ApiKey:
    """A key as the server knows it: never its secret."""

    id: str
    name: str
    scopes: frozenset[str]
    created: datetime

    def allows(self, scope: str) -> bool:
        """`admin` implies `write` implies `read`."""
        return SCOPES.index(scope) <= max(SCOPES.index(s) for s in self.scopes)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: object) -> frozenset[str]:
    """A non-empty set of known scope names, or `InvalidArgument` naming the bad ones."""
    if isinstance(scopes, str) or not hasattr(scopes, "__iter__"):
        raise InvalidArgument(f"scopes must be a list of {list(SCOPES)}, got {scopes!r}")
    found = frozenset(scopes)  # type: ignore[arg-type]
    unknown = sorted(str(s) for s in found if s not in SCOPES)
    if unknown or not found:
        raise InvalidArgument(f"unknown or missing scopes {unknown}; choose from {list(SCOPES)}")
    return found


class KeyStore:
    """The `sm_api_keys` table of an engine's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._db = engine.db
        self._cache: dict[str, tuple[float, ApiKey]] = {}
        self._any: tuple[float, bool] = (0.0, False)
        self._lock = threading.Lock()

    def create(self, name: str, scopes: object) -> tuple[ApiKey, str]:
        """A new key; returns it with its secret, which is shown once and stored only hashed."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidArgument(f"a key name is 1-200 printable characters, got {name!r}")
        found = check_scopes(scopes)
        key_id = secrets.token_hex(6)
        secret = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        now = self.engine.clock.now()
        with self.engine.runtime.transaction() as cur:
            cur.execute(
                self._db.sql(
                    "INSERT INTO sm_api_keys (id, name, scopes, digest, created_at)"
                    " VALUES (:id, :name, :scopes, :digest, :now)"
                ),
                {
                    "id": key_id,
                    "name": name,
                    "scopes": " ".join(s for s in SCOPES if s in found),
                    "digest": _digest(secret),
                    "now": self._db.ts(now),
                },
            )
        self._any = (0.0, False)
        return ApiKey(key_id, name, found, now), secret

    def verify(self, secret: object) -> ApiKey | None:
        """The live key whose secret this is, or None (unknown, revoked, malformed)."""
        if not isinstance(secret, str):
            return None
        match = _KEY.fullmatch(secret)
        if match is None:
            return None
        digest = _digest(secret)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        with self.engine.runtime.read() as cur:
            cur.execute(
                self._db.sql(
                    "SELECT id, name, scopes, digest, created_at FROM sm_api_keys"
                    " WHERE id = :id AND revoked_at IS NULL"
                ),
                {"id": match.group(1)},
            )
            row = cur.fetchone()
        if row is None or not hmac.compare_digest(row[3], digest):
            return None
        key = self._key(row)
        with self._lock:
            self._cache[digest] = (time.monotonic() + CACHE_SECONDS, key)
        return key

    def list(self) -> list[ApiKey]:
        """The live keys, oldest first."""
        with self.engine.runtime.read() as cur:
            cur.execute(
                "SELECT id, name, scopes, digest, created_at FROM sm_api_keys"
                " WHERE revoked_at IS NULL ORDER BY created_at, id"
            )
            rows = cur.fetchall()
        return [self._key(r) for r in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when there is no live key with that id. The row stays (with
        its revocation time), so the audit of who had access survives."""
        if not isinstance(key_id, str):
            raise InvalidArgument(f"a key id is a string, got {type(key_id).__name__}")
        with self.engine.runtime.transaction() as cur:
            cur.execute(
                self._db.sql(
                    "UPDATE sm_api_keys SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL"
                ),
                {"id": key_id, "now": self._db.ts(self.engine.clock.now())},
            )
            changed = cur.rowcount
        with self._lock:
            self._cache = {d: v for d, v in self._cache.items() if v[1].id != key_id}
            self._any = (0.0, False)
        return changed > 0

    def any(self) -> bool:
        """Whether any live key exists (without one, the server binds to loopback only)."""
        with self.engine.runtime.read() as cur:
            cur.execute("SELECT 1 FROM sm_api_keys WHERE revoked_at IS NULL LIMIT 1")
            return cur.fetchone() is not None

    def any_cached(self) -> bool:
        """`any()`, remembered for `CACHE_SECONDS` (asked on every request of the loopback rule)."""
        until, value = self._any
        if until > time.monotonic():
            return value
        value = self.any()
        self._any = (time.monotonic() + CACHE_SECONDS, value)
        return value

    def _key(self, row: tuple) -> ApiKey:  # type: ignore[type-arg]
        return ApiKey(row[0], row[1], frozenset(row[2].split()), self._db.from_ts(row[4]))
