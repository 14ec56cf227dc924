"""Callback URLs: `engine.callback_url` and /callbacks/{token} (JSON and the HTML form), on both
databases: single use, expiry, staleness, forgery, guard refusals, payload errors, escaping."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi", reason="the web service needs the [web] extra")

from web_support import BASE_URL, Web, make_web, orders

from statemachines import Engine
from statemachines.errors import ConfigurationError
from statemachines.examples import expense_approval


@pytest.fixture
def web(db_url: str) -> Iterator[Web]:
    """The service on a fresh database of each kind, with a key per scope."""
    yield from make_web(db_url)


def path_of(url: str) -> str:
    return urlsplit(url).path


def link(web: Web, iid: str = "A1", event: str = "PAY", ttl: str = "1h") -> str:
    return path_of(web.engine.callback_url(iid, event, ttl, base_url=BASE_URL))


# engine.callback_url ------------------------------------------------------------------------------
def test_callback_url_is_under_the_base_url_from_the_environment(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    web.start_order("A1")
    monkeypatch.setenv("STATEMACHINES_BASE_URL", "https://flows.example.com/app/")
    url = web.engine.callback_url("A1", "PAY")
    assert url.startswith("https://flows.example.com/app/callbacks/smt1.")


def test_callback_url_without_a_base_url_is_a_configuration_error(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    web.start_order("A1")
    monkeypatch.delenv("STATEMACHINES_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="STATEMACHINES_BASE_URL"):
        web.engine.callback_url("A1", "PAY")


@pytest.mark.parametrize("base", ["ftp://x", "flows.example.com", "https://x/?a=1", "https:///nohost"])
def test_callback_url_with_a_malformed_base_url_is_refused(web: Web, base: str) -> None:
    web.start_order("A1")
    with pytest.raises(ConfigurationError, match="base URL"):
        web.engine.callback_url("A1", "PAY", base_url=base)


# POST /callbacks/{token} with JSON ---------------------------------------------------------------
def test_posting_json_to_a_callback_url_applies_the_event(web: Web) -> None:
    web.start_order("A1")
    response = web.client.post(link(web), json={"amount": 40})
    assert response.status_code == 200 and response.json()["state"] == "paid"
    assert web.engine.history("A1")[-1].actor == "callback"


def test_a_callback_url_works_once_then_410(web: Web) -> None:
    web.start_order("A1")
    url = link(web, event="CANCEL")
    assert web.client.post(url).status_code == 200
    again = web.client.post(url)
    assert again.status_code == 410 and "used" in again.json()["detail"]


def test_an_expired_callback_url_is_410(web: Web) -> None:
    web.start_order("A1")
    url = link(web, ttl="1h")
    web.clock.advance("2h")
    response = web.client.post(url, json={"amount": 40})
    assert response.status_code == 410 and "expired" in response.json()["detail"]


def test_a_stale_callback_url_is_410(web: Web) -> None:
    web.start_order("A1")
    url = link(web, event="CANCEL")
    web.engine.send("A1", "PAY", {"amount": 40})
    response = web.client.post(url)
    assert response.status_code == 410 and "stale" in response.json()["detail"]


def test_a_forged_callback_url_is_403(web: Web) -> None:
    web.start_order("A1")
    url = link(web)
    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    response = web.client.post(forged, json={"amount": 40})
    assert response.status_code == 403 and response.headers["content-type"] == "application/problem+json"
    assert web.engine.get("A1").state == "pending"


def test_a_token_signed_with_another_secret_is_403(web: Web, db_url: str) -> None:
    web.start_order("A1")
    other = Engine(db_url, secret="another-secret-0123456789")
    other.register(orders)
    try:
        token = other.token("A1", "PAY")
    finally:
        other.close()
    assert web.client.post(f"/callbacks/{token}", json={"amount": 40}).status_code == 403


def test_garbage_instead_of_a_token_is_403(web: Web) -> None:
    assert web.client.post("/callbacks/garbage", json={}).status_code == 403


def test_a_guard_refusal_through_a_callback_is_409_and_spends_the_token(web: Web) -> None:
    web.start_order("A1")
    url = link(web)
    assert web.client.post(url, json={"amount": 1}).status_code == 409
    assert web.client.post(url, json={"amount": 40}).status_code == 410


def test_an_invalid_payload_through_a_callback_is_422_and_keeps_the_token(web: Web) -> None:
    web.start_order("A1")
    url = link(web)
    assert web.client.post(url, json={"amount": "lots"}).status_code == 422
    assert web.client.post(url, json={"amount": 40}).status_code == 200


def test_a_body_that_is_not_json_is_422(web: Web) -> None:
    web.start_order("A1")
    response = web.client.post(link(web), content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 422


# GET /callbacks/{token}: the form ----------------------------------------------------------------
def test_opening_a_callback_url_shows_a_form_from_the_payload_schema(web: Web) -> None:
    web.start_order("A1")
    response = web.client.get(link(web))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert '<input type="number" step="any" name="amount" required>' in response.text
    assert response.headers["cache-control"] == "no-store"


def test_opening_a_callback_url_spends_nothing(web: Web) -> None:
    web.start_order("A1")
    url = link(web)
    web.client.get(url)
    assert web.client.post(url, json={"amount": 40}).status_code == 200


def test_submitting_the_form_applies_the_event_and_says_so(web: Web) -> None:
    web.start_order("A1")
    response = web.client.post(link(web), data={"amount": "40"})
    assert response.status_code == 200 and "paid" in response.text
    assert web.engine.get("A1").context.paid == 40


def test_a_form_field_of_the_wrong_type_is_422_in_html(web: Web) -> None:
    web.start_order("A1")
    response = web.client.post(link(web), data={"amount": "forty"})
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")


def test_opening_a_used_callback_url_is_410_in_html(web: Web) -> None:
    web.start_order("A1")
    url = link(web, event="CANCEL")
    web.client.post(url)
    response = web.client.get(url)
    assert response.status_code == 410 and "already used" in response.text


def test_opening_a_forged_callback_url_is_403_in_html(web: Web) -> None:
    assert web.client.get("/callbacks/smt1.e30.AAAA").status_code == 403


def test_an_event_without_a_payload_model_gets_a_json_field(web: Web) -> None:
    web.start_order("A1")
    response = web.client.get(link(web, event="CANCEL"))
    assert '<textarea name="__payload__"' in response.text


def test_the_form_escapes_ids_and_state_names(web: Web) -> None:
    web.start_order("<script>alert(1)</script>")
    url = link(web, iid="<script>alert(1)</script>")
    text = web.client.get(url).text
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


# the example -------------------------------------------------------------------------------------
def test_expense_approval_is_approved_through_its_mailed_callback_url(
    web: Web, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = web.engine
    engine.register(expense_approval.expense_approval)
    context = {"employee": "dana", "amount": 42.0, "approver": "pat", "manager": "morgan"}
    engine.start("expense-approval", context, instance_id="exp-1")
    url = expense_approval.request_approval(engine, "exp-1", base_url=BASE_URL)
    mail = capsys.readouterr().out
    assert mail.startswith("To: pat") and url in mail
    page = web.client.get(path_of(url))
    assert 'name="by"' in page.text and 'name="comment"' in page.text
    response = web.client.post(path_of(url), data={"by": "pat", "comment": "fine"})
    assert response.status_code == 200
    snap = engine.get("exp-1")
    assert snap.state == "approved" and snap.context.decided_by == "pat" and snap.context.comment == "fine"
