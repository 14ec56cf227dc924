"""/api/machines, /healthz and /metrics, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="the web service needs the [web] extra")

from web_support import Web, make_web, orders


@pytest.fixture
def web(db_url: str) -> Iterator[Web]:
    """The service on a fresh database of each kind, with a key per scope."""
    yield from make_web(db_url)


def test_machines_lists_the_registered_machines(web: Web) -> None:
    body = web.get("/api/machines").json()
    assert [m["name"] for m in body] == ["flaky", "orders"]
    assert body[1]["initial"] == "pending" and body[1]["version"] == orders.version


def test_machine_detail_counts_instances_per_state_and_status(web: Web) -> None:
    for iid in ("A1", "A2", "A3"):
        web.start_order(iid)
    web.post("/api/instances/A3/events", {"event": "PAY", "payload": {"amount": 40}})
    web.post("/api/instances/A2/cancel")
    body = web.get("/api/machines/orders").json()
    assert body["counts"] == {"pending": {"active": 1, "cancelled": 1}, "paid": {"active": 1}}


def test_machine_detail_lists_stored_versions_latest_first(web: Web) -> None:
    assert web.get("/api/machines/orders").json()["versions"] == [orders.version]


def test_machine_detail_has_the_context_and_payload_schemas(web: Web) -> None:
    body = web.get("/api/machines/orders").json()
    assert body["context_schema"]["title"] == "Order"
    assert body["event_schemas"]["PAY"]["properties"]["amount"]["exclusiveMinimum"] == 0
    assert body["spec"]["initial"] == "pending"


def test_an_unknown_machine_is_404(web: Web) -> None:
    assert web.get("/api/machines/nope").status_code == 404


def test_the_definition_diagram_is_svg(web: Web, needs_dot: str) -> None:
    response = web.get("/api/machines/orders/diagram.svg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/svg+xml"
    assert "<svg" in response.text and "pending" in response.text


def test_the_definition_diagram_is_mermaid(web: Web) -> None:
    response = web.get("/api/machines/orders/diagram.mmd")
    assert response.status_code == 200 and response.text.startswith("stateDiagram-v2")


def test_a_stored_version_can_be_drawn(web: Web) -> None:
    response = web.get("/api/machines/orders/diagram.mmd", params={"version": orders.version})
    assert response.status_code == 200 and "pending" in response.text


def test_an_unknown_version_is_404(web: Web) -> None:
    assert web.get("/api/machines/orders/diagram.mmd", params={"version": "0000"}).status_code == 404


def test_the_diagram_of_an_unknown_machine_is_404(web: Web) -> None:
    assert web.get("/api/machines/nope/diagram.mmd").status_code == 404


def test_healthz_is_ok_without_a_key(web: Web) -> None:
    body = web.client.get("/healthz").json()
    assert body["status"] == "ok" and body["machines"] == 2


def test_healthz_is_503_when_the_database_is_gone(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        from statemachines.errors import StorageUnavailable

        raise StorageUnavailable("connection refused")

    monkeypatch.setattr(web.engine.db, "read", broken)
    response = web.client.get("/healthz")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"


def test_storage_unavailable_is_a_503_problem_with_retry_after(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    from statemachines.errors import StorageUnavailable

    def broken(*args: object, **kw: object) -> None:
        raise StorageUnavailable("connection refused")

    monkeypatch.setattr(web.engine, "get", broken)
    response = web.get("/api/instances/A1")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_events_applied_and_rejected_per_machine(web: Web) -> None:
    before = web.client.get("/metrics").text
    web.start_order("A1")
    web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 1}})
    web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 40}})
    after = web.client.get("/metrics").text
    for outcome in ("applied", "rejected"):
        labels = {"kind": "send", "machine": "orders", "outcome": outcome}
        assert (
            _sample(after, "statemachines_events_total", **labels)
            - _sample(before, "statemachines_events_total", **labels)
            == 1
        )


def test_metrics_have_a_send_latency_histogram(web: Web) -> None:
    web.start_order("A1")
    web.post("/api/instances/A1/events", {"event": "PAY", "payload": {"amount": 40}})
    text = web.client.get("/metrics").text
    assert "# TYPE statemachines_send_seconds histogram" in text
    assert _sample(text, "statemachines_send_seconds_bucket", machine="orders", le="+Inf") >= 1
    assert _sample(text, "statemachines_send_seconds_count", machine="orders") >= 1


def test_metrics_count_timers_fired_and_effect_failures(web: Web) -> None:
    before = web.client.get("/metrics").text
    web.start_order("A1")
    web.post("/api/instances", {"machine": "flaky", "id": "F1"})
    web.clock.advance("7d")
    web.engine.run_due()
    after = web.client.get("/metrics").text

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert delta("statemachines_timers_fired_total", machine="orders", outcome="fired") == 1
    assert delta("statemachines_effect_attempts_total", machine="flaky", outcome="failed") == 1
    assert delta("statemachines_effect_failures_total", machine="flaky", effect="always_fails") == 1


def test_metrics_are_prometheus_text(web: Web) -> None:
    response = web.client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? [0-9.e+-]+$|^# (HELP|TYPE) .+$')
    assert all(sample.match(line) for line in response.text.splitlines()), response.text
