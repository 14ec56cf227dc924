"""Where the command line finds definitions: `--app module[:attr]` and its registry."""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from statemachines.definition import Definition
from statemachines.errors import StateMachineError
from statemachines.registry import Registry


class UsageError(Exception):
    """A mistake in the command line itself: exit status 2."""


class CommandError(Exception):
    """The command could not be carried out: exit status 1."""


def error_lines(exc: BaseException) -> list[str]:
    """The message's lines without blanks or `- ` bullets: a headline, then one problem per line."""
    lines = [ln.strip().removeprefix("- ").strip() for ln in str(exc).splitlines()]
    return [ln for ln in lines if ln] or [type(exc).__name__]


def one_line(exc: BaseException) -> str:
    """An error message on one line: a multi-line problem list becomes `a; b; c`."""
    head, *rest = error_lines(exc)
    if not rest:
        return head
    return f"{head}{' ' if head.endswith(':') else '; '}{'; '.join(rest)}"


def load_app(spec: str) -> tuple[list[Definition], Mapping[str, Any]]:
    """`module[:attr]` -> (definitions to register, registry for definition files)."""
    module_name, _, attr = spec.partition(":")
    if (
        not module_name
        or not re.fullmatch(r"[\w.]+", module_name)
        or (attr and not re.fullmatch(r"[\w.]+", attr))
    ):
        raise UsageError(f"--app {spec!r}: expected module or module:attribute")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UsageError(f"--app {spec!r}: no module named {module_name!r}") from None
        raise CommandError(f"--app {spec!r}: importing {module_name!r} failed: {exc}") from None
    except StateMachineError as exc:
        raise CommandError(f"--app {spec!r}: {exc}") from None
    except Exception as exc:
        raise CommandError(
            f"--app {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    for part in filter(None, attr.split(".")):
        if not hasattr(target, part):
            raise UsageError(f"--app {spec!r}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    return _collect(spec, target)


def _collect(spec: str, target: Any) -> tuple[list[Definition], Mapping[str, Any]]:
    if isinstance(target, Definition):
        return [target], {}
    if isinstance(target, Registry):
        return [], target
    values = list(target.values()) if isinstance(target, Mapping) else target
    if isinstance(values, list | tuple | set | frozenset) and all(isinstance(v, Definition) for v in values):
        return list(values), {}
    if isinstance(target, ModuleType):
        return [v for v in vars(target).values() if isinstance(v, Definition)], _module_registry(target)
    raise UsageError(
        f"--app {spec!r}: expected a Definition, a list or dict of them, a Registry or a module,"
        f" got {type(target).__name__}"
    )


def _module_registry(module: ModuleType) -> Mapping[str, Any]:
    """Its `registry` (or any Registry) attribute, else the public callables it defines."""
    named = getattr(module, "registry", None)
    if isinstance(named, Registry):
        return named
    for value in vars(module).values():
        if isinstance(value, Registry):
            return value
    return {
        k: v
        for k, v in vars(module).items()
        if callable(v) and not k.startswith("_") and getattr(v, "__module__", None) == module.__name__
    }
