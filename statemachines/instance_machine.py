"""Which compiled machine runs a stored instance: the one lookup rewind and compensation use.

Today an instance runs on the machine registered under its name; when instances are pinned to
the definition version they started with, only this function changes.
"""

from __future__ import annotations

from typing import Any

from statemachines.rows import MACHINE
from statemachines.runtime import Runtime


def machine_of(rt: Runtime, row: tuple[Any, ...]) -> Any:
    """The compiled machine (`CompiledMachine` or `CompiledChart`) for an instance row;
    `UnknownMachine` when this process has not registered it."""
    return rt.compiled(row[MACHINE])
