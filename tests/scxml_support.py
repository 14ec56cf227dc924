"""Helpers for the SCXML tests: build a chart from YAML and run it in memory (no database)."""

from __future__ import annotations

from typing import Any

from statemachines import loads_definition
from statemachines.chart import ChartStep, CompiledChart
from statemachines.records import Event
from statemachines.scxml import load

SCXML_HEAD = '<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python"'


class Run:
    """A chart instance in memory: `send` applies one external event and keeps the step."""

    def __init__(self, chart: CompiledChart, context: str = "{}") -> None:
        self.chart = chart
        self.step: ChartStep = chart.enter_initial(context, Event("start", {}, "i1"))

    def send(self, name: str, payload: Any = None, **fields: Any) -> ChartStep:
        step = self.step
        event = Event(name, payload if payload is not None else {}, "i1", **fields)
        self.step = self.chart.step(step.configuration, step.history, step.context_json, event)
        return self.step

    @property
    def configuration(self) -> tuple[str, ...]:
        return self.step.configuration

    @property
    def context(self) -> Any:
        import json

        return json.loads(self.step.context_json)


def yaml_run(text: str, context: str = "{}") -> Run:
    return Run(CompiledChart(loads_definition(text)), context)


def scxml_run(body: str, attrs: str = "") -> Run:
    """An SCXML document made of `body` inside `<scxml ...>`, loaded and started in memory."""
    return Run(CompiledChart(load(f"{SCXML_HEAD}{attrs}>{body}</scxml>")))


def scxml(body: str, attrs: str = "") -> str:
    return f"{SCXML_HEAD}{attrs}>{body}</scxml>"
