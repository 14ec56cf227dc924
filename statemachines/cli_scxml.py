"""`statemachines import-scxml FILE -o machine.yaml`: an SCXML document as a definition file.

The document is loaded and checked (`statemachines.scxml.load`), so what is written is a valid
definition: refused constructs are reported with their element and line, and nothing is written.
Expressions that are not expressions of the language are written as they are (they raise
`error.execution` when evaluated) and each is reported on stderr, element and line first.
The output is our YAML (or JSON, by suffix), which `--definition` then loads like any other.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from statemachines.cli_app import UsageError
from statemachines.loading import dump_definition


def add_import_scxml(cmd: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Register the subcommand with `cmd` (cli.build_parser's helper)."""
    p = cmd("import-scxml", "convert an SCXML document into a definition file (YAML, or JSON by suffix)")
    p.add_argument("file", metavar="FILE", help="the SCXML document")
    p.add_argument("-o", "--output", required=True, help="the definition file to write (.yaml/.yml/.json)")
    p.add_argument("--name", help="the machine's name (default: the document's name attribute)")


def run_import(args: argparse.Namespace) -> int:
    from statemachines.scxml import IllegalExpressionWarning, load

    output = Path(args.output)
    if output.suffix not in (".yaml", ".yml", ".json"):
        raise UsageError(f"--output {args.output!r}: the file must end in .yaml, .yml or .json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IllegalExpressionWarning)
        definition = load(Path(args.file), name=args.name)
    for warning in caught:
        if issubclass(warning.category, IllegalExpressionWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
        else:  # not ours to judge: shown as Python would have
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    dump_definition(definition, output)
    print(f"wrote {output}: machine {definition.name!r}, {sum(1 for _ in definition.spec.walk())} states")
    return 0
