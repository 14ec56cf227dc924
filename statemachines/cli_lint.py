"""`statemachines lint` and `statemachines schema`: commands about definitions, no database.

`lint` explores each loaded definition (statemachines.explore) and prints its report; exit 1
when any has problems. A definition file whose callables are not resolvable (no --app registry)
is still linted, structurally: guards and actions are not needed for that.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from statemachines.cli_app import UsageError, load_app
from statemachines.definition import Definition
from statemachines.errors import DefinitionError
from statemachines.loading import load_definition
from statemachines.spec import MachineSpec


def run_schema() -> int:
    from statemachines.schema import schema_json

    print(schema_json(), end="")
    return 0


def run_lint(args: argparse.Namespace) -> int:
    from statemachines.explore import explore

    targets = _load(args)
    if args.names:
        missing = sorted(set(args.names) - {_name(t) for t in targets})
        if missing:
            raise UsageError(f"no loaded definition is named {', '.join(map(repr, missing))}")
        targets = [t for t in targets if _name(t) in args.names]
    if args.payloads is not None and not isinstance(args.payloads, dict):
        raise UsageError("--payloads must be a JSON object: event name -> payload (or list of payloads)")
    failed = 0
    for target in targets:
        if args.context is not None and isinstance(target, MachineSpec):
            raise UsageError(f"--context needs the callables of {target.name!r}: load them with --app")
        report = explore(target, depth=args.depth, context=args.context, payloads=args.payloads)
        print(report)
        failed += bool(report.problems)
    return 1 if failed else 0


def _name(target: Definition | MachineSpec) -> str:
    return target.name


def _load(args: argparse.Namespace) -> list[Definition | MachineSpec]:
    defs: list[Definition | MachineSpec] = []
    registry: Mapping[str, Any] = {}
    if args.app:
        found, registry = load_app(args.app)
        defs.extend(found)
    for path in args.definition or []:
        defs.append(_load_file(path, registry))
    if not defs:
        raise UsageError("lint has nothing to check: give --app module[:attr] or --definition FILE")
    return defs


def _load_file(path: str, registry: Mapping[str, Any]) -> Definition | MachineSpec:
    """The definition; or, when only registry names are missing, its spec (linted structurally)."""
    try:
        return load_definition(path, registry)
    except DefinitionError as exc:
        if not all("not in the registry" in p for p in exc.problems):
            raise
    import yaml

    with open(path, encoding="utf-8") as f:
        return MachineSpec.model_validate(yaml.safe_load(f))
