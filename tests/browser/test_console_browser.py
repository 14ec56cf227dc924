"""The console in a real browser: what an operator does, click by click, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Live, log_in, screenshot
from tests.console_support import XSS, XSS_EVENT, XSS_ID, hostile, start_orders

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

RUN_CURRENT_FILL = "#fde68a"  # diagrams.dot.CURRENT_STYLE["active"]: the current state of a run


def test_log_in_with_a_key_and_see_instance_counts_on_the_machines_page(
    page: Any, live: Live, tmp_path: Path, db_url: str
) -> None:
    ids = start_orders(live.engine, 5)
    for iid in ids[:2]:
        live.engine.send(iid, "PAYMENT_RECEIVED", {"amount": 40})
    live.engine.send(ids[2], "CANCEL")
    for iid in ("mail-1", "mail-2"):
        live.engine.start("mailer", instance_id=iid)
    live.engine.send("mail-1", "GO")
    live.engine.run_due()  # mail-1's effect fails: the instance is failed in `sending`
    log_in(page, live.svc.reader)
    section = page.locator('section[data-machine="order-lifecycle"]')
    assert section.locator('tr[data-state="pending"] td.active').inner_text() == "2"
    assert section.locator('tr[data-state="processing"] td.active').inner_text() == "2"
    processing = section.locator("svg g#state-s1")  # the diagram's node, with its badge
    assert processing.locator("text", has_text="2").count() >= 1
    screenshot(page, "console-machines.png", tmp_path, db_url)
    mailer = page.locator('section[data-machine="mailer"]')
    assert mailer.locator('tr[data-state="sending"] td.failed').inner_text() == "1"
    assert mailer.locator("svg g.node", has_text="1 failed").count() == 1
    processing.locator("a").first.click()  # a state on the diagram opens its instances
    page.wait_for_url("**/console/instances?machine=order-lifecycle&state=processing")
    assert sorted(page.locator("a.instance-link").all_inner_texts()) == ids[:2]
    assert page.dialogs == []


def test_filter_and_sort_the_instances_list(page: Any, live: Live, tmp_path: Path, db_url: str) -> None:
    ids = start_orders(live.engine, 4)
    live.engine.send(ids[1], "PAYMENT_RECEIVED", {"amount": 40})
    live.engine.start("mailer", instance_id="mail-1")
    log_in(page, live.svc.reader)
    page.click("header nav >> text=Instances")
    page.select_option("#f-machine", "order-lifecycle")
    page.fill("#f-state", "pending")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**state=pending**")
    page.click('th a[data-sort="id"]')
    page.wait_for_url("**sort=id**")
    assert page.locator("a.instance-link").all_inner_texts() == [ids[0], ids[2], ids[3]]
    page.click('th a[data-sort="id"]')  # again: the other direction
    page.wait_for_url("**dir=desc**")
    assert page.locator("a.instance-link").all_inner_texts() == [ids[3], ids[2], ids[0]]
    page.goto("/console/instances?sort=id&dir=asc")
    screenshot(page, "console-instances.png", tmp_path, db_url)
    page.fill("#f-id", "mail")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**id=mail**")
    assert page.locator("a.instance-link").all_inner_texts() == ["mail-1"]


def test_send_an_event_through_its_form_and_see_state_history_and_diagram_change(
    page: Any, live: Live, tmp_path: Path, db_url: str
) -> None:
    (iid,) = start_orders(live.engine, 1)
    log_in(page, live.svc.writer)
    page.goto("/console/instances")
    page.click(f"a.instance-link >> text={iid}")
    page.wait_for_url(f"**/console/instances/{iid}")
    assert page.inner_text("#state") == "pending"
    rows_before = page.locator("#history tbody tr").count()
    current = page.locator(f'#run-diagram g.node:has(path[fill="{RUN_CURRENT_FILL}"]) text').first
    assert current.text_content() == "pending"  # the run diagram marks the current state
    form = page.locator('form.send[data-event="PAYMENT_RECEIVED"]')
    form.locator("textarea").fill('{"amount": 40}')
    form.locator("button").click()
    page.wait_for_url(f"**/console/instances/{iid}?done=events")
    assert page.inner_text("#state") == "processing"
    assert page.locator("#notice").inner_text() == "Event applied."
    assert page.locator("#history tbody tr").count() == rows_before + 1
    newest = page.locator("#history tbody tr").first
    assert "PAYMENT_RECEIVED" in newest.inner_text() and "console:write-key" in newest.inner_text()
    newest.locator("summary").click()  # the payload, on demand
    assert '"amount": 40' in newest.locator("pre").inner_text()
    assert current.text_content() == "processing"  # ... and now the new one
    screenshot(page, "console-instance.png", tmp_path, db_url)


def test_the_instance_page_refreshes_itself_within_two_seconds_of_a_change(page: Any, live: Live) -> None:
    (iid,) = start_orders(live.engine, 1)
    log_in(page, live.svc.reader)
    page.goto(f"/console/instances/{iid}")
    assert page.inner_text("#state") == "pending"
    time.sleep(0.3)
    changed = time.monotonic()
    live.engine.send(iid, "PAYMENT_RECEIVED", {"amount": 40}, actor="elsewhere")
    expect(page.locator("#state")).to_have_text("processing", timeout=4000)
    assert time.monotonic() - changed < 2.5  # 1 s polling, plus the reload
    assert "elsewhere" in page.locator("#history tbody tr").first.inner_text()


def test_a_form_answered_slowly_is_not_cut_short_by_the_self_refresh(page: Any, live: Live) -> None:
    """The page polls for changes every second and reloads itself on one; the change a form's
    own POST makes must not reload the page under the form's answer (which carries its notice)."""
    (iid,) = start_orders(live.engine, 1)
    log_in(page, live.svc.writer)
    page.goto(f"/console/instances/{iid}")

    def slow_answer(route: Any) -> None:
        answer = route.fetch(max_redirects=0)  # the event is applied now (answer: a redirect)...
        time.sleep(2.5)  # ... and its answer comes after two rounds of polling
        route.fulfill(response=answer)

    page.route(re.compile(r".*/events$"), slow_answer)
    form = page.locator('form.send[data-event="PAYMENT_RECEIVED"]')
    form.locator("textarea").fill('{"amount": 40}')
    form.locator("button").click()
    page.wait_for_url(f"**/console/instances/{iid}?done=events")
    assert page.locator("#notice").inner_text() == "Event applied."
    assert page.inner_text("#state") == "processing"


def test_cancel_an_instance_from_its_page(page: Any, live: Live) -> None:
    (iid,) = start_orders(live.engine, 1)
    log_in(page, live.svc.writer)
    page.goto(f"/console/instances/{iid}")
    page.fill('#cancel-form input[name="reason"]', "customer called")
    page.click("#cancel-form button")
    page.wait_for_url("**done=cancel**")
    assert page.inner_text("#status") == "cancelled"
    assert "customer called" in page.locator("#history tbody tr").first.inner_text()
    assert page.locator("#cancel-form").count() == 0
    assert live.engine.get(iid).status == "cancelled"


def test_rewind_an_instance_from_its_page_and_see_a_refusal_as_a_message(page: Any, live: Live) -> None:
    (iid,) = start_orders(live.engine, 1)
    live.engine.send(iid, "PAYMENT_RECEIVED", {"amount": 40})
    log_in(page, live.svc.admin)
    page.goto(f"/console/instances/{iid}")
    assert page.inner_text("#state") == "processing"
    page.fill('#rewind-form input[name="to"]', "pending")
    page.fill('#rewind-form input[name="reason"]', "payment bounced")
    page.click("#rewind-form button")
    page.wait_for_url("**done=rewind**")
    assert page.inner_text("#state") == "pending"
    assert "rewound" in page.locator("#history tbody tr").first.inner_text()
    page.fill('#migrate-form input[name="version"]', "no-such-version")
    page.click("#migrate-form button")
    expect(page.locator("#error")).to_contain_text("no-such-version")  # the page, not a 500
    assert live.engine.get(iid).state == "pending"


def test_follow_a_callback_url_and_approve(page: Any, live: Live) -> None:
    live.engine.start(
        "expense-approval",
        {"employee": "dana", "amount": 42.0, "approver": "pat", "manager": "morgan"},
        instance_id="exp-1",
    )
    url = live.engine.callback_url("exp-1", "APPROVE", ttl="1h")
    assert url.startswith(live.url + "/callbacks/")
    page.goto(url)  # the approver's link: no key, no login
    page.fill('input[name="by"]', "pat")
    page.fill('[name="comment"]', "fine by me")
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_load_state()
    assert live.engine.get("exp-1").state == "approved"
    log_in(page, live.svc.reader)
    page.goto("/console/instances/exp-1")
    assert page.inner_text("#state") == "approved"
    assert "fine by me" in page.inner_text("#context")


def test_markup_in_names_renders_as_text_and_no_script_runs(page: Any, live: Live) -> None:
    live.engine.register(hostile)
    live.engine.start("hostile<i>name</i>", {"note": XSS}, instance_id=XSS_ID)
    log_in(page, live.svc.writer)
    machine = page.locator('section[data-machine="hostile<i>name</i>"]')
    assert machine.locator("h2").inner_text() == "hostile<i>name</i>"
    assert machine.locator(f'tr[data-state="{XSS}"] td a').inner_text() == XSS
    page.goto("/console/instances?machine=hostile%3Ci%3Ename%3C%2Fi%3E")
    assert page.locator("a.instance-link").all_inner_texts() == [XSS_ID]
    page.click("a.instance-link")
    page.wait_for_selector("#instance-id")
    assert page.inner_text("#instance-id") == XSS_ID
    assert page.inner_text("#state") == XSS
    assert XSS in page.inner_text("#context")
    form = page.locator("form.send").first
    assert form.locator(".event-name").inner_text() == XSS_EVENT
    form.locator(".event-name").hover()
    form.locator("button").click()  # the event named with markup is sent like any other
    page.wait_for_selector("#notice")
    assert page.inner_text("#state") == "<img src=y onerror=alert(4)>"
    page.wait_for_timeout(300)
    assert page.dialogs == []


def test_timer_countdowns_tick_from_the_engine_clock(page: Any, live: Live) -> None:
    live.engine.start("mailer", instance_id="mail-1")
    log_in(page, live.svc.reader)
    page.goto("/console/instances/mail-1")
    countdown = page.locator(".countdown")
    assert countdown.get_attribute("data-due") == "2030-01-01T01:00:00+00:00"  # the manual clock's now + 1h
    expect(countdown).to_have_text(re.compile(r"^59m \d\ds$"), timeout=2500)  # counting down
