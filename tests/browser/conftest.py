"""A real headless browser against the real service: Debian's `chromium` driven by Playwright,
the app served by uvicorn in a thread on a free port, on SQLite and on PostgreSQL.

Playwright's own browser download does not work here, so the system's chromium is launched
(`executable_path`); without it, or without the playwright package, the tests skip with the
reason (CI installs both). With STATEMACHINES_SCREENSHOTS=1 the screenshots the tests take are
also copied to docs/img/ (how the README's pictures are made).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from statemachines import Engine, ManualClock
from tests.console_support import TOKEN_SECRET, Service, service

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    """A running service: its URL, engine, clock and keys."""

    url: str
    svc: Service
    clock: ManualClock

    @property
    def engine(self) -> Engine:
        return self.svc.engine


@pytest.fixture
def live(db_url: str) -> Iterator[Live]:
    """The app on uvicorn in a thread; stopped (and its engine closed) however the test ends,
    including when the server never came up."""
    import uvicorn

    clock = ManualClock()
    engine = Engine(db_url, clock=clock, secret=TOKEN_SECRET)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    os.environ["STATEMACHINES_BASE_URL"] = url
    server: Any = None
    thread: threading.Thread | None = None
    try:
        svc = service(engine)
        server = uvicorn.Server(uvicorn.Config(svc.app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("uvicorn did not start")
            time.sleep(0.02)
        yield Live(url, svc, clock)
    finally:
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=10)
            if thread.is_alive():  # a connection kept it waiting: close them all now
                server.force_exit = True
                thread.join(timeout=10)
            assert not thread.is_alive(), "the test server did not stop"
        os.environ.pop("STATEMACHINES_BASE_URL", None)
        engine.close()


@pytest.fixture
def page(browser: Any, live: Live) -> Iterator[Any]:
    """A fresh browser context (no cookies) whose dialogs are recorded in `page.dialogs`: any
    dialog means a script ran that should not have."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=live.url)
    p = context.new_page()
    p.set_default_timeout(8000)
    p.dialogs = []
    p.on("dialog", lambda d: (p.dialogs.append(d.message), d.dismiss()))
    try:
        yield p
    finally:
        context.close()  # before `live` stops: the page's polling holds a keep-alive connection


def log_in(page: Any, secret: str) -> None:
    page.goto("/console/machines")
    page.fill("#key", secret)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/machines")


def screenshot(page: Any, name: str, tmp_path: Path, db_url: str) -> Path:
    """A full-page PNG in tmp_path; copied to docs/img/ when asked (once, from SQLite)."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("STATEMACHINES_SCREENSHOTS") == "1" and db_url.startswith("sqlite"):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / name)
    return path
