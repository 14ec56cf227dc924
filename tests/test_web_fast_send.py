"""The short path for `POST /api/instances/{id}/events` (statemachines/web/fast_send.py), on SQLite
and PostgreSQL: it answers accepted events itself, and hands everything else to the FastAPI route,
so every answer stays the documented one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the web service needs the [web] extra")

from web_support import Web, make_web

from statemachines.web import fast_send
from statemachines.web.send_threads import SendThreads


@pytest.fixture
def web(db_url: str) -> Iterator[Web]:
    yield from make_web(db_url)


@pytest.fixture
def short_path_sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The instance ids the short path sent to (it runs `engine.send` on its `SendThreads`)."""
    calls: list[str] = []
    original = SendThreads.run

    async def counting(self: SendThreads, func: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return await original(self, func, *args, **kwargs)

    monkeypatch.setattr(SendThreads, "run", counting)
    return calls


PAY = {"event": "PAY", "payload": {"amount": 40}}


def test_an_accepted_event_is_answered_by_the_short_path(web: Web, short_path_sends: list[str]) -> None:
    web.start_order("A1")
    response = web.post("/api/instances/A1/events", PAY)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert short_path_sends == ["A1"]
    assert response.json() == web.get("/api/instances/A1").json()


def test_the_short_path_records_the_key_as_the_actor(web: Web) -> None:
    web.start_order("A1")
    web.post("/api/instances/A1/events", PAY)
    assert web.engine.history("A1")[-1].actor == "api:write-key"


def test_an_id_with_a_slash_is_sent_to_by_the_short_path(web: Web, short_path_sends: list[str]) -> None:
    web.start_order("shop/A1")
    response = web.post("/api/instances/shop/A1/events", PAY)
    assert response.status_code == 200 and response.json()["id"] == "shop/A1"
    assert short_path_sends == ["shop/A1"]


def test_a_refused_event_is_recorded_once(web: Web, short_path_sends: list[str]) -> None:
    web.start_order("A1")
    response = web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 1}})
    assert response.status_code == 409 and response.json()["title"] == "Guard rejected"
    assert [r.outcome for r in web.engine.history("A1")][1:] == ["rejected"]
    assert short_path_sends == ["A1"]


def test_a_request_without_a_key_is_handed_over_and_gets_401(web: Web, short_path_sends: list[str]) -> None:
    web.start_order("A1")
    response = web.client.post("/api/instances/A1/events", json=PAY)
    assert response.status_code == 401 and "Bearer" in response.headers["www-authenticate"]
    assert short_path_sends == [] and web.engine.get("A1").state == "pending"


def test_a_read_key_is_handed_over_and_gets_403(web: Web, short_path_sends: list[str]) -> None:
    web.start_order("A1")
    response = web.post("/api/instances/A1/events", PAY, scope="read")
    assert response.status_code == 403
    assert short_path_sends == [] and web.engine.get("A1").state == "pending"


def test_a_body_with_an_unknown_field_is_handed_over_and_gets_422(
    web: Web, short_path_sends: list[str]
) -> None:
    web.start_order("A1")
    response = web.post("/api/instances/A1/events", {**PAY, "extra": 1})
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert short_path_sends == []


def test_a_body_that_is_not_json_is_handed_over_and_gets_422(web: Web, short_path_sends: list[str]) -> None:
    web.start_order("A1")
    headers = {**web.auth("write"), "Content-Type": "application/json"}
    response = web.client.post("/api/instances/A1/events", content=b"{not json", headers=headers)
    assert response.status_code == 422 and short_path_sends == []


def test_another_content_type_is_handed_over(web: Web, short_path_sends: list[str]) -> None:
    web.start_order("A1")
    headers = {**web.auth("write"), "Content-Type": "text/plain"}
    response = web.client.post("/api/instances/A1/events", content=b'{"event": "PAY"}', headers=headers)
    assert response.status_code == 422 and short_path_sends == []


def test_an_overlong_idempotency_key_is_handed_over_and_gets_422(
    web: Web, short_path_sends: list[str]
) -> None:
    web.start_order("A1")
    response = web.post("/api/instances/A1/events", PAY, headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 422 and short_path_sends == []


def test_a_large_body_is_handed_over_whole(web: Web, short_path_sends: list[str]) -> None:
    web.start_order("A1")
    response = web.post("/api/instances/A1/events", {"event": "SHIP", "payload": "x" * (2 << 20)})
    assert response.status_code == 409 and response.json()["title"] == "Event not allowed"
    assert short_path_sends == []


def test_the_short_path_works_when_the_app_is_mounted_under_a_prefix(
    web: Web, short_path_sends: list[str]
) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from statemachines.web import create_app

    outer = FastAPI()
    inner = create_app(web.engine)
    outer.mount("/workflows", inner)
    key = inner.state.web.keys.create("mounted", ["write"])[1]
    web.start_order("A1")
    with TestClient(outer) as client:
        response = client.post(
            "/workflows/api/instances/A1/events", json=PAY, headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 200 and response.json()["state"] == "paid"
    assert short_path_sends == ["A1"]


def test_a_request_the_short_path_cannot_authenticate_is_handed_over(
    web: Web, short_path_sends: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(state: Any, request: Any) -> Any:
        raise AssertionError("needs scope the application sets up further in")

    monkeypatch.setattr(fast_send, "authenticate", failing)
    web.start_order("A1")
    response = web.post("/api/instances/A1/events", PAY)
    assert response.status_code == 200 and response.json()["state"] == "paid"
    assert short_path_sends == []


def test_the_short_path_sends_where_its_database_wants_and_answers_the_errors(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: on the send threads (commits overlap); SQLite: on the event loop's own thread
    (one write at a time per file, so a thread would only add the hop)."""
    import asyncio
    import threading

    where: list[tuple[str, bool]] = []
    original = web.engine.send

    def recording(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        where.append((threading.current_thread().name, on_loop))
        return original(*args, **kwargs)

    monkeypatch.setattr(web.engine, "send", recording)
    web.start_order("A1")
    assert web.post("/api/instances/A1/events", PAY).status_code == 200
    missing = web.post("/api/instances/nope/events", PAY)
    assert missing.status_code == 404 and missing.json()["title"] == "Instance not found"
    assert len(where) == 2
    if web.engine.db.dialect == "sqlite":
        assert all(on_loop and not name.startswith("statemachines-send") for name, on_loop in where)
    else:
        assert all(name.startswith("statemachines-send") and not on_loop for name, on_loop in where)
