"""The console's doors: login with a key into a signed HttpOnly SameSite=Strict cookie, CSRF on
every form, scopes, forged and stale sessions, escaping. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from statemachines import Engine
from statemachines.web.console_session import COOKIE, Sessions
from statemachines.web.keys import KeyStore
from tests.console_support import (
    SESSION_SECRET,
    XSS,
    XSS_EVENT,
    XSS_ID,
    Service,
    form_token,
    hostile,
    login,
    service,
    start_orders,
)


@pytest.fixture
def svc(engine: Engine) -> Service:
    return service(engine)


@pytest.fixture
def client(svc: Service) -> Iterator[TestClient]:
    with TestClient(svc.app) as c:
        yield c


def logged_in(svc: Service, secret: str) -> TestClient:
    c = TestClient(svc.app)
    assert login(c, secret).status_code == 303
    return c


def test_a_page_without_a_session_redirects_to_the_login_form(client: TestClient) -> None:
    r = client.get("/console/instances?status=failed", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=%2Fconsole%2Finstances%3Fstatus%3Dfailed"


def test_logging_in_with_a_key_sets_a_signed_httponly_samesite_strict_cookie(svc: Service) -> None:
    c = TestClient(svc.app)
    r = login(c, svc.reader)
    assert r.status_code == 303 and r.headers["location"] == "/console/machines"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert svc.reader not in cookie  # the key itself never goes into the cookie
    assert c.get("/console/machines").status_code == 200


def test_a_wrong_key_is_refused_with_401_and_no_session(client: TestClient, svc: Service) -> None:
    r = login(client, svc.reader[:-4] + "AAAA")
    assert r.status_code == 401
    assert "That key is not valid" in r.text
    assert COOKIE not in r.cookies
    assert client.get("/console/machines", follow_redirects=False).status_code == 303


def test_the_login_form_without_its_csrf_token_is_refused_with_403(client: TestClient, svc: Service) -> None:
    client.get("/console/login")
    r = client.post("/console/login", data={"key": svc.admin}, follow_redirects=False)
    assert r.status_code == 403
    assert COOKIE not in r.cookies


def test_login_never_redirects_off_the_console(client: TestClient, svc: Service) -> None:
    page = client.get("/console/login")
    r = client.post(
        "/console/login",
        data={"key": svc.reader, "csrf": form_token(page.text), "next": "https://evil.example/x"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/console/machines"


def test_a_forged_session_cookie_gets_401(svc: Service) -> None:
    key = KeyStore(svc.engine).verify(svc.admin)
    assert key is not None
    other = Sessions(b"another-secret-another-secret-00", KeyStore(svc.engine))
    for forged in (other.issue(key.id), "garbage", Sessions(SESSION_SECRET, None).issue(key.id) + "x"):
        c = TestClient(svc.app, cookies={COOKIE: forged})
        r = c.get("/console/machines", follow_redirects=False)
        assert r.status_code == 401, forged
        assert "Log in" in r.text


def test_an_expired_session_gets_401(svc: Service) -> None:
    key = KeyStore(svc.engine).verify(svc.admin)
    assert key is not None
    stale = Sessions(SESSION_SECRET, KeyStore(svc.engine), ttl=-1).issue(key.id)
    r = TestClient(svc.app, cookies={COOKIE: stale}).get("/console/machines", follow_redirects=False)
    assert r.status_code == 401
    assert "expired" in r.text


def test_revoking_a_key_ends_its_console_sessions(svc: Service) -> None:
    c = logged_in(svc, svc.writer)
    keys = KeyStore(svc.engine)
    key = keys.verify(svc.writer)
    assert key is not None and keys.revoke(key.id)
    assert c.get("/console/machines", follow_redirects=False).status_code == 401


def test_a_read_key_cannot_send_events_403(svc: Service) -> None:
    (iid,) = start_orders(svc.engine, 1)
    c = logged_in(svc, svc.reader)
    page = c.get(f"/console/instances/{iid}")
    assert "needs the write scope" in page.text
    r = c.post(
        f"/console/instances/{iid}/events",
        data={"csrf": form_token(page.text), "event": "CANCEL"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert svc.engine.get(iid).state == "pending"


def test_an_action_without_a_session_gets_401(client: TestClient, svc: Service) -> None:
    (iid,) = start_orders(svc.engine, 1)
    r = client.post(f"/console/instances/{iid}/cancel", data={"csrf": "x"}, follow_redirects=False)
    assert r.status_code == 401
    assert svc.engine.get(iid).status == "active"


@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
def test_a_form_with_a_missing_or_wrong_csrf_token_gets_403(svc: Service, csrf: str | None) -> None:
    (iid,) = start_orders(svc.engine, 1)
    c = logged_in(svc, svc.admin)
    data = {"event": "CANCEL"} if csrf is None else {"event": "CANCEL", "csrf": csrf}
    r = c.post(f"/console/instances/{iid}/events", data=data, follow_redirects=False)
    assert r.status_code == 403
    assert "CSRF" in r.text
    assert svc.engine.get(iid).state == "pending"


def test_a_csrf_token_of_another_session_gets_403(svc: Service) -> None:
    (iid,) = start_orders(svc.engine, 1)
    mine, theirs = logged_in(svc, svc.admin), logged_in(svc, svc.admin)
    their_token = form_token(theirs.get(f"/console/instances/{iid}").text)
    r = mine.post(f"/console/instances/{iid}/cancel", data={"csrf": their_token}, follow_redirects=False)
    assert r.status_code == 403
    assert svc.engine.get(iid).status == "active"


def test_pages_carry_a_script_src_self_content_security_policy(svc: Service) -> None:
    r = logged_in(svc, svc.reader).get("/console/machines")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


def test_markup_in_names_ids_contexts_and_payloads_is_escaped(svc: Service) -> None:
    engine = svc.engine
    engine.register(hostile)
    engine.start("hostile<i>name</i>", {"note": XSS}, instance_id=XSS_ID)
    engine.send(XSS_ID, XSS_EVENT, {"why": XSS})
    c = logged_in(svc, svc.reader)
    pages = [
        c.get("/console/machines").text,
        c.get("/console/instances", params={"machine": "hostile<i>name</i>"}).text,
        c.get("/console/instances", params={"state": XSS, "id": XSS_ID}).text,
        c.get("/console/instances/" + XSS_ID.replace("/", "%2F")).text,
    ]
    for html in pages:
        for attack in (XSS, XSS_ID, XSS_EVENT, "<i>name</i>", "<img src=y onerror=alert(4)>"):
            assert attack not in html
        assert "<img" not in html and "<script>" not in html and "<b " not in html
    instance = pages[3]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in instance  # shown, as text
    assert "&lt;b onmouseover=alert(3)&gt;GO&lt;/b&gt;" in instance


LOOPBACK = ("127.0.0.1", 50000)


def test_without_any_key_loopback_browsers_get_a_local_session(engine: Engine) -> None:
    from statemachines.examples.orders import orders
    from statemachines.web import create_app

    engine.register(orders)
    (iid,) = start_orders(engine, 1)
    c = TestClient(create_app(engine, session_secret=SESSION_SECRET), client=LOOPBACK)
    page = c.get(f"/console/instances/{iid}")
    assert page.status_code == 200 and "no keys: loopback only" in page.text
    assert c.post(f"/console/instances/{iid}/cancel", data={"csrf": "wrong"}).status_code == 403
    c.post(f"/console/instances/{iid}/cancel", data={"csrf": form_token(page.text)})
    assert engine.history(iid)[-1].actor == "console:local"


def test_without_any_key_other_addresses_must_log_in_and_are_told_how_to_make_a_key(engine: Engine) -> None:
    from statemachines.web import create_app

    c = TestClient(create_app(engine, session_secret=SESSION_SECRET))
    assert c.get("/console/machines", follow_redirects=False).status_code == 303
    assert "statemachines keys create" in c.get("/console/login").text


def test_creating_the_first_key_ends_local_sessions(engine: Engine) -> None:
    from statemachines.web import create_app

    app = create_app(engine, session_secret=SESSION_SECRET)
    c = TestClient(app, client=LOOPBACK)
    assert c.get("/console/machines").status_code == 200
    app.state.web.keys.create("first", ["admin"])
    assert c.get("/console/machines", follow_redirects=False).status_code == 401


@pytest.mark.parametrize(
    "name", ["..%2Fconsole.py", "%2E%2E%2Fconsole_session.py", ".hidden.css", "nope.css"]
)
def test_static_serves_only_the_console_files(client: TestClient, name: str) -> None:
    assert client.get(f"/console/static/{name}").status_code == 404
    assert client.get("/console/static/console.css").headers["content-type"].startswith("text/css")
