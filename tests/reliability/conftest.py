"""Reliability suite fixtures; the figures each test records are printed at the end of the run."""

from __future__ import annotations

from typing import Any

import pytest

from reliability import support


def pytest_report_header(config: pytest.Config) -> str:
    form = (
        "FULL (RELIABILITY_FULL=1)" if support.FULL else "CI (reduced; RELIABILITY_FULL=1 for the full form)"
    )
    return f"reliability suite: {form}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not support.FIGURES:
        return
    terminalreporter.section("reliability figures")
    for test, figures in support.FIGURES:
        text = ", ".join(f"{k}={v}" for k, v in figures.items())
        terminalreporter.write_line(f"{test}: {text}")
