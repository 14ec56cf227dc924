"""SCXML (W3C State Chart XML) in and out: `load` a document into a `Definition`, `dump` one back.

```python
from statemachines.scxml import load, dump

definition = load("machine.scxml")      # a path, a file object, or the XML text itself
text = dump(definition)                 # SCXML again (definitions without Python callables)
```

The supported subset, and how each element maps onto the statechart engine, is in docs/scxml.md.
Modules: `xmlparse` (safe parsing with line numbers), `reader` (structure), `executable`
(executable content, both ways), `writer` (dump). Anything outside the subset is refused with
a `DefinitionError` whose problem names the element and its line. Text that is not an expression
of the language (`cond="1 = 1"`, `<foreach item="'continue'">`) is not refused: SCXML makes it an
error of evaluation, so it is kept (it raises `error.execution` when evaluated) and `load` emits an
`IllegalExpressionWarning` for each, naming element, line and text.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from statemachines.content_spec import IllegalExpressionWarning
from statemachines.definition import Definition
from statemachines.errors import DefinitionError
from statemachines.scxml.executable import ILLEGAL, Unsupported
from statemachines.scxml.reader import read_document
from statemachines.scxml.writer import problems_of, write
from statemachines.scxml.xmlparse import XmlProblem, parse

__all__ = ["IllegalExpressionWarning", "dump", "load", "load_spec_data"]


def load(
    source: str | os.PathLike[str] | IO[str] | IO[bytes],
    registry: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Definition:
    """A checked `Definition` from an SCXML document: a path, a file object or the XML text.

    `name` overrides the document's `name` attribute (the default machine name is `scxml`);
    `registry` is passed to the definition as for YAML files. Raises `DefinitionError`; warns
    (`IllegalExpressionWarning`) once per expression that is not one of the language."""
    data = _load_data(source, name, stacklevel=3)
    return Definition.from_dict(data, registry)


def load_spec_data(
    source: str | os.PathLike[str] | IO[str] | IO[bytes], name: str | None = None
) -> dict[str, Any]:
    """The plain data of the definition (what `Definition.from_dict` and YAML files take)."""
    return _load_data(source, name, stacklevel=3)


def _load_data(source: Any, name: str | None, stacklevel: int) -> dict[str, Any]:
    text, where = _read(source)
    notes: list[Any] = []
    token = ILLEGAL.set(notes)
    try:
        data = read_document(parse(text), name)
    except XmlProblem as exc:
        raise DefinitionError(name or where, [_at(where, exc.line, str(exc))]) from None
    except Unsupported as exc:
        el = exc.element
        raise DefinitionError(name or where, [_at(where, el.line, f"{el.describe()}: {exc}")]) from None
    finally:
        ILLEGAL.reset(token)
    # After reading (a refused document warns about nothing), in document order.
    for el, message in sorted(notes, key=lambda note: note[0].line):
        warnings.warn(_at(where, el.line, f"{el.describe()}: {message}"), IllegalExpressionWarning,
                      stacklevel=stacklevel)  # fmt: skip
    return data


def dump(definition: Definition) -> str:
    """SCXML text for a definition without Python callables; `load(dump(d))` has `d`'s spec."""
    problems = problems_of(definition.spec)
    if problems:
        raise DefinitionError(definition.name, problems, what="machine (as SCXML)")
    return write(definition.spec)


def _at(where: str, line: int, message: str) -> str:
    return f"{where}:{line}: {message}" if line else f"{where}: {message}"


def _read(source: Any) -> tuple[bytes | str, str]:
    """(document, how errors name it)."""
    if hasattr(source, "read"):
        return source.read(), getattr(source, "name", None) or "<file>"
    if isinstance(source, str) and source.lstrip().startswith("<"):
        return source, "<text>"
    path = Path(source)
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise DefinitionError(path.name, [f"cannot read {path}: {exc.strerror or exc}"]) from None
