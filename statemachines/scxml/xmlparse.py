"""Reading SCXML text safely into a small element tree that knows the line of every element.

The standard library's `xml.parsers.expat` is used directly (not `xml.etree`, which forgets
lines): document type declarations, entity declarations and external entities are refused before
anything is expanded, so no entity expansion ("billion laughs") or external fetch can happen.
Elements of other namespaces are refused too (they would be ignored silently otherwise); elements
in no namespace are read as SCXML, as hand-written documents (and some of the W3C tests' Python
versions) leave `xmlns` out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.parsers import expat

SCXML_NS = "http://www.w3.org/2005/07/scxml"
#: Documents too large for a definition: refused before parsing.
MAX_BYTES = 5_000_000


class XmlProblem(Exception):
    """The text is not acceptable XML; `line` is where (0 when unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


@dataclass(eq=False)
class Element:
    tag: str  # the local name (`state`, `transition`...)
    attrs: dict[str, str]
    line: int
    children: list[Element] = field(default_factory=list)
    text: str = ""  # character data directly inside (not in children)

    def describe(self) -> str:
        ident = self.attrs.get("id")
        return f"<{self.tag} id={ident!r}>" if ident else f"<{self.tag}>"


def parse(data: bytes | str) -> Element:
    """The root element; XmlProblem for malformed XML, DTDs, entities or foreign elements."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_BYTES:
        raise XmlProblem(f"the document is {len(raw)} bytes; at most {MAX_BYTES} are read")
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Element] = []
    roots: list[Element] = []

    def refuse(what: str) -> None:
        raise XmlProblem(f"{what} are not accepted (no DTDs or entities)", parser.CurrentLineNumber)

    def start(name: str, attrs: dict[str, str]) -> None:
        ns, _, local = name.rpartition(" ")
        if ns not in (SCXML_NS, ""):
            raise XmlProblem(
                f"<{local}> is in namespace {ns!r}; only SCXML elements ({SCXML_NS}) are supported",
                parser.CurrentLineNumber,
            )
        plain = {k.rpartition(" ")[2]: v for k, v in attrs.items() if " " not in k}
        foreign = sorted(k.rpartition(" ")[2] for k in attrs if " " in k)
        if foreign:
            raise XmlProblem(
                f"<{local}>: attributes {foreign} of other namespaces are not supported",
                parser.CurrentLineNumber,
            )
        el = Element(local, plain, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(el)
        stack.append(el)

    def end(_name: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        if stack:
            stack[-1].text += text

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = lambda *a: refuse("document type declarations")
    parser.EntityDeclHandler = lambda *a: refuse("entity declarations")
    parser.ExternalEntityRefHandler = lambda *a: refuse("external entities")
    parser.ProcessingInstructionHandler = None
    try:
        parser.Parse(raw, True)
    except expat.ExpatError as exc:
        raise XmlProblem(f"not well-formed XML: {expat.ErrorString(exc.code)}", exc.lineno) from None
    if not roots:
        raise XmlProblem("no root element")
    return roots[0]
