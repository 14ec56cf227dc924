"""API keys and bearer auth: scopes, hashing, revocation, the loopback rule (both databases)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="the web service needs the [web] extra")

from web_support import Web, make_web

from statemachines.errors import InvalidArgument


@pytest.fixture
def web(db_url: str) -> Iterator[Web]:
    """The service on a fresh database of each kind, with a key per scope."""
    yield from make_web(db_url)


def test_a_request_without_a_key_is_401_with_a_bearer_challenge(web: Web) -> None:
    response = web.client.get("/api/machines")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


def test_an_unknown_key_is_401(web: Web) -> None:
    forged = web.keys["admin"][:-4] + "AAAA"
    assert web.client.get("/api/machines", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_a_malformed_authorization_header_is_401(web: Web) -> None:
    for header in ("Bearer", "Basic dXNlcjpwYXNz", web.keys["admin"], "Bearer not-a-key"):
        assert web.client.get("/api/machines", headers={"Authorization": header}).status_code == 401


def test_a_read_key_can_read(web: Web) -> None:
    assert web.get("/api/instances", scope="read").status_code == 200


def test_a_read_key_cannot_start_send_or_cancel(web: Web) -> None:
    web.start_order("A1")
    assert web.post("/api/instances", {"machine": "orders"}, scope="read").status_code == 403
    assert web.post("/api/instances/A1/events", {"event": "CANCEL"}, scope="read").status_code == 403
    assert web.post("/api/instances/A1/cancel", scope="read").status_code == 403
    assert web.engine.get("A1").status == "active"


def test_a_write_key_cannot_retry(web: Web) -> None:
    response = web.post("/api/instances/A1/retry", scope="write")
    assert response.status_code == 403 and "admin" in response.json()["detail"]


def test_an_admin_key_can_do_what_a_write_key_can(web: Web) -> None:
    assert (
        web.post(
            "/api/instances", {"machine": "orders", "context": {"order_id": "a", "total": 1}}, scope="admin"
        ).status_code
        == 201
    )


def test_keys_are_stored_as_digests_never_in_clear(web: Web) -> None:
    with web.engine.runtime.read() as cur:
        cur.execute("SELECT digest FROM sm_api_keys")
        stored = {row[0] for row in cur.fetchall()}
    secrets = set(web.keys.values())
    assert not stored & secrets
    assert {hashlib.sha256(s.encode()).hexdigest() for s in secrets} == stored


def test_a_revoked_key_is_refused(web: Web) -> None:
    store = web.client.app.state.web.keys
    key = store.verify(web.keys["read"])
    assert store.revoke(key.id) is True
    assert web.get("/api/instances", scope="read").status_code == 401
    assert key.id not in [k.id for k in store.list()]


def test_revoking_an_unknown_key_says_so(web: Web) -> None:
    assert web.client.app.state.web.keys.revoke("000000000000") is False


def test_keys_list_names_and_scopes_but_no_secrets(web: Web) -> None:
    keys = web.client.app.state.web.keys.list()
    assert sorted((k.name, tuple(k.scopes)) for k in keys) == [
        ("admin-key", ("admin",)), ("read-key", ("read",)), ("write-key", ("write",)),
    ]  # fmt: skip
    assert not any(hasattr(k, "secret") or hasattr(k, "digest") for k in keys)


@pytest.mark.parametrize("scopes", [[], ["root"], "admin", None])
def test_creating_a_key_with_bad_scopes_is_refused(web: Web, scopes: object) -> None:
    with pytest.raises(InvalidArgument, match="scopes"):
        web.client.app.state.web.keys.create("x", scopes)


def test_creating_a_key_with_a_bad_name_is_refused(web: Web) -> None:
    with pytest.raises(InvalidArgument, match="name"):
        web.client.app.state.web.keys.create("", ["read"])


def test_without_keys_a_loopback_client_needs_none(db_url: str) -> None:
    from fastapi.testclient import TestClient

    from statemachines import Engine
    from statemachines.web import create_app

    engine = Engine(db_url)
    try:
        app = create_app(engine)
        local = TestClient(app, client=("127.0.0.1", 50000))
        remote = TestClient(app, client=("203.0.113.9", 50000))
        assert local.get("/api/machines").status_code == 200
        assert remote.get("/api/machines").status_code == 401
        app.state.web.keys.create("first", ["read"])
        assert local.get("/api/machines").status_code == 401  # the first key ends the rule
    finally:
        engine.close()


def test_the_callback_and_health_routes_need_no_key(web: Web) -> None:
    assert web.client.get("/healthz").status_code == 200
    assert web.client.get("/metrics").status_code == 200
    assert web.client.get("/callbacks/smt1.x.y").status_code == 403  # the token decides, not a key
