"""The tiny vocabulary of callables the statechart model test uses, and what each name means.

Both the reference interpreter (`chart_reference`) and the engine under test run these: actions
append a tag to `ctx["log"]` (`enter:<path>`, `exit:<path>`, `t<k>`) or touch the counter
`ctx["n"]` (`inc`; `crash` fails once n >= 3), guards test the counter or the payload's `flag`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from statemachines import Registry

#: Guards: name -> predicate over (counter n, event payload).
GUARDS: dict[str, Callable[[int, Mapping[str, Any]], bool]] = {
    "even": lambda n, payload: n % 2 == 0,
    "odd": lambda n, payload: n % 2 == 1,
    "small": lambda n, payload: n < 2,
    "flag": lambda n, payload: bool(payload.get("flag")),
    "noflag": lambda n, payload: not payload.get("flag"),
}


class Crash(RuntimeError):
    """Raised by the `crash` action once the counter reaches 3 (an action that fails)."""


def run_action(name: str, ctx: dict[str, Any]) -> None:
    """The meaning of an action name: `inc`, `crash`, or a tag logged as is
    (`enter:<path>`, `exit:<path>`, `t<k>` for the k-th transition)."""
    if name == "inc":
        ctx["n"] = ctx.get("n", 0) + 1
    elif name == "crash":
        if ctx.get("n", 0) >= 3:
            raise Crash("crash at n >= 3")
    else:
        ctx.setdefault("log", []).append(name)


def check_guard(name: str, ctx: Mapping[str, Any], payload: Any) -> bool:
    return GUARDS[name](ctx.get("n", 0), payload if isinstance(payload, Mapping) else {})


_CALLABLES: dict[str, Callable[..., Any]] = {}


def engine_callable(name: str) -> Callable[..., Any]:
    """The callable the engine runs for a vocabulary name (one function object per name)."""
    if name not in _CALLABLES:
        if name in GUARDS:

            def guard(ctx: Any, event: Any) -> bool:
                return check_guard(name, ctx, event.payload)

            _CALLABLES[name] = guard
        else:

            def action(ctx: Any, event: Any) -> None:
                run_action(name, ctx)

            _CALLABLES[name] = action
    return _CALLABLES[name]


def registry_for(spec: Mapping[str, Any]) -> Registry:
    """A registry holding every vocabulary callable a spec dict names."""
    names: set[str] = set()

    def walk(states: Mapping[str, Any]) -> None:
        for body in states.values():
            names.update(body.get("on_enter", []))
            names.update(body.get("on_exit", []))
            groups = [*body.get("on", {}).values(), body.get("always", [])]
            for group in groups:
                for t in group:
                    names.update(t.get("actions", []))
                    if t.get("guard"):
                        names.add(t["guard"])
            walk(body.get("states", {}))

    walk(spec["states"])
    return Registry({name: engine_callable(name) for name in sorted(names)})
