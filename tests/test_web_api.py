"""The JSON API under /api/instances, on SQLite and PostgreSQL: every endpoint, every error status."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="the web service needs the [web] extra")

from web_support import Web, make_web


@pytest.fixture
def web(db_url: str) -> Iterator[Web]:
    """The service on a fresh database of each kind, with a key per scope."""
    yield from make_web(db_url)


PROBLEM = "application/problem+json"


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert (
        body["status"] == status and body["title"] and body["detail"] and body["type"].startswith("https://")
    )
    return body


# start --------------------------------------------------------------------------------------------
def test_start_creates_an_instance_in_its_initial_state(web: Web) -> None:
    body = web.start_order("A1")
    assert body["state"] == "pending" and body["status"] == "active"
    assert body["context"] == {"order_id": "A1", "total": 40.0, "paid": 0.0}
    assert web.engine.get("A1").state == "pending"


def test_start_without_an_id_picks_one(web: Web) -> None:
    response = web.post("/api/instances", {"machine": "orders", "context": {"order_id": "x", "total": 1}})
    assert response.status_code == 201
    assert web.engine.get(response.json()["id"]).machine == "orders"


def test_start_records_the_key_name_as_actor(web: Web) -> None:
    web.start_order("A1")
    assert web.engine.history("A1")[0].actor == "api:write-key"


def test_start_with_a_taken_id_is_409(web: Web) -> None:
    web.start_order("A1")
    body = problem(
        web.post(
            "/api/instances", {"machine": "orders", "id": "A1", "context": {"order_id": "A1", "total": 1}}
        ),
        409,
    )
    assert body["title"] == "Instance exists"


def test_start_of_an_unknown_machine_is_404(web: Web) -> None:
    body = problem(web.post("/api/instances", {"machine": "nope"}), 404)
    assert "nope" in body["detail"]


def test_start_with_an_invalid_context_is_422_naming_the_field(web: Web) -> None:
    body = problem(
        web.post("/api/instances", {"machine": "orders", "context": {"order_id": "A1", "total": -5}}), 422
    )
    assert body["title"] == "Invalid context" and "total" in body["detail"]


def test_start_with_an_unknown_body_field_is_422(web: Web) -> None:
    problem(web.post("/api/instances", {"machine": "orders", "contxt": {}}), 422)


def test_start_with_a_body_that_is_not_json_is_422(web: Web) -> None:
    problem(web.post("/api/instances", content=b"{nope", headers={"Content-Type": "application/json"}), 422)


# read ---------------------------------------------------------------------------------------------
def test_get_returns_the_instance(web: Web) -> None:
    web.start_order("A1")
    body = web.get("/api/instances/A1").json()
    assert body["id"] == "A1" and body["version"] == 1 and body["configuration"] == ["pending"]


def test_get_of_an_unknown_instance_is_404(web: Web) -> None:
    body = problem(web.get("/api/instances/missing"), 404)
    assert body["instance_id"] == "missing"


def test_an_id_with_a_slash_is_reached_percent_encoded(web: Web) -> None:
    web.start_order("shop/A1")
    assert web.get("/api/instances/shop%2FA1").json()["id"] == "shop/A1"
    assert web.get("/api/instances/shop%2FA1/status").json()["instance"]["id"] == "shop/A1"


def test_status_lists_the_events_accepted_and_the_timers(web: Web) -> None:
    web.start_order("A1")
    body = web.get("/api/instances/A1/status").json()
    assert body["events"] == ["CANCEL", "PAY"]
    assert [t["event"] for t in body["timers"]] == ["after.7d"]


def test_status_of_an_unknown_instance_is_404(web: Web) -> None:
    problem(web.get("/api/instances/missing/status"), 404)


# events -------------------------------------------------------------------------------------------
def test_an_event_moves_the_instance(web: Web) -> None:
    web.start_order("A1")
    response = web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 40}})
    assert response.status_code == 200
    assert response.json()["state"] == "paid" and response.json()["context"]["paid"] == 40.0


def test_an_event_the_state_does_not_accept_is_409_with_the_allowed_events(web: Web) -> None:
    web.start_order("A1")
    body = problem(web.post("/api/instances/A1/events", {"event": "SHIP"}), 409)
    assert body["title"] == "Event not allowed" and body["allowed"] == ["CANCEL", "PAY"]
    assert body["state"] == "pending"


def test_a_guard_refusal_is_409_and_recorded(web: Web) -> None:
    web.start_order("A1")
    body = problem(web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 1}}), 409)
    assert body["title"] == "Guard rejected"
    assert web.engine.history("A1")[-1].outcome == "rejected"


def test_an_invalid_payload_is_422_and_changes_nothing(web: Web) -> None:
    web.start_order("A1")
    body = problem(web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": "lots"}}), 422)
    assert body["title"] == "Invalid payload" and "amount" in body["detail"]
    assert len(web.engine.history("A1")) == 1


def test_an_event_to_a_closed_instance_is_409(web: Web) -> None:
    web.start_order("A1")
    web.post("/api/instances/A1/cancel")
    body = problem(web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 40}}), 409)
    assert body["title"] == "Instance closed" and body["instance_status"] == "cancelled"


def test_an_event_to_an_unknown_instance_is_404(web: Web) -> None:
    problem(web.post("/api/instances/missing/events", {"event": "PAY"}), 404)


def test_a_reserved_event_name_is_422(web: Web) -> None:
    web.start_order("A1")
    problem(web.post("/api/instances/A1/events", {"event": "after.7d"}), 422)


def test_an_event_body_without_event_is_422(web: Web) -> None:
    web.start_order("A1")
    problem(web.post("/api/instances/A1/events", {"payload": {}}), 422)


def test_the_same_idempotency_key_applies_the_event_once(web: Web) -> None:
    web.start_order("A1")
    headers = {"Idempotency-Key": "pay-1"}
    first = web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 40}}, headers=headers)
    again = web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 40}}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert [r.event for r in web.engine.history("A1")] == ["start", "PAY"]


def test_an_idempotency_key_reused_for_another_request_is_409(web: Web) -> None:
    web.start_order("A1")
    headers = {"Idempotency-Key": "pay-1"}
    web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 40}}, headers=headers)
    body = problem(
        web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 41}}, headers=headers),
        409,
    )
    assert body["title"] == "Idempotency key reused"


# cancel and retry ---------------------------------------------------------------------------------
def test_cancel_closes_the_instance_with_the_reason(web: Web) -> None:
    web.start_order("A1")
    response = web.post("/api/instances/A1/cancel", {"reason": "customer asked"})
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert web.engine.history("A1")[-1].reason == "customer asked"


def test_cancel_of_a_closed_instance_is_409(web: Web) -> None:
    web.start_order("A1")
    web.post("/api/instances/A1/cancel")
    problem(web.post("/api/instances/A1/cancel"), 409)


def test_cancel_of_an_unknown_instance_is_404(web: Web) -> None:
    problem(web.post("/api/instances/missing/cancel"), 404)


def test_retry_redrives_a_failed_instance(web: Web) -> None:
    web.post("/api/instances", {"machine": "flaky", "id": "F1"})
    web.engine.run_due()
    assert web.engine.get("F1").status == "failed"
    response = web.post("/api/instances/F1/retry", scope="admin")
    assert response.status_code == 200 and response.json()["status"] == "active"


def test_retry_of_an_instance_that_has_not_failed_is_409(web: Web) -> None:
    web.start_order("A1")
    body = problem(web.post("/api/instances/A1/retry", scope="admin"), 409)
    assert body["title"] == "Instance not failed"


def test_retry_of_an_unknown_instance_is_404(web: Web) -> None:
    problem(web.post("/api/instances/missing/retry", scope="admin"), 404)


# listing and history pages ------------------------------------------------------------------------
def test_instances_page_through_every_match_once_with_cursors(web: Web) -> None:
    for i in range(7):
        web.start_order(f"A{i}")
    web.post("/api/instances", {"machine": "flaky", "id": "F1"})
    seen, cursor = [], None
    while True:
        params = {"machine": "orders", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = web.get("/api/instances", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"A{i}" for i in range(7)]


def test_instances_filter_by_state_and_status(web: Web) -> None:
    web.start_order("A1")
    web.start_order("A2")
    web.post("/api/instances/A2/events", {"event": "PAY", "payload": {"amount": 40}})
    assert [i["id"] for i in web.get("/api/instances", params={"state": "paid"}).json()["items"]] == ["A2"]
    web.post("/api/instances/A1/cancel")
    items = web.get("/api/instances", params={"status": "cancelled"}).json()["items"]
    assert [i["id"] for i in items] == ["A1"]


def test_a_page_started_before_inserts_continues_without_repeats(web: Web) -> None:
    for i in range(4):
        web.start_order(f"A{i}")
    first = web.get("/api/instances", params={"limit": 2}).json()
    web.start_order("A9")
    second = web.get("/api/instances", params={"limit": 10, "cursor": first["next_cursor"]}).json()
    assert [i["id"] for i in second["items"]] == ["A2", "A3", "A9"]


def test_a_malformed_cursor_is_422(web: Web) -> None:
    problem(web.get("/api/instances", params={"cursor": "not-a-cursor!"}), 422)


def test_a_history_cursor_given_to_instances_is_422(web: Web) -> None:
    web.start_order("A1")
    web.post("/api/instances/A1/events", {"event": "SHIP"})
    cursor = web.get("/api/instances/A1/history", params={"limit": 1}).json()["next_cursor"]
    problem(web.get("/api/instances", params={"cursor": cursor}), 422)


def test_a_limit_out_of_range_is_422(web: Web) -> None:
    problem(web.get("/api/instances", params={"limit": 0}), 422)
    problem(web.get("/api/instances", params={"limit": 100000}), 422)


def test_history_pages_in_seq_order(web: Web) -> None:
    web.start_order("A1")
    web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 1}})  # rejected
    web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 40}})
    first = web.get("/api/instances/A1/history", params={"limit": 2}).json()
    rest = web.get("/api/instances/A1/history", params={"cursor": first["next_cursor"]}).json()
    assert [r["seq"] for r in first["items"]] == [1, 2] and [r["seq"] for r in rest["items"]] == [3]
    assert [r["outcome"] for r in first["items"] + rest["items"]] == ["applied", "rejected", "applied"]
    assert rest["next_cursor"] is None


def test_history_of_an_unknown_instance_is_404(web: Web) -> None:
    problem(web.get("/api/instances/missing/history"), 404)


# diagrams -----------------------------------------------------------------------------------------
def test_the_run_diagram_is_svg(web: Web, needs_dot: str) -> None:
    web.start_order("A1")
    response = web.get("/api/instances/A1/diagram.svg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/svg+xml"
    assert response.text.lstrip().startswith(("<?xml", "<svg")) and "pending" in response.text


def test_the_run_diagram_of_an_unknown_instance_is_404(web: Web) -> None:
    problem(web.get("/api/instances/missing/diagram.svg"), 404)


# unknown routes -----------------------------------------------------------------------------------
def test_an_unknown_route_is_a_404_problem(web: Web) -> None:
    problem(web.get("/api/nothing-here"), 404)


def test_a_wrong_method_is_a_405_problem(web: Web) -> None:
    problem(web.client.delete("/api/instances", headers=web.auth()), 405)


# server faults ------------------------------------------------------------------------------------
def test_an_action_that_raises_is_a_500_problem_naming_it(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    from statemachines.errors import ActionFailed

    def failing(*args: object, **kw: object) -> None:
        raise ActionFailed("A1", "PAY", "action record_payment", RuntimeError("ledger down"))

    monkeypatch.setattr(web.engine, "send", failing)
    body = problem(web.post("/api/instances/A1/events", {"event": "PAY"}), 500)
    assert body["title"] == "ActionFailed" and "record_payment" in body["detail"]


def test_an_unexpected_error_is_a_500_problem_without_internals(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: object, **kw: object) -> None:
        raise RuntimeError("password=hunter2 at 0x7f")

    monkeypatch.setattr(web.engine, "get", failing)
    body = problem(web.get("/api/instances/A1"), 500)
    assert "hunter2" not in str(body) and body["detail"] == "the server failed; see its log"
