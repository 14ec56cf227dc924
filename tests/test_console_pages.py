"""What the console's pages show and what their forms do, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from statemachines import Engine, machine, state
from tests.console_support import Service, form_token, login, service, start_orders


@pytest.fixture
def svc(engine: Engine) -> Service:
    return service(engine)


@pytest.fixture
def admin(svc: Service) -> TestClient:
    c = TestClient(svc.app)
    assert login(c, svc.admin).status_code == 303
    return c


def ids_in(html: str) -> list[str]:
    return re.findall(r'class="instance-link" href="[^"]*">([^<]*)</a>', html)


def test_machines_page_lists_each_machine_with_its_versions_and_counts_per_state(
    svc: Service, admin: TestClient
) -> None:
    ids = start_orders(svc.engine, 3)
    svc.engine.send(ids[0], "PAYMENT_RECEIVED", {"amount": 40})
    html = admin.get("/console/machines").text
    section = html[html.index('data-machine="order-lifecycle"') :]
    section = section[: section.index("</section>")]
    assert "1 version, latest" in section
    row = re.search(r'<tr data-state="pending">(.*?)</tr>', section, re.S)
    assert row is not None and re.findall(r'class="num active">(\d+)<', row.group(1)) == ["2"]
    assert '<svg class="diagram"' in section


def test_the_definition_diagram_carries_count_badges_and_links_to_the_filtered_list(
    svc: Service, admin: TestClient
) -> None:
    start_orders(svc.engine, 4)
    html = admin.get("/console/machines").text
    section = html[html.index('data-machine="order-lifecycle"') :]
    pending = re.search(r'<g id="state&#45;s0" class="node">(.*?)</g>\n</g>', section, re.S)
    assert pending is not None
    assert "/console/instances?machine=order-lifecycle&amp;state=pending" in pending.group(1)
    assert re.search(r">\s*4\s*</text>", pending.group(1))  # the badge


def test_instances_filter_by_machine_state_status_and_id_prefix(svc: Service, admin: TestClient) -> None:
    start_orders(svc.engine, 3, prefix="a_")
    start_orders(svc.engine, 2, prefix="ab")
    svc.engine.send("a_00", "PAYMENT_RECEIVED", {"amount": 40})
    svc.engine.cancel("a_01")
    get = lambda **p: ids_in(admin.get("/console/instances", params={"sort": "id", **p}).text)  # noqa: E731
    assert get(machine="order-lifecycle") == ["a_00", "a_01", "a_02", "ab00", "ab01"]
    assert get(state="processing") == ["a_00"]
    assert get(status="cancelled") == ["a_01"]
    assert get(id="a_") == ["a_00", "a_01", "a_02"]  # `_` is literal, not LIKE's wildcard
    assert get(id="ab", status="active") == ["ab00", "ab01"]
    assert get(machine="mailer") == []


def test_instances_sort_by_a_column_in_either_direction(svc: Service, admin: TestClient) -> None:
    start_orders(svc.engine, 3)
    assert ids_in(admin.get("/console/instances?sort=id&dir=desc").text) == [
        "order-02",
        "order-01",
        "order-00",
    ]
    assert ids_in(admin.get("/console/instances?sort=id&dir=asc").text) == [
        "order-00",
        "order-01",
        "order-02",
    ]


@pytest.mark.parametrize("sort", ["id", "machine", "state", "status", "version", "updated"])
@pytest.mark.parametrize("descending", [False, True])
def test_cursor_pages_visit_every_instance_once_in_order(
    svc: Service, clock: Any, sort: str, descending: bool
) -> None:
    from statemachines.web.console_queries import ConsoleQueries, Query

    for i, iid in enumerate(start_orders(svc.engine, 7)):
        clock.advance("1s")
        if i % 2:
            svc.engine.send(iid, "PAYMENT_RECEIVED", {"amount": 40})
    queries, seen, cursor = ConsoleQueries(svc.engine), [], None
    while True:
        page = queries.page(Query(sort=sort, descending=descending, cursor=cursor), limit=3)
        seen += page.rows
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 7 and len({s.id for s in seen}) == 7
    key = {"updated": "updated_at"}.get(sort, sort)
    keys = [(getattr(s, key), s.id) for s in seen]
    assert keys == sorted(keys, reverse=descending)


@pytest.mark.parametrize("query", ["cursor=not-a-cursor", "sort=colour", "status=sleeping", "dir=up"])
def test_a_bad_list_parameter_is_a_422_naming_it(admin: TestClient, query: str) -> None:
    r = admin.get(f"/console/instances?{query}")
    assert r.status_code == 422
    assert query.split("=")[0] in r.text


def test_a_cursor_of_another_sort_is_refused(svc: Service, admin: TestClient) -> None:
    from statemachines.web.console_queries import Query, encode_cursor

    cursor = encode_cursor(Query(sort="id"), "x", "x")
    r = admin.get(f"/console/instances?sort=state&cursor={cursor}")
    assert r.status_code == 422 and "another sort" in r.text


def test_failed_view_lists_failed_instances_with_why(svc: Service, admin: TestClient) -> None:
    svc.engine.start("mailer", instance_id="m1")
    svc.engine.start("mailer", instance_id="m2")
    svc.engine.send("m1", "GO")
    svc.engine.run_due()
    html = admin.get("/console/instances?status=failed").text
    assert "Failed instances" in html
    assert ids_in(html) == ["m1"]
    assert "smtp: connection refused" in html


def test_instance_page_shows_what_it_waits_on(svc: Service, admin: TestClient, clock: Any) -> None:
    svc.engine.start("mailer", instance_id="m1")
    html = admin.get("/console/instances/m1").text
    assert 'data-event="GO"' in html  # a send form per allowed event
    assert 'class="countdown"' in html and "1h" in html  # the timer, with its due time
    assert '<figure class="diagram" id="run-diagram"><svg' in html
    svc.engine.send("m1", "GO")
    svc.engine.run_due()
    html = admin.get("/console/instances/m1").text
    assert "smtp: connection refused" in html  # the effect's last error
    assert re.search(r'<td class="num">1</td>', html)  # one attempt


def test_history_shows_each_record_with_its_payload_on_demand(svc: Service, admin: TestClient) -> None:
    (iid,) = start_orders(svc.engine, 1)
    svc.engine.send(iid, "PAYMENT_RECEIVED", {"amount": 40}, actor="cashier")
    html = admin.get(f"/console/instances/{iid}").text
    row = re.search(r'<tr class="applied" data-seq="2">(.*?)</tr>', html, re.S)
    assert row is not None
    assert "PAYMENT_RECEIVED" in row.group(1) and "pending → processing" in row.group(1)
    assert "cashier" in row.group(1)
    assert "<details><summary>payload</summary>" in row.group(1) and "&#34;amount&#34;: 40" in row.group(1)


def test_sending_an_event_through_the_form_applies_it_as_the_console_user(
    svc: Service, admin: TestClient
) -> None:
    (iid,) = start_orders(svc.engine, 1)
    page = admin.get(f"/console/instances/{iid}")
    r = admin.post(
        f"/console/instances/{iid}/events",
        data={"csrf": form_token(page.text), "event": "PAYMENT_RECEIVED", "payload": '{"amount": 40}'},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert svc.engine.get(iid).state == "processing"
    assert svc.engine.history(iid)[-1].actor == "console:admin-key"
    assert "Event applied." in admin.get(r.headers["location"]).text


@pytest.mark.parametrize(
    ("event", "payload", "status", "text"),
    [
        ("PAYMENT_RECEIVED", "{not json", 422, "not valid JSON"),
        ("PAYMENT_RECEIVED", '{"amount": -1}', 422, "amount"),
        ("PAYMENT_RECEIVED", '{"amount": 1}', 409, "guard"),
        ("DELIVERED", "", 409, "DELIVERED"),
    ],
)
def test_a_refused_event_shows_the_page_again_with_the_error(
    svc: Service, admin: TestClient, event: str, payload: str, status: int, text: str
) -> None:
    (iid,) = start_orders(svc.engine, 1)
    page = admin.get(f"/console/instances/{iid}")
    r = admin.post(
        f"/console/instances/{iid}/events",
        data={"csrf": form_token(page.text), "event": event, "payload": payload},
    )
    assert r.status_code == status
    error = re.search(r'<div class="flash error" role="alert" id="error">(.*?)</div>', r.text, re.S)
    assert error is not None and text.lower() in error.group(1).lower()
    assert svc.engine.get(iid).state == "pending"


def test_cancel_with_a_reason(svc: Service, admin: TestClient) -> None:
    (iid,) = start_orders(svc.engine, 1)
    page = admin.get(f"/console/instances/{iid}")
    admin.post(f"/console/instances/{iid}/cancel", data={"csrf": form_token(page.text), "reason": "dup"})
    assert svc.engine.get(iid).status == "cancelled"
    last = svc.engine.history(iid)[-1]
    assert (last.outcome, last.reason, last.actor) == ("cancelled", "dup", "console:admin-key")


def test_retry_redrives_a_failed_instance(svc: Service, admin: TestClient) -> None:
    svc.engine.start("mailer", instance_id="m1")
    svc.engine.send("m1", "GO")
    svc.engine.run_due()
    page = admin.get("/console/instances/m1")
    assert 'id="retry-form"' in page.text
    admin.post("/console/instances/m1/retry", data={"csrf": form_token(page.text)})
    assert svc.engine.get("m1").status == "active"
    assert svc.engine.history("m1")[-1].outcome == "retried"


def test_the_fingerprint_changes_when_the_instance_does(svc: Service, admin: TestClient) -> None:
    (iid,) = start_orders(svc.engine, 1)
    before = admin.get(f"/console/instances/{iid}/fingerprint").json()["fingerprint"]
    assert admin.get(f"/console/instances/{iid}/fingerprint").json()["fingerprint"] == before
    with pytest.raises(Exception, match="guard"):
        svc.engine.send(iid, "PAYMENT_RECEIVED", {"amount": 1})  # a rejection is history too
    assert admin.get(f"/console/instances/{iid}/fingerprint").json()["fingerprint"] != before


def test_an_unknown_instance_is_a_404_page(admin: TestClient) -> None:
    assert admin.get("/console/instances/nobody").status_code == 404
    assert admin.get("/console/instances/nobody/fingerprint").status_code == 404


def ticket(version: str, extra: bool = False) -> Any:
    """A two-step machine; `review` may be rewound to once; version 2 adds a `triage` state."""
    states = {
        "open": state(on={"NEXT": "review", "CLOSE": "done"}),
        "review": state(on={"CLOSE": "done"}, max_rewinds=1),
        "done": state(final=True),
    }
    if extra:
        states["triage"] = state(on={"NEXT": "review"})
        states["open"] = state(on={"NEXT": "review", "CLOSE": "done", "TRIAGE": "triage"})
    return machine("ticket", initial="open", version=version, states=states)


@pytest.fixture
def tickets(svc: Service) -> Service:
    svc.engine.register(ticket("1"))
    return svc


def post_action(c: TestClient, iid: str, action: str, **data: str) -> Any:
    token = form_token(c.get(f"/console/instances/{iid}").text)
    return c.post(f"/console/instances/{iid}/{action}", data={"csrf": token, **data}, follow_redirects=False)


def test_the_instance_page_offers_rewind_and_migrate_forms(tickets: Service, admin: TestClient) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    html = admin.get("/console/instances/t1").text
    assert 'id="rewind-form"' in html and 'id="migrate-form"' in html
    assert 'type="checkbox" name="reopen"' in html


def test_rewind_to_a_state_name_restores_it_and_records_the_console_actor(
    tickets: Service, admin: TestClient
) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    tickets.engine.send("t1", "NEXT")
    r = post_action(admin, "t1", "rewind", to="open", reason="redo")
    assert r.status_code == 303 and r.headers["location"].endswith("/console/instances/t1?done=rewind")
    assert tickets.engine.get("t1").state == "open"
    last = tickets.engine.history("t1")[-1]
    assert (last.outcome, last.actor) == ("rewound", "console:admin-key")


def test_rewind_to_a_history_seq_restores_the_state_after_it(tickets: Service, admin: TestClient) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    tickets.engine.send("t1", "NEXT")
    first = tickets.engine.history("t1")[0].seq
    assert post_action(admin, "t1", "rewind", to=str(first)).status_code == 303
    assert tickets.engine.get("t1").state == "open"
    assert "Rewind done." in admin.get("/console/instances/t1?done=rewind").text


def test_rewinding_a_closed_instance_without_reopen_shows_the_error_and_changes_nothing(
    tickets: Service, admin: TestClient
) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    tickets.engine.send("t1", "CLOSE")
    r = post_action(admin, "t1", "rewind", to="open")
    assert r.status_code == 409 and "t1" in r.text and 'id="error"' in r.text
    assert tickets.engine.get("t1").status == "completed"


def test_rewinding_a_closed_instance_with_reopen_checked_makes_it_active_again(
    tickets: Service, admin: TestClient
) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    tickets.engine.send("t1", "CLOSE")
    assert post_action(admin, "t1", "rewind", to="open", reopen="yes").status_code == 303
    assert (tickets.engine.get("t1").state, tickets.engine.get("t1").status) == ("open", "active")


def test_a_rewind_past_max_rewinds_is_a_409_page_naming_the_limit(
    tickets: Service, admin: TestClient
) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    tickets.engine.send("t1", "NEXT")
    assert post_action(admin, "t1", "rewind", to="open").status_code == 303
    tickets.engine.send("t1", "NEXT")
    assert post_action(admin, "t1", "rewind", to="review").status_code == 303
    tickets.engine.send("t1", "CLOSE")
    r = post_action(admin, "t1", "rewind", to="review", reopen="yes")
    assert r.status_code == 409, r.text[r.text.find('id="error"'):][:300]
    assert "max_rewinds" in r.text
    assert tickets.engine.get("t1").state == "done"


def test_rewind_to_an_unknown_state_is_shown_as_an_error_not_a_500(
    tickets: Service, admin: TestClient
) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    r = post_action(admin, "t1", "rewind", to="nowhere")
    assert 400 <= r.status_code < 500 and 'id="error"' in r.text


def test_rewind_without_a_target_is_a_422_page(tickets: Service, admin: TestClient) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    r = post_action(admin, "t1", "rewind", to="  ")
    assert r.status_code == 422 and "rewind needs where to go back to" in r.text


def test_migrate_moves_the_instance_to_the_latest_version(tickets: Service, admin: TestClient) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    tickets.engine.register(ticket("2", extra=True))
    r = post_action(admin, "t1", "migrate", version="", reason="v2 rollout")
    assert r.status_code == 303 and r.headers["location"].endswith("?done=migrate")
    assert tickets.engine.get("t1").definition_version == "2"
    last = tickets.engine.history("t1")[-1]
    assert (last.outcome, last.actor) == ("migrated", "console:admin-key")


def test_migrate_to_an_unregistered_version_is_a_404_page(tickets: Service, admin: TestClient) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    r = post_action(admin, "t1", "migrate", version="9")
    assert r.status_code == 404 and "9" in r.text and 'id="error"' in r.text
    assert tickets.engine.get("t1").definition_version == "1"


def test_migrating_an_instance_already_at_the_version_is_a_409_saying_why(
    tickets: Service, admin: TestClient
) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    r = post_action(admin, "t1", "migrate", version="1")
    assert r.status_code == 409 and "not migrated" in r.text


def test_rewind_and_migrate_need_the_admin_scope(tickets: Service) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    tickets.engine.send("t1", "NEXT")
    writer = TestClient(tickets.app)
    login(writer, tickets.writer)
    assert post_action(writer, "t1", "rewind", to="open").status_code == 403
    assert post_action(writer, "t1", "migrate").status_code == 403
    assert tickets.engine.get("t1").state == "review"


def test_rewind_without_the_csrf_token_is_refused(tickets: Service, admin: TestClient) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    tickets.engine.send("t1", "NEXT")
    r = admin.post("/console/instances/t1/rewind", data={"to": "open"}, follow_redirects=False)
    assert r.status_code == 403 and tickets.engine.get("t1").state == "review"


def test_an_unknown_action_is_a_404(tickets: Service, admin: TestClient) -> None:
    tickets.engine.start("ticket", instance_id="t1")
    assert post_action(admin, "t1", "explode").status_code == 404


def test_mounted_under_a_prefix_links_and_redirects_follow_the_mount_point(svc: Service) -> None:
    from fastapi import FastAPI

    outer = FastAPI()
    outer.mount("/ops", svc.app)
    c = TestClient(outer)
    r = c.get("/ops/console/machines", follow_redirects=False)
    assert r.headers["location"] == "/ops/console/login?next=%2Fops%2Fconsole%2Fmachines"
    page = c.get("/ops/console/login")
    assert (
        'action="/ops/console/login"' in page.text and 'href="/ops/console/static/console.css"' in page.text
    )
    r = c.post(
        "/ops/console/login",
        data={"key": svc.admin, "csrf": form_token(page.text), "next": "/ops/console/instances"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/ops/console/instances"
    (iid,) = start_orders(svc.engine, 1)
    listing = c.get("/ops/console/instances").text
    assert f'href="/ops/console/instances/{iid}"' in listing
    assert c.get("/ops/console/static/console.js").status_code == 200


def test_a_long_history_shows_the_newest_records_and_says_so(
    svc: Service, admin: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from statemachines.web import console_pages

    monkeypatch.setattr(console_pages, "HISTORY_SHOWN", 2)
    (iid,) = start_orders(svc.engine, 1)
    svc.engine.send(iid, "PAYMENT_RECEIVED", {"amount": 40})
    svc.engine.send(iid, "OUT_OF_STOCK")
    html = admin.get(f"/console/instances/{iid}").text
    assert re.findall(r'data-seq="(\d+)"', html) == ["3", "2"]
    assert "The newest 2 of\n  3 records" in html


def test_the_machines_page_draws_again_when_counts_change(svc: Service, admin: TestClient) -> None:
    start_orders(svc.engine, 1)
    first = admin.get("/console/machines").text
    assert admin.get("/console/machines").text == first  # same counts: the same drawing
    start_orders(svc.engine, 1, prefix="more-")
    section = admin.get("/console/machines").text.split('data-machine="order-lifecycle"')[1]
    pending = re.search(r'<g id="state&#45;s0" class="node">(.*?)</g>\n</g>', section, re.S)
    assert pending is not None and re.search(r">\s*2\s*</text>", pending.group(1))


def test_a_statechart_shows_its_configuration_and_counts_in_its_atomic_states(
    svc: Service, admin: TestClient
) -> None:
    from tests.chart_machines import three_regions

    svc.engine.register(three_regions())
    svc.engine.start("three", instance_id="c1")
    svc.engine.send("c1", "GO")  # every region: idle -> busy.one
    html = admin.get("/console/instances/c1").text
    assert "<h2>Configuration</h2>" in html and "<code>main.r1.busy.one</code>" in html
    machines = admin.get("/console/machines").text.split('data-machine="three"')[1].split("</section>")[0]
    row = re.search(r'<tr data-state="main.r2.busy.one">(.*?)</tr>', machines, re.S)
    assert row is not None and re.findall(r'class="num active">(\d+)<', row.group(1)) == ["1"]
    assert "main.r2.busy.one" in state_links(machines)  # its node on the diagram links there
    r = admin.get("/console/instances", params={"state": "main.r3.busy"})
    assert ids_in(r.text) == ["c1"]  # a state at any depth


def state_links(html: str) -> str:
    """The `state=` of every link in a page (the diagram's nodes link to their instances)."""
    return " ".join(re.findall(r"state=([^\"&]*)", html)).replace("%2E", ".")


def test_the_list_pages_fifty_at_a_time_with_a_next_and_a_first_page_link(
    svc: Service, admin: TestClient
) -> None:
    start_orders(svc.engine, 51)
    first = admin.get("/console/instances?sort=id").text
    assert len(ids_in(first)) == 50 and 'id="first-page"' not in first
    next_link = re.search(r'id="next-page" href="([^"]+)"|href="([^"]+)" id="next-page"', first)
    assert next_link is not None
    second = admin.get((next_link.group(1) or next_link.group(2)).replace("&amp;", "&")).text
    assert ids_in(second) == ["order-50"]
    assert 'id="next-page"' not in second and 'id="first-page"' in second
