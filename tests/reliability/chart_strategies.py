"""Hypothesis strategies: random valid statecharts (as spec dicts) and random event sequences.

Machines are valid by construction: compound states get an `initial`, parallel states 2-3 regions
(no final region), history pseudo-states a default inside their parent (a child when shallow, any
descendant when deep), at most one unguarded transition per event and state and always last (the
shadowing check), eventless transitions guarded (an unguarded one only with a target), and every
state made reachable by adding a transition to it. State names repeat across branches (`a`..`d`),
so targets are written as full paths or, when it resolves to the intended state, as a short name.

Every state logs its entry and exit (`enter:<path>`, `exit:<path>`), every transition its own tag
(`t<k>`), some add `inc` (the counter the guards read) and, rarely, `crash` (fails once n >= 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from reliability.chart_vocabulary import GUARDS

EVENTS = ("E0", "E1", "E2", "E3")
NAMES = ("a", "b", "c", "d")
GUARD_NAMES = sorted(GUARDS)
KINDS_TOP = ["compound", "compound", "parallel", "parallel", "atomic", "final"]
KINDS_BELOW = ["atomic", "atomic", "atomic", "compound", "parallel", "final", "final"]


@dataclass(eq=False)
class GenState:
    name: str
    parent: GenState | None
    kind: str  # atomic, compound, parallel, final, history (the root: "root")
    children: list[GenState] = field(default_factory=list)
    initial: str | None = None
    default: GenState | None = None  # history
    deep: bool = False
    on: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    always: list[dict[str, Any]] = field(default_factory=list)
    on_enter: list[str] = field(default_factory=list)
    on_exit: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        if self.parent is None or self.parent.parent is None:
            return self.name
        return f"{self.parent.path}.{self.name}"

    def walk(self) -> list[GenState]:
        out = []
        for c in self.children:
            out.append(c)
            out.extend(c.walk())
        return out

    def ancestors(self) -> list[GenState]:
        out, p = [], self.parent
        while p is not None and p.parent is not None:
            out.append(p)
            p = p.parent
        return out

    @property
    def can_leave(self) -> bool:
        """May declare transitions (not final, not a history pseudo-state)."""
        return self.kind in ("atomic", "compound", "parallel")


class _Gen:
    def __init__(self, draw: Any, max_depth: int) -> None:
        self.draw = draw
        self.max_depth = max_depth
        self.tags = 0
        #: (state, final sibling): a transition added between them, so compound states finish.
        self.shortcuts: list[tuple[GenState, GenState]] = []

    def children(self, parent: GenState, depth: int, *, regions: bool = False) -> None:
        d = self.draw
        count = d(st.integers(2, 3)) if regions or parent.kind == "root" else d(st.integers(1, 3))
        names = d(st.permutations(NAMES))[:count]
        leaf_only = depth >= self.max_depth
        # Nesting is likelier near the top, so most machines have compound and parallel states.
        kinds = KINDS_TOP if depth == 1 else KINDS_BELOW
        for name in names:
            if regions:
                kind = "atomic" if leaf_only else d(st.sampled_from(["compound", "compound", "atomic"]))
            elif leaf_only:
                kind = d(st.sampled_from(["atomic", "atomic", "final"]))
            else:
                kind = d(st.sampled_from(kinds))
            child = GenState(name, parent, kind)
            parent.children.append(child)
            if kind == "compound":
                self.children(child, depth + 1)
            elif kind == "parallel":
                self.children(child, depth + 1, regions=True)
        region = parent.kind == "compound" and parent.parent is not None and parent.parent.kind == "parallel"
        if region and not any(c.kind == "final" for c in parent.children) and d(st.booleans()):
            # A region that can finish, so parallel states join (done.state.<parallel>) now and then.
            parent.children.append(GenState("f", parent, "final"))
        if parent.kind == "compound":
            finals = [c for c in parent.children if c.kind == "final"]
            busy = [c for c in parent.children if c.kind != "final"]
            if finals and busy:
                self.shortcuts.append((d(st.sampled_from(busy)), d(st.sampled_from(finals))))
        if parent.kind in ("root", "compound"):
            candidates = [c for c in parent.children if parent.kind != "root" or c.kind != "final"]
            if not candidates:  # the machine must not be finished before it starts
                parent.children[0].kind = "atomic"
                candidates = [parent.children[0]]
            parent.initial = d(st.sampled_from(candidates)).name
        if parent.kind in ("compound", "parallel"):
            for name, deep in (("h", False), ("hd", True)):
                if d(st.integers(0, 3)) == 0:
                    inside = [s for s in parent.walk() if s.kind != "history"]
                    pool = inside if deep else [c for c in parent.children if c.kind != "history"]
                    default = d(st.sampled_from(pool))
                    parent.children.append(GenState(name, parent, "history", default=default, deep=deep))

    def tag(self) -> str:
        self.tags += 1
        return f"t{self.tags}"

    def transition(self, target: GenState | None, *, guard: bool | None = None) -> dict[str, Any]:
        d = self.draw
        if guard is None:
            guard = d(st.booleans())
        actions = [self.tag()]
        if d(st.integers(0, 2)) == 0:
            actions.append("inc")
        if d(st.integers(0, 15)) == 0:
            actions.append("crash")
        t: dict[str, Any] = {"target": target, "actions": actions}
        if guard:
            t["guard"] = d(st.sampled_from(GUARD_NAMES))
        if target is not None and d(st.integers(0, 2)) == 0:
            t["type"] = "internal"
        return t


def _add(group: list[dict[str, Any]], t: dict[str, Any], gen: _Gen) -> None:
    """Keep the group valid: one unguarded transition at most, and last."""
    if "guard" not in t and group and "guard" not in group[-1]:
        t["guard"] = gen.draw(st.sampled_from(GUARD_NAMES))
    if "guard" in t and group and "guard" not in group[-1]:
        group.insert(len(group) - 1, t)
    else:
        group.append(t)


def _reachable(root: GenState) -> set[GenState]:
    """The states the definition checks consider reachable (guards ignored)."""
    seen: set[GenState] = set()
    todo = [root]

    def reach(s: GenState | None) -> None:
        while s is not None and s.parent is not None and s not in seen:
            seen.add(s)
            todo.append(s)
            s = s.parent

    while todo:
        s = todo.pop()
        if s.initial is not None:
            reach(next(c for c in s.children if c.name == s.initial))
        reach(s.default)
        if s.kind == "parallel":
            for c in s.children:
                if c.kind != "history":
                    reach(c)
        for t in [*(t for group in s.on.values() for t in group), *s.always]:
            reach(t["target"])
    return seen


def _resolves(source: GenState, text: str, everything: list[GenState]) -> GenState | None:
    """docs/statecharts.md's resolution, for choosing short names that mean the intended state."""
    for s in everything:
        if s.path == text:
            return s
    anc = source.parent
    while anc is not None:
        for c in anc.children:
            if c.name == text:
                return c
        anc = anc.parent
    named = [s for s in everything if s.name == text]
    return named[0] if len(named) == 1 else None


def _spec_of(s: GenState, source_states: list[GenState], short: dict[int, bool]) -> dict[str, Any]:
    def text(src: GenState, t: dict[str, Any]) -> dict[str, Any]:
        out = dict(t)
        target = t["target"]
        if target is not None:
            use_short = short.get(id(t), False) and _resolves(src, target.name, source_states) is target
            out["target"] = target.name if use_short else target.path
        return out

    if s.kind == "history":
        assert s.default is not None
        default = s.default.path
        return {"history": {"default": default, "deep": s.deep}}
    body: dict[str, Any] = {"on_enter": s.on_enter, "on_exit": s.on_exit}
    if s.kind == "final":
        body["final"] = True
    if s.on:
        body["on"] = {ev: [text(s, t) for t in group] for ev, group in s.on.items()}
    if s.always:
        body["always"] = [text(s, t) for t in s.always]
    if s.children:
        body["states"] = {c.name: _spec_of(c, source_states, short) for c in s.children}
    if s.initial is not None:
        body["initial"] = s.initial
    if s.kind == "parallel":
        body["type"] = "parallel"
    return body


@st.composite
def chart_specs(draw: Any) -> dict[str, Any]:
    """A valid nested/parallel machine as a spec dict (the `MachineSpec` shape), 2-4 levels deep."""
    gen = _Gen(draw, draw(st.sampled_from([2, 3, 3, 4])))
    root = GenState("", None, "root")
    gen.children(root, 1)
    everything = root.walk()
    states = [s for s in everything if s.kind != "history"]
    sources = [s for s in everything if s.can_leave]
    short: dict[int, bool] = {}

    def target() -> GenState | None:
        return draw(st.one_of(st.none(), st.sampled_from(everything)))

    for s in sources:
        s.on_enter = [f"enter:{s.path}"] + (["inc"] if draw(st.integers(0, 3)) == 0 else [])
        for _ in range(draw(st.integers(0, 2))):
            t = gen.transition(target())
            short[id(t)] = draw(st.booleans())
            _add(s.on.setdefault(draw(st.sampled_from(EVENTS)), []), t, gen)
        if draw(st.integers(0, 4)) == 0:
            t = gen.transition(target(), guard=True)
            if t["target"] is not None and draw(st.integers(0, 3)) == 0:
                del t["guard"]
            _add(s.always, t, gen)
        s.on_exit = [f"exit:{s.path}"]
    for s in states:
        if s.kind == "final":
            s.on_enter = [f"enter:{s.path}"]
            s.on_exit = [f"exit:{s.path}"]
    for source, final in gen.shortcuts:
        _add(source.on.setdefault(draw(st.sampled_from(EVENTS)), []), gen.transition(final), gen)
    for s in states:  # joins: done.state.X handled on X or one of its ancestors
        if s.kind in ("compound", "parallel") and draw(st.integers(0, 1)) == 0:
            source = draw(st.sampled_from([s, *s.ancestors()]))
            t = gen.transition(target())
            _add(source.on.setdefault(f"done.state.{s.path}", []), t, gen)
    while True:  # every state reachable: add a transition to the first one that is not
        seen = _reachable(root)
        missing = [s for s in states if s not in seen]
        if not missing:
            break
        from_ = draw(st.sampled_from([s for s in sources if s in seen]))
        t = gen.transition(missing[0], guard=False)
        _add(from_.on.setdefault(draw(st.sampled_from(EVENTS)), []), t, gen)
    assert root.initial is not None
    return {
        "name": "generated_chart",
        "initial": root.initial,
        "states": {c.name: _spec_of(c, everything, short) for c in root.children},
    }


def event_sequences(max_size: int = 10) -> st.SearchStrategy[list[tuple[str, dict[str, Any]]]]:
    """External events with a payload flag the guards `flag`/`noflag` read."""
    one = st.tuples(st.sampled_from(EVENTS), st.fixed_dictionaries({"flag": st.booleans()}))
    return st.lists(one, min_size=3, max_size=max_size)
