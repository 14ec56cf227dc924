"""Event descriptors (W3C SCXML 3.12.1): which declared `on` keys an event name matches.

A key of a statechart's `on` is a space-separated list of descriptors. A descriptor matches an
event whose name is the descriptor itself or starts with it followed by `.` (token prefixes:
`error` matches `error.send.failed`, `a.b` matches `a.b.c` but not `a.bc`); `*` matches every
event; a trailing `.*` is dropped (`error.*` is `error`).

The tree indexes each transition under every descriptor of its key (and under the key itself,
so an event named exactly `a b` still matches the key `a b`) in `Node.by_event`, so looking
an event up costs one dict probe per token prefix of its name that some key declares, plus one
for `*` when some key uses it: for a name without `.` in a chart without `*`, one probe, as
before descriptors existed. When several descriptors match, their transitions are merged back
into document order (`ChartTransition.index`).
"""

from __future__ import annotations

from collections.abc import Iterable

WILDCARD = "*"
DONE_STATE = "done.state."
#: Events the engine raises for executable content (SCXML 5.10.1), and `done.state.<path>`.
PLATFORM_EVENTS = ("error.execution", "error.communication", "done.state")


def platform_descriptor(descriptor: str) -> bool:
    """`*`, or a descriptor matching an event the engine raises: `error`, `error.execution`,
    `done`, `done.state` (a `done.state.<path>` is checked with the state it names)."""
    return descriptor == WILDCARD or any(matches(descriptor, e) for e in PLATFORM_EVENTS)


def descriptors(key: str) -> tuple[str, ...]:
    """The descriptors of one `on` key, normalised (`error.*` -> `error`), duplicates dropped."""
    out: dict[str, None] = {}
    for token in key.split():
        while token.endswith(".*"):
            token = token[:-2]
        if token:
            out[token] = None
    return tuple(out)


def matches(descriptor: str, event: str) -> bool:
    """SCXML's nameMatch for one (normalised) descriptor (with `name_prefixes`' rule for
    `done.state.<path>`)."""
    return descriptor == WILDCARD or descriptor in name_prefixes(event)


def name_prefixes(event: str) -> list[str]:
    """`a.b.c` -> [`a.b.c`, `a.b`, `a`]: every descriptor (other than `*`) that matches `event`.

    The path in `done.state.<path>` is one token: our state paths are dotted, and
    `done.state.work` (the parallel state finished) must not match `done.state.work.a` (its region
    `a` finished). Such an event matches itself, `done.state` and `done`."""
    if event.startswith(DONE_STATE):
        return [event, "done.state", "done"]
    out = [event]
    cut = event.rfind(".")
    while cut > 0:
        event = event[:cut]
        out.append(event)
        cut = event.rfind(".")
    return out


class Lookup:
    """Which declared descriptors match an event name: built once per tree from every key."""

    __slots__ = ("cache", "declared", "wildcard")

    #: Event names remembered (names come from callers: the memory must not grow without bound).
    CACHE_SIZE = 1024

    def __init__(self, declared: Iterable[str]) -> None:
        names = frozenset(declared)
        self.declared = names - {WILDCARD}
        self.wildcard = WILDCARD in names
        self.cache: dict[str, tuple[str, ...]] = {}

    def keys(self, event: str) -> tuple[str, ...]:
        """The declared descriptors matching `event`, longest first (`*` last)."""
        found = self.cache.get(event)
        if found is None:
            if "." in event:
                hit = [p for p in name_prefixes(event) if p in self.declared]
            else:
                hit = [event] if event in self.declared else []
            if self.wildcard:
                hit.append(WILDCARD)
            found = tuple(hit)
            if len(self.cache) >= self.CACHE_SIZE:
                self.cache.clear()
            self.cache[event] = found
        return found


def merged(groups: list[tuple[object, ...] | list[object]]) -> list[object]:
    """Transitions found under several descriptors, once each, back in document order."""
    seen: dict[object, None] = {}
    for group in groups:
        seen.update(dict.fromkeys(group))
    return sorted(seen, key=lambda t: t.index)  # type: ignore[attr-defined]
