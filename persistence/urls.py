"""Database URLs, parsed without SQLAlchemy: importing it costs more than a CLI call's work.

The grammar is SQLAlchemy's (`dialect[+driver]://[user[:password]@][host][:port][/database][?query]`),
so every URL the engine accepted through `sqlalchemy.engine.make_url` means the same here; only the
parts the engine uses are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from persistence.errors import UnsupportedDatabase

_URL = re.compile(
    r"""
    (?P<name>[\w+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)
_PASSWORD = re.compile(r"^(?P<head>[\w+]+://[^:/@]*:)(?P<password>[^@]*)@")


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """The parts of a database URL the engine needs."""

    backend: str  # `sqlite`, `postgresql`...: the dialect, without its `+driver`
    database: str | None  # unquoted; for SQLite the file path (None or "" for in memory)


def parse_url(url: str) -> ParsedURL:
    """Split `url`, or raise `UnsupportedDatabase` saying it cannot be parsed."""
    match = _URL.match(url) if isinstance(url, str) else None
    if match is None:
        raise UnsupportedDatabase(f"cannot parse database URL {url!r}: expected dialect://...")
    port = match["port"]
    if port and not port.isdigit():
        raise UnsupportedDatabase(f"cannot parse database URL {url!r}: port {port!r} is not a number")
    database = match["database"]
    return ParsedURL(match["name"].split("+", 1)[0], unquote(database) if database is not None else None)


def redact(url: str) -> str:
    """The URL with its password (if any) shown as `***`, for logs."""
    return _PASSWORD.sub(r"\g<head>***@", url, count=1)
