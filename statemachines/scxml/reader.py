"""An SCXML document (its element tree) to the plain data of a definition (`MachineSpec` form).

The mapping, element by element (docs/scxml.md has the table):

- `<scxml initial name datamodel binding>` -> the machine (`initial`, `data`, `binding`);
- `<state>`, `<parallel>`, `<final>`, `<history type>` -> states named by their `id`, nested
  (our paths are dotted: `s0.s01`); a compound state's first child is its initial state unless
  `initial` (or an `<initial>` element) names another;
- `<transition event cond target type>` -> `on` (keyed by the event descriptors, in document
  order) or `always` (no event); several targets stay a list; `done.state.<id>` descriptors name
  the state by its path, as the engine's done events do;
- `<onentry>`, `<onexit>`, transition bodies -> `enter_content`, `exit_content`, `content`;
  `<datamodel><data id expr>` -> `data`; `<donedata>` -> `donedata`.

Everything else is refused with an `Unsupported` naming the element (`<invoke>`, `<script>`,
`src` attributes, other data models, deep or multiple initial states, ECMAScript-only
expressions...); an expression the language cannot read is kept (see `executable.expression`).
"""

from __future__ import annotations

from typing import Any

from statemachines.chart.events import DONE_STATE
from statemachines.scxml.executable import Unsupported, expression, read_block, read_content, read_param
from statemachines.scxml.xmlparse import Element

STATE_TAGS = ("state", "parallel", "final", "history")
#: Data models whose expressions we evaluate with our expression language. Documents declaring
#: `ecmascript` load when every expression is also valid in it (the W3C tests' Python versions).
DATAMODELS = ("python", "ecmascript", "null")


def read_document(root: Element, name: str | None) -> dict[str, Any]:
    if root.tag != "scxml":
        raise Unsupported(root, "the root element must be <scxml>")
    _allowed(root, {"initial", "name", "datamodel", "binding", "version"})
    datamodel = root.attrs.get("datamodel", "null")
    if datamodel not in DATAMODELS:
        raise Unsupported(root, f"datamodel {datamodel!r} is not supported (only {list(DATAMODELS)})")
    for child in root.children:
        if child.tag not in (*STATE_TAGS, "datamodel"):
            raise Unsupported(child, f"<{child.tag}> is not supported inside <scxml>")
    reader = _Reader()
    reader.index(root, "")
    data = reader.datamodel(root)  # first: the document's own data, then each state's
    states = reader.children(root, "")
    if not states:
        raise Unsupported(root, "the document declares no states")
    out: dict[str, Any] = {
        "name": name or root.attrs.get("name") or "scxml",
        "initial": reader.initial(root, "", states),
        "states": states,
    }
    if data:
        out["data"] = data
    binding = root.attrs.get("binding")
    if binding not in (None, "early", "late"):
        raise Unsupported(root, f"binding {binding!r} is not 'early' or 'late'")
    out["binding"] = binding or "early"  # marks the machine as a statechart with content
    return out


def _allowed(el: Element, attrs: set[str]) -> None:
    unknown = sorted(set(el.attrs) - attrs)
    if unknown:
        if "src" in unknown:
            raise Unsupported(el, "src (loading from another document) is not supported")
        raise Unsupported(el, f"attributes {unknown} are not supported here")


class _Reader:
    def __init__(self) -> None:
        self.paths: dict[str, str] = {}  # id -> dotted path
        self.generated = 0
        self.data_ids: set[str] = set()  # every <data id>, document-wide (SCXML 5.2)

    # Pass 1: every state's id and path ----------------------------------------------------------
    def index(self, parent: Element, path: str) -> None:
        for el in parent.children:
            if el.tag not in STATE_TAGS:
                continue
            ident = el.attrs.get("id")
            if ident is None:
                self.generated += 1
                ident = el.attrs["id"] = f"{el.tag}_{self.generated}"
            if "." in ident or not ident.strip():
                raise Unsupported(el, f"id {ident!r}: state ids may not contain '.' (our path separator)")
            if ident in self.paths:
                raise Unsupported(el, f"id {ident!r} is declared twice")
            self.paths[ident] = f"{path}.{ident}" if path else ident
            self.index(el, self.paths[ident])

    def path(self, el: Element, ident: str) -> str:
        found = self.paths.get(ident)
        if found is None:
            raise Unsupported(el, f"no state has the id {ident!r}")
        return found

    # Pass 2: the states ---------------------------------------------------------------------------
    def children(self, parent: Element, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for el in parent.children:
            if el.tag in STATE_TAGS:
                out[el.attrs["id"]] = self.state(el)
            elif el.tag in ("invoke", "script"):
                raise Unsupported(el, f"<{el.tag}> is not supported")
        return out

    def state(self, el: Element) -> dict[str, Any]:
        path = self.paths[el.attrs["id"]]
        if el.tag == "history":
            return self.history(el)
        _allowed(el, {"id", "initial"} if el.tag == "state" else {"id"})
        st: dict[str, Any] = {}
        known = {"onentry", "onexit", "transition", "datamodel", *STATE_TAGS}
        known |= {"donedata"} if el.tag == "final" else {"initial"} if el.tag == "state" else set()
        for child in el.children:
            if child.tag not in known:
                raise Unsupported(child, f"<{child.tag}> is not supported inside <{el.tag}>")
        kids = self.children(el, path)
        if el.tag == "final":
            if kids or any(c.tag == "transition" for c in el.children):
                raise Unsupported(el, "a final state has no child states or transitions")
            st["final"] = True
            done = [c for c in el.children if c.tag == "donedata"]
            if done:
                st["donedata"] = self.donedata(done[0])
        if kids:
            st["states"] = kids
            if el.tag == "parallel":
                st["type"] = "parallel"
            else:
                st["initial"] = self.initial(el, path, kids)
                content = self.initial_content(el)
                if content:
                    st["initial_content"] = content
        elif el.tag == "parallel":
            st["type"] = "parallel"
        enter = self.handlers(el, "onentry")
        exit_ = self.handlers(el, "onexit")
        if enter:
            st["enter_content"] = enter
        if exit_:
            st["exit_content"] = exit_
        data = self.datamodel(el)
        if data:
            st["data"] = data
        on: dict[str, list[Any]] = {}
        always: list[Any] = []
        last_key: str | None = None
        for child in el.children:
            if child.tag != "transition":
                continue
            key, transition = self.transition(child)
            if key is None:
                always.append(transition)
                continue
            while key in on and key != last_key:  # keep document order across keys: an alias
                key = f"{key} {key.split()[0]}"  # of the same descriptors (see docs/scxml.md)
            on.setdefault(key, []).append(transition)
            last_key = key
        if on:
            st["on"] = on
        if always:
            st["always"] = always
        return st

    def handlers(self, el: Element, tag: str) -> list[dict[str, Any]]:
        """The content of a state's `<onentry>` (or `<onexit>`) elements: one block, or, when
        there are several, one `block` item each (an error stops its own block only: 3.8)."""
        blocks = []
        for child in (c for c in el.children if c.tag == tag):
            _allowed(child, set())
            blocks.append(read_block(child.children))
        if len(blocks) == 1:
            return blocks[0]
        return [{"block": block} for block in blocks]

    def initial(self, el: Element, path: str, kids: dict[str, Any]) -> str | list[str]:
        """The state(s) entered first, relative to `el`: `initial=`, an `<initial>` element, or the
        first child; a descendant deeper down is a dotted path, several are a list."""
        elements = [c for c in el.children if c.tag == "initial"]
        if "initial" in el.attrs and elements:
            raise Unsupported(el, "both an initial attribute and an <initial> element")
        ids = el.attrs.get("initial", "").split()
        where = el
        if elements:
            where = elements[0]
            _allowed(where, set())
            transitions = [c for c in where.children if c.tag == "transition"]
            if len(transitions) != 1 or len(where.children) != 1:
                raise Unsupported(where, "an <initial> holds exactly one <transition>")
            t = transitions[0]
            _allowed(t, {"target"})
            ids = t.attrs.get("target", "").split()
        if not ids:
            return next(name for name, st in kids.items() if "history" not in st)
        prefix = f"{path}." if path else ""
        found = []
        for ident in ids:
            target = self.path(where, ident)
            if not target.startswith(prefix):
                raise Unsupported(where, f"initial state {ident!r} is not inside {el.describe()}")
            found.append(target[len(prefix) :])  # a child's name, or a dotted path below
        return found[0] if len(found) == 1 else found

    def initial_content(self, el: Element) -> list[dict[str, Any]]:
        """The executable content of an `<initial>` element's transition (none without one)."""
        for child in el.children:
            if child.tag == "initial":
                return read_block(child.children[0].children)
        return []

    def history(self, el: Element) -> dict[str, Any]:
        _allowed(el, {"id", "type"})
        kind = el.attrs.get("type", "shallow")
        if kind not in ("shallow", "deep"):
            raise Unsupported(el, f"type {kind!r} is not 'shallow' or 'deep'")
        transitions = [c for c in el.children if c.tag == "transition"]
        if len(transitions) != 1 or len(el.children) != 1:
            raise Unsupported(el, "a history holds exactly one <transition> (its default)")
        t = transitions[0]
        _allowed(t, {"target"})
        targets = t.attrs.get("target", "").split()
        if len(targets) != 1:
            raise Unsupported(t, "a history default has one target")
        history: dict[str, Any] = {"default": self.path(t, targets[0]), "deep": kind == "deep"}
        content = read_block(t.children)
        if content:
            history["content"] = content
        return {"history": history}

    def transition(self, el: Element) -> tuple[str | None, dict[str, Any]]:
        _allowed(el, {"event", "cond", "target", "type"})
        out: dict[str, Any] = {}
        targets = [self.path(el, t) for t in el.attrs.get("target", "").split()]
        out["target"] = targets[0] if len(targets) == 1 else (targets or None)
        if "cond" in el.attrs:
            out["cond"] = expression(el, "cond")
        kind = el.attrs.get("type", "external")
        if kind not in ("external", "internal"):
            raise Unsupported(el, f"type {kind!r} is not 'external' or 'internal'")
        if kind == "internal":
            out["type"] = "internal"
        content = read_block(el.children)
        if content:
            out["content"] = content
        event = el.attrs.get("event")
        if event is None:
            return None, out
        tokens = [self.done_token(el, tok) for tok in event.split()]
        if not tokens:
            raise Unsupported(el, "an empty event attribute (leave it out for an eventless transition)")
        return " ".join(tokens), out

    def done_token(self, el: Element, token: str) -> str:
        """`done.state.<id>` names the state by its path here (the engine's done events do)."""
        if token.startswith(DONE_STATE):
            ident = token[len(DONE_STATE) :]
            if ident in self.paths:
                return DONE_STATE + self.paths[ident]
        return token

    def datamodel(self, el: Element) -> dict[str, str | None]:
        data: dict[str, str | None] = {}
        for model in (c for c in el.children if c.tag == "datamodel"):
            _allowed(model, set())
            for item in model.children:
                if item.tag != "data":
                    raise Unsupported(item, f"<{item.tag}> inside <datamodel>: only <data>")
                _allowed(item, {"id", "expr"})
                ident = item.attrs.get("id", "")
                if not ident.isidentifier() or ident.startswith("_"):
                    raise Unsupported(item, f"data id {ident!r} must be an identifier not starting with '_'")
                if ident in self.data_ids:
                    raise Unsupported(item, f"data id {ident!r} is declared twice")
                self.data_ids.add(ident)
                if "expr" in item.attrs and item.text.strip():
                    raise Unsupported(item, "an expr and inline content cannot both give its value (5.2)")
                if "expr" in item.attrs:
                    data[ident] = expression(item, "expr")
                elif item.text.strip():  # inline value, read as an expression
                    item.attrs["expr"] = " ".join(item.text.split())
                    data[ident] = expression(item, "expr")
                else:
                    data[ident] = None
        return data

    def donedata(self, el: Element) -> dict[str, Any]:
        _allowed(el, set())
        contents = [c for c in el.children if c.tag == "content"]
        params = [c for c in el.children if c.tag == "param"]
        for child in el.children:
            if child.tag not in ("content", "param"):
                raise Unsupported(child, f"<{child.tag}> inside <donedata>: only <param> and <content>")
        if contents:
            if len(contents) > 1 or params:
                raise Unsupported(el, "a <content> excludes <param> and a second <content> (SCXML 5.5)")
            return {"content": read_content(contents[0])}
        return {"params": [read_param(c) for c in params]}
