"""`/api/machines`: the machines this server serves, their versions, how many instances sit in
each state, and their diagrams (SVG needs Graphviz; Mermaid text does not). Scope `read`."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from diagrams import draw, render, to_mermaid
from statemachines.definition import Definition
from statemachines.web.auth import require
from statemachines.web.keys import ApiKey
from statemachines.web.models import MachineDetail, MachineSummary
from statemachines.web.problems import responses
from statemachines.web.state import WebState

SVG, MERMAID = "image/svg+xml", "text/plain; charset=utf-8"
Version = Annotated[
    str | None,
    Query(min_length=1, max_length=64, description="a stored version; the registered one when omitted"),
]


def summary(definition: Definition) -> MachineSummary:
    spec = definition.spec
    return MachineSummary(
        name=spec.name, version=definition.version, description=spec.description, initial=spec.initial,
        states=sorted(spec.states),
    )  # fmt: skip


def router(state: WebState) -> APIRouter:
    engine = state.engine
    api = APIRouter(prefix="/api/machines", tags=["machines"])
    read = Depends(require("read"))

    def spec_of(name: str, version: str | None) -> object:
        definition = engine.definition(name)  # 404 unless served here
        return definition if version is None else engine.stored_spec(name, version)

    @api.get("", response_model=list[MachineSummary], responses=responses(401, 403))
    def machines(key: ApiKey = read) -> list[MachineSummary]:
        """The machines registered with this server."""
        return [summary(engine.definition(n)) for n in sorted(engine.runtime.machines)]

    @api.get(
        "/{name:path}/diagram.svg", response_class=Response,
        responses={200: {"content": {SVG: {"schema": {"type": "string"}}}}, **responses(401, 403, 404, 503)},
    )  # fmt: skip
    def diagram_svg(name: str, version: Version = None, key: ApiKey = read) -> Response:
        """The definition diagram as SVG."""
        return Response(render(draw(spec_of(name, version)), "svg"), media_type=SVG)

    @api.get(
        "/{name:path}/diagram.mmd", response_class=Response,
        responses={200: {"content": {MERMAID: {"schema": {"type": "string"}}}}, **responses(401, 403, 404)},
    )  # fmt: skip
    def diagram_mermaid(name: str, version: Version = None, key: ApiKey = read) -> Response:
        """The definition diagram as Mermaid `stateDiagram-v2` text."""
        return Response(to_mermaid(spec_of(name, version)), media_type=MERMAID)

    @api.get("/{name:path}", response_model=MachineDetail, responses=responses(401, 403, 404))
    def machine(name: str, key: ApiKey = read) -> MachineDetail:
        """A machine: spec, stored versions, and instances per state (by status)."""
        definition = engine.definition(name)
        model = definition.context_model
        return MachineDetail(
            **summary(definition).model_dump(),
            spec=json.loads(definition.to_json()),
            versions=engine.versions(name),
            counts=engine.state_counts(name),
            context_schema=model.model_json_schema() if model is not None else None,
            event_schemas={e: m.model_json_schema() for e, m in definition.event_schemas.items()},
        )

    return api
