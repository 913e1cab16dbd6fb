"""The dashboard in headless Chromium against a real gateway: sign-in, the upload and its
report, live progress from the event stream, the lifecycle buttons, tables, exports, the
resource pages, a phone-sized screen and /docs. Each test's browser steps run in a worker
thread (``page.run``) while the test's event loop serves the gateway; what the page shows
is compared with what the API answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import trio
from conftest import API_KEY, contacts_csv
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from tcp_proxy import TcpProxy
from webhook_receiver import receiving

from browser.dashboard_driver import PHONE, Page
from browser.sim_plan import FAST, LONG, PACED

pytestmark = pytest.mark.timeout(60)


def open_signed_in(ui: Page, fragment: str = "") -> None:
    ui.open(fragment)
    ui.sign_in(API_KEY)
    ui.wait(ui.signed_in, "not signed in")


def open_campaign(ui: Page, campaign_id: str) -> None:
    open_signed_in(ui, f"#/campaigns/{campaign_id}")
    ui.wait(lambda: ui.css('[data-field="status"]').get_attribute("data-status"),
            "the campaign page did not load")


async def finished_campaign(api, create_campaign, csv: bytes, **fields) -> dict:
    """A campaign of fast numbers, run to its end through the API."""
    created = await create_campaign(csv, **fields)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert (await api.post(f"/api/v1/campaigns/{campaign_id}/start")).status_code == 200
    with trio.fail_after(20):
        while (campaign := (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()
               )["status"] != "completed":
            await trio.sleep(0.1)
    return campaign


# Sign-in


async def test_sign_in_refuses_a_bad_key_and_keeps_the_key_out_of_urls_and_storage(page):
    await page.run(_sign_in)


def _sign_in(ui: Page) -> None:
    # The refused key's 401 is the one error the console may show.
    ui.expected_console.append(r"/api/v1/call-limits - Failed to load resource: .* 401")
    ui.open()
    ui.wait(lambda: ui.css("h1").text == "Sign in")
    assert ui.driver.title.startswith("Sign in")
    assert not ui.signed_in()

    ui.sign_in("not a key")  # refused before any request: not the shape of a key
    ui.wait(lambda: "not an API key" in ui.text("#api-key-error"))
    ui.sign_in("gw_" + "x" * 43)  # the shape of one, but unknown
    ui.wait(lambda: "did not accept" in ui.text("#api-key-error"))
    assert "invalid API key" in ui.text("#api-key-error")
    assert ui.css("#api-key").get_attribute("aria-invalid") == "true"
    assert not ui.signed_in()

    ui.sign_in(API_KEY)
    ui.wait(ui.signed_in, "the good key did not sign in")
    ui.wait(lambda: ui.css("h1").text == "Campaigns")
    assert ui.text("#account-caps") == "Account caps: 20 concurrent calls, 10000 per minute"
    assert API_KEY not in ui.driver.page_source
    assert ui.storage() == {"local": {}, "session": {}, "cookie": ""}  # memory only
    ui.driver.refresh()  # memory is gone with the page: signed out
    ui.wait(lambda: ui.css("h1").text == "Sign in")

    ui.sign_in(API_KEY, remember=True)  # "stay signed in in this tab": sessionStorage
    ui.wait(ui.signed_in)
    stored = ui.storage()
    assert stored["local"] == {} and stored["cookie"] == ""
    assert list(stored["session"].values()) == [API_KEY]
    ui.driver.refresh()
    ui.wait(lambda: ui.signed_in() and ui.css("h1").text == "Campaigns",
            "a reload in the same tab did not keep the sign-in")
    ui.button("Sign out").click()
    ui.wait(lambda: ui.css("h1").text == "Sign in")
    ui.wait_message("Signed out")
    assert ui.storage() == {"local": {}, "session": {}, "cookie": ""}
    assert not ui.signed_in()

    assert ui.driver.get_cookies() == []
    requests = ui.network_requests()
    assert requests, "no request was logged"
    for request in requests:
        sent = request["request"]
        assert API_KEY not in sent["url"] and API_KEY not in request.get("documentURL", "")
        assert not sent["headers"].get("Referer")  # no-referrer: nothing, not even the page
        assert not [k for k in sent["headers"] if k.lower() == "cookie"]
    api_calls = [r["request"] for r in requests if "/api/v1/" in r["request"]["url"]]
    assert {r["headers"].get("Authorization") for r in api_calls
            if r["url"].endswith("/call-limits")} >= {f"Bearer {API_KEY}"}
    assert API_KEY not in ui.driver.current_url
    assert not [line for line in ui.console() if API_KEY in line["message"]]


# Creating a campaign from a CSV


BAD_ROWS_CSV = b"""phone_number,first_name
+12122000001,ann
not-a-number,bob
+12122000001,again
,nobody
+12122000002,cy,extra
(212) 200-0004,dee
+12122000005,eve
"""


async def test_upload_shows_the_import_report_the_api_gives(page, api, agent_id, number_id,
                                                             create_campaign, tmp_path):
    csv_path = tmp_path / "contacts.csv"
    csv_path.write_bytes(BAD_ROWS_CSV)
    shown = await page.run(_upload, csv_path)
    # The same file through the API: the report the page showed is the API's.
    reference = (await create_campaign(BAD_ROWS_CSV)).json()["import_report"]
    listed = (await api.get("/api/v1/campaigns")).json()["data"]
    created = next(c for c in listed if c["name"] == "From the browser")
    assert shown["accepted"] == reference["rows_accepted"] == 3
    assert shown["rejected"] == reference["rows_rejected"] == 4
    assert shown["counts"] == {k: v for k, v in reference["rejected_counts"].items()}
    assert shown["rows"] == [[str(r["row"]), r["reason"].replace("_", " ").capitalize(),
                              r["message"]] for r in reference["rejected"]]
    assert created["contact_counts"]["total"] == 3
    assert created["max_concurrent_calls"] == 2 and created["retries_per_contact"] == 1
    assert created["status"] == "draft"


def _upload(ui: Page, csv_path: Path) -> dict:
    # A refused field is shown beside it (the API's 400 names it).
    ui.expected_console.append(r"/api/v1/campaigns - Failed to load resource: .* 400")
    open_signed_in(ui, "#/campaigns/new")
    ui.wait(lambda: ui.css("h1").text == "New campaign")
    ui.wait(lambda: ui.all("#c-agent option") and ui.all("#c-number option"))
    ui.fill("Name", "From the browser")
    ui.labelled("Contacts (CSV)").send_keys(str(csv_path))
    ui.fill("Max concurrent calls", "2")
    ui.fill("Retries per contact", "1")
    ui.fill("Retry delay (seconds)", "10")
    ui.button("Create campaign").click()
    ui.wait(lambda: ui.text("#c-delay-error"), "no error beside the retry delay")
    assert ui.text("#c-delay-error") == "retry_delay_seconds: must be at least 60 (got 10)"
    assert ui.labelled("Retry delay (seconds)").get_attribute("aria-invalid") == "true"
    assert ui.driver.switch_to.active_element == ui.labelled("Retry delay (seconds)")
    assert "The campaign was not created" in ui.alert_message()

    ui.fill("Retry delay (seconds)", "600")
    ui.button("Create campaign").click()
    ui.wait(lambda: ui.all('[data-report="rows_accepted"]'), "no import report")
    assert ui.all("[aria-invalid]") == []
    ui.wait_message("created: 3 contacts imported, 4 rows rejected")
    shown = {
        "accepted": ui.count('[data-report="rows_accepted"]'),
        "rejected": ui.count('[data-report="rows_rejected"]'),
        "counts": {cell.get_attribute("data-reason"): int(cell.text)
                   for cell in ui.all('table[data-table="rejected-counts"] td[data-reason]')},
        "rows": ui.table_rows("rejected"),
    }
    ui.screenshot("import-report")
    return shown


# Live progress


async def test_live_progress_moves_with_the_event_stream(page, api, create_campaign):
    created = await create_campaign(contacts_csv(12, start=PACED), max_concurrent_calls=3)
    campaign_id = created.json()["id"]
    seen = await page.run(_watch_progress, campaign_id)
    final = (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()
    calls = (await api.get(f"/api/v1/campaigns/{campaign_id}/calls")).json()
    assert final["status"] == "completed"
    assert seen["completed"][-1] == final["contact_counts"]["completed"] == 11
    assert seen["failed"] == final["contact_counts"]["failed"] == 1  # +12122010007: busy
    outcomes = [c["outcome"] for c in calls["data"]]
    assert seen["outcomes"] == {"answered": outcomes.count("answered"),
                                "busy": outcomes.count("busy")} == {"answered": 11, "busy": 1}
    # The count went up in steps as the calls ended, never down.
    steps = seen["completed"]
    assert steps == sorted(steps) and len(set(steps)) >= 3, steps
    assert steps[0] < 11


def _watch_progress(ui: Page, campaign_id: str) -> dict:
    open_campaign(ui, campaign_id)
    ui.wait(lambda: ui.css("[data-stream-state]").get_attribute("data-stream-state") == "live")
    assert ui.css('[data-field="status"]').get_attribute("data-status") == "draft"
    ui.button("Start").click()
    ui.wait_message("is running")
    completed: list[int] = []

    def done() -> bool:
        value = ui.count('[data-count="completed"]')
        if value >= 0 and (not completed or completed[-1] != value):
            completed.append(value)
        return ui.css("[data-stream-state]").get_attribute("data-stream-state") == "ended"

    ui.wait(done, "the stream did not end", timeout=30)
    done()
    ui.wait(lambda: ui.css('[data-field="status"]').get_attribute("data-status") == "completed")
    assert ui.text('[data-field="progress"]') == "12 of 12 contacts done"
    assert ui.css("progress").get_attribute("value") == "12"
    lines = ui.all("svg.outcome-chart polyline")
    assert [line.get_attribute("data-outcome") for line in lines] == ["answered", "busy"]
    for line in lines:
        points = line.get_attribute("points").split()
        assert len(points) >= 5 and int(line.get_attribute("data-points")) == len(points)
        heights = [float(point.split(",")[1]) for point in points]
        assert heights == sorted(heights, reverse=True)  # counts only grow: y goes up
    # The text alternative: the chart's figures in a table, and its description.
    assert len(ui.all("table.chart-data tbody tr")) >= 5
    description = ui.css("svg.outcome-chart desc").get_attribute("textContent")
    assert "Latest: Answered 11, Busy 1." in description
    assert [li.text for li in ui.all(".legend li")] == ["Answered", "Busy"]
    ui.wait(lambda: ui.page_info("calls").endswith("12 calls"))
    ui.screenshot("campaign-page")
    return {"completed": completed, "failed": ui.count('[data-count="failed"]'),
            "outcomes": {o: ui.count(f'[data-outcome="{o}"]') for o in ("answered", "busy")}}


# Start, pause, resume, stop


async def test_lifecycle_buttons_follow_the_status(page, api, create_campaign):
    created = await create_campaign(contacts_csv(20, start=LONG), max_concurrent_calls=2)
    campaign_id = created.json()["id"]

    async def status() -> str:
        return (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()["status"]

    def act(ui: Page, button: str, shown: str) -> dict[str, bool]:
        ui.button(button).click()
        if button == "Stop":
            ui.accept_confirm()
        ui.wait(lambda: ui.css('[data-field="status"]').get_attribute("data-status") == shown,
                f"the page does not show {shown}")
        ui.wait_message(f"is {shown}")
        return {b: ui.button(b).is_enabled() for b in ("Start", "Pause", "Resume", "Stop")}

    await page.run(open_campaign, campaign_id)
    assert await page.run(lambda ui: {b: ui.button(b).is_enabled() for b in (
        "Start", "Pause", "Resume", "Stop")}) == {
        "Start": True, "Pause": False, "Resume": False, "Stop": False}
    assert await page.run(act, "Start", "running") == {
        "Start": False, "Pause": True, "Resume": False, "Stop": True}
    assert await status() == "running"
    assert await page.run(act, "Pause", "paused") == {
        "Start": True, "Pause": False, "Resume": True, "Stop": True}
    assert await status() == "paused"
    assert await page.run(act, "Resume", "running") == {
        "Start": False, "Pause": True, "Resume": False, "Stop": True}
    assert await status() == "running"
    assert await page.run(act, "Stop", "completed") == {
        "Start": False, "Pause": False, "Resume": False, "Stop": False}
    assert await status() == "completed"
    counts = (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()["contact_counts"]
    assert counts["skipped"] >= 16  # never dialed: at most 2 live calls at once

    # The list shows the same, with the buttons of each row.
    def listed(ui: Page) -> list[str]:
        ui.css('nav a[data-section="campaigns"]').click()
        ui.wait(lambda: ui.table_rows("campaigns") and ui.table_settled("campaigns"))
        row = ui.table_rows("campaigns")[0]
        enabled = [b.text for b in ui.all('table[data-table="campaigns"] button') if b.is_enabled()]
        return [*row[:2], *enabled]

    assert await page.run(listed) == [created.json()["name"], "completed"]

    # The list keeps itself up to date: a campaign started elsewhere (the API) shows as
    # running there without a reload.
    other = (await create_campaign(contacts_csv(3, start=LONG), name="Second")).json()["id"]

    def row_status(ui: Page, wanted: str) -> list[str]:
        ui.wait(lambda: ui.table_rows("campaigns")[0][:2] == ["Second", wanted],
                f"the list does not show Second as {wanted}")
        return [b.text for b in ui.all('table[data-table="campaigns"] tbody tr:first-child '
                                       'button') if b.is_enabled()]

    assert (await api.post(f"/api/v1/campaigns/{other}/start")).status_code == 200
    assert await page.run(row_status, "running") == ["Pause", "Stop"]


# Contacts and calls


async def test_contact_filters_and_pages_show_the_apis_rows(page, api, create_campaign):
    campaign = await finished_campaign(api, create_campaign, contacts_csv(130, start=FAST),
                                       max_concurrent_calls=20)
    campaign_id = campaign["id"]

    async def api_numbers(what: str, page_number: int = 0, **query) -> tuple[int, list[str]]:
        body = (await api.get(f"/api/v1/campaigns/{campaign_id}/{what}",
                              params={"page": page_number, **query})).json()
        return body["total"], [row["phone_number"] for row in body["data"]]

    def shown(ui: Page, table: str) -> tuple[str, list[str]]:
        ui.wait(lambda: ui.table_settled(table))
        return ui.page_info(table), [row[1] for row in ui.table_rows(table) if len(row) > 1]

    def filter_contacts(ui: Page, status: str) -> tuple[str, list[str]]:
        before = ui.page_info("contacts")
        ui.choose("Status", status)
        ui.wait(lambda: ui.page_info("contacts") != before, f"the filter {status} changed nothing")
        return shown(ui, "contacts")

    def next_page(ui: Page, table: str) -> tuple[str, list[str]]:
        before = ui.page_info(table)
        ui.button("Next page", within=ui.css(f'table[data-table="{table}"]').find_element(
            By.XPATH, "../..")).click()
        ui.wait(lambda: ui.page_info(table) != before)
        return shown(ui, table)

    await page.run(open_campaign, campaign_id)
    await page.run(lambda ui: ui.wait(lambda: ui.page_info("contacts") and ui.page_info("calls")))
    total, first = await api_numbers("contacts")
    assert total == 130 and len(first) == 100
    assert await page.run(shown, "contacts") == ("Page 1 of 2 · 130 contacts", first)
    _, second = await api_numbers("contacts", 1)
    assert await page.run(next_page, "contacts") == ("Page 2 of 2 · 130 contacts", second)

    failed_total, failed = await api_numbers("contacts", status="failed")
    assert failed_total == 13 and all(n.endswith("3") for n in failed)  # the busy ones
    assert await page.run(filter_contacts, "failed") == ("Page 1 of 1 · 13 contacts", failed)
    done_total, done = await api_numbers("contacts", status="completed")
    assert await page.run(filter_contacts, "completed") == (
        f"Page 1 of 2 · {done_total} contacts", done)
    assert await page.run(filter_contacts, "pending") == ("Page 1 of 1 · 0 contacts", [])

    calls_total, calls = await api_numbers("calls")
    assert calls_total == 130
    assert await page.run(shown, "calls") == ("Page 1 of 2 · 130 calls", calls)
    _, calls_second = await api_numbers("calls", 1)
    assert await page.run(next_page, "calls") == ("Page 2 of 2 · 130 calls", calls_second)


# Exports


async def test_exports_download_the_apis_files(page, api, create_campaign):
    campaign = await finished_campaign(api, create_campaign, contacts_csv(30, start=FAST),
                                       max_concurrent_calls=10)
    campaign_id = campaign["id"]

    def download(ui: Page, what: str, fmt: str, label: str | None, value: str) -> bytes:
        ui.choose("What", what)
        ui.choose("Format", fmt)
        if label:
            ui.choose(label, value)
        ui.button("Download").click()
        name = f"campaign-{campaign_id}-{what}.{fmt}"
        ui.wait_message(f"Downloaded {re.escape(name)}")
        data = ui.downloaded(name).read_bytes()
        ui.downloaded(name).unlink()
        return data

    await page.run(open_campaign, campaign_id)
    base = f"/api/v1/campaigns/{campaign_id}"
    failed_csv = await page.run(download, "contacts", "csv", "Contact status", "failed")
    assert failed_csv == (await api.get(f"{base}/contacts.csv?status=failed")).content
    lines = failed_csv.decode().splitlines()
    assert lines[0].startswith("id,row_number,phone_number,") and len(lines) == 1 + 3
    every = await page.run(download, "contacts", "jsonl", "Contact status", "")
    rows = [json.loads(line) for line in every.decode().splitlines()]
    page_rows = (await api.get(f"{base}/contacts")).json()["data"]
    assert rows == page_rows and len(rows) == 30
    busy = await page.run(download, "calls", "jsonl", "Call outcome", "busy")
    assert busy == (await api.get(f"{base}/calls.jsonl?outcome=busy")).content
    assert [json.loads(line)["outcome"] for line in busy.decode().splitlines()] == ["busy"] * 3
    calls_csv = await page.run(download, "calls", "csv", "Call outcome", "")
    assert calls_csv == (await api.get(f"{base}/calls.csv")).content


# A phone-sized screen


async def test_the_campaign_page_fits_a_phone_screen(page, api, create_campaign):
    campaign = await finished_campaign(api, create_campaign, contacts_csv(15, start=FAST))
    await page.run(_phone, campaign["id"])


def _phone(ui: Page, campaign_id: str) -> None:
    ui.resize(PHONE)
    open_campaign(ui, campaign_id)
    ui.wait(lambda: ui.page_info("calls").endswith("15 calls"))
    ui.wait(lambda: ui.all("svg.outcome-chart polyline"))
    assert ui.window_size() == PHONE
    assert ui.horizontal_overflow() == 0
    # The wide tables scroll inside their own box, not the page.
    wrap = ui.css('table[data-table="contacts"]').find_element(By.XPATH, "..")
    assert ui.driver.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth",
                                    wrap)
    ui.screenshot("campaign-page-phone", full_page=False)  # what the first screen shows
    ui.driver.execute_script("document.querySelector('#contacts-title').scrollIntoView()")
    ui.screenshot("campaign-page-phone-contacts", full_page=False)
    for fragment, title in (("#/campaigns", "Campaigns"), ("#/campaigns/new", "New campaign"),
                            ("#/agents", "Agents"), ("#/webhooks", "Webhooks")):
        ui.driver.execute_script("location.hash = arguments[0]", fragment)
        ui.wait(lambda t=title: ui.css("h1").text == t and ui.all("table[aria-busy]") == [])
        assert ui.horizontal_overflow() == 0, fragment
    # The keyboard reaches the navigation, and focus is visible there.
    ui.driver.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
    outline = ui.driver.execute_script(
        "return getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


# Agents and phone numbers


async def test_agents_and_numbers_pages_create_list_and_delete(page, api):
    ui_agent = await page.run(_agents)
    agents = (await api.get("/api/v1/agents")).json()["data"]
    assert [a["name"] for a in agents] == ["Ava"]
    assert agents[0]["greeting"] == "Hi {{first_name}}" and agents[0]["max_concurrent_calls"] == 3
    assert ui_agent == ["Ava", "active", "—", "3", "first_name"]
    await page.run(_delete_first, "agents", "Delete agent Ava")
    assert (await api.get("/api/v1/agents")).json()["total"] == 0

    await page.run(_numbers)
    numbers = (await api.get("/api/v1/phone-numbers")).json()["data"]
    assert [(n["number"], n["label"], n["outbound_enabled"]) for n in numbers] == [
        ("+14155550123", "main line", False)]
    await page.run(_delete_first, "numbers", "Delete number +14155550123")
    assert (await api.get("/api/v1/phone-numbers")).json()["total"] == 0


def _agents(ui: Page) -> list[str]:
    # The refused forms' answers (a 400, a 409) are reported by the browser: expected.
    ui.expected_console.append(
        r"/api/v1/(agents|phone-numbers) - Failed to load resource: .* 4(00|09)")
    open_signed_in(ui, "#/agents")
    ui.wait(lambda: ui.page_info("agents") == "Page 1 of 1 · 0 agents")
    ui.button("Create agent").click()  # no name: the API's 400 names the field
    ui.wait(lambda: ui.text("#agent-name-error"))
    assert ui.text("#agent-name-error").startswith("name:")
    ui.fill("Name", "Ava")
    ui.fill("Greeting (optional)", "Hi {{first_name}}")
    ui.fill("Max concurrent calls (optional)", "3")
    ui.button("Create agent").click()
    ui.wait_message("Agent “Ava” created")
    ui.wait(lambda: ui.page_info("agents") == "Page 1 of 1 · 1 agents")
    return [cell for cell in ui.table_rows("agents")[0][:5]]


def _delete_first(ui: Page, table: str, button: str) -> None:
    ui.button(button).click()
    ui.accept_confirm()
    ui.wait_message("deleted")
    ui.wait(lambda: ui.page_info(table).endswith(f"0 {table}"))


def _numbers(ui: Page) -> None:
    ui.css('nav a[data-section="numbers"]').click()
    ui.wait(lambda: ui.page_info("numbers") == "Page 1 of 1 · 0 numbers")
    ui.fill("Number (E.164)", "+1 nope")
    ui.button("Add number").click()
    ui.wait(lambda: ui.text("#number-number-error"))
    assert ui.text("#number-number-error").startswith("number:")
    ui.fill("Number (E.164)", "+14155550123")
    ui.fill("Label (optional)", "main line")
    ui.css("#number-outbound").click()  # not for outbound calls
    ui.button("Add number").click()
    ui.wait_message("Number \\+14155550123 added")
    ui.wait(lambda: ui.page_info("numbers") == "Page 1 of 1 · 1 numbers")
    assert ui.table_rows("numbers")[0][:3] == ["+14155550123", "main line", "disabled"]
    ui.fill("Number (E.164)", "+14155550123")  # already in the account: a 409 naming it
    ui.button("Add number").click()
    ui.wait(lambda: "already in your account" in ui.text("#number-number-error"))


# Webhooks


async def test_webhooks_page_shows_the_secret_once_and_resends(page, api, create_campaign, raw):
    async with receiving() as receiver:
        secret = await page.run(_create_webhook, receiver.url)
        endpoint = (await api.get("/api/v1/webhooks")).json()["data"][0]
        assert endpoint["url"] == receiver.url and "secret" not in endpoint
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]{40,}", secret)
        receiver.secret = secret
        await finished_campaign(api, create_campaign, contacts_csv(2, start=FAST))
        deliveries = f"/api/v1/webhooks/{endpoint['id']}/deliveries"
        with trio.fail_after(20):
            while (await api.get(deliveries, params={"status": "delivered"})).json(
                    )["total"] < 6:  # started, 2 calls, 2 contacts, completed
                await trio.sleep(0.1)
        assert all(r.verified for r in receiver.requests)  # signed with the secret shown
        before = (await api.get(deliveries)).json()
        shown = await page.run(_deliveries, endpoint["id"], before["total"])
        assert shown == [d["type"] for d in before["data"]][: len(shown)]
        after = (await api.get(deliveries)).json()
        assert after["total"] == before["total"] + 1
        assert after["data"][0]["event_id"] == before["data"][0]["event_id"]

        await raw.execute("UPDATE webhook_endpoints SET disabled_at = now(), "
                          "disabled_reason = 'failing for a day' WHERE id = $1",
                          endpoint["id"])
        await page.run(_enable_and_delete)
        assert (await api.get("/api/v1/webhooks")).json()["total"] == 0


def _create_webhook(ui: Page, url: str) -> str:
    open_signed_in(ui, "#/webhooks")
    ui.wait(lambda: ui.page_info("webhooks") == "Page 1 of 1 · 0 endpoints")
    ui.fill("URL", url)
    ui.fill("Description (optional)", "CRM")
    ui.button("Create endpoint").click()
    ui.wait(lambda: ui.all("[data-secret]"), "no secret shown")
    secret = ui.text("[data-secret]")
    ui.wait_message("shown once")
    ui.wait(lambda: ui.page_info("webhooks") == "Page 1 of 1 · 1 endpoints")
    ui.button("I have stored it").click()
    assert ui.all("[data-secret]") == [] and secret not in ui.driver.page_source
    return secret


def _deliveries(ui: Page, endpoint_id: str, total: int) -> list[str]:
    ui.css(f'[data-key="deliveries-{endpoint_id}"]').click()
    ui.wait(lambda: ui.css("h1").text.startswith("Deliveries to http://127.0.0.1"))
    ui.wait(lambda: ui.page_info("deliveries") == f"Page 1 of 1 · {total} deliveries")
    shown = [row[1] for row in ui.table_rows("deliveries")]
    ui.all('table[data-table="deliveries"] button[data-action="resend"]')[0].click()
    ui.wait_message("queued again")
    ui.wait(lambda: ui.page_info("deliveries") == f"Page 1 of 1 · {total + 1} deliveries")
    ui.choose("Status", "delivered")
    ui.wait(lambda: ui.table_settled("deliveries") and all(
        row[3] == "delivered" for row in ui.table_rows("deliveries")))
    return shown


def _enable_and_delete(ui: Page) -> None:
    ui.css('nav a[data-section="webhooks"]').click()
    ui.wait(lambda: ui.table_rows("webhooks") and "disabled" in ui.table_rows("webhooks")[0][3])
    assert "failing for a day" in ui.table_rows("webhooks")[0][3]
    enable = ui.css('table[data-table="webhooks"] button[data-action="enable"]')
    assert enable.is_enabled()
    enable.click()
    ui.wait_message("is active again")
    ui.wait(lambda: ui.table_rows("webhooks")[0][3] == "active")
    assert not ui.css('table[data-table="webhooks"] button[data-action="enable"]').is_enabled()
    ui.css('table[data-table="webhooks"] button[data-action="delete"]').click()
    ui.accept_confirm()
    ui.wait_message("deleted")
    ui.wait(lambda: ui.page_info("webhooks") == "Page 1 of 1 · 0 endpoints")


# The event stream after a drop


async def test_the_event_stream_reconnects_with_last_event_id(page, api, create_campaign,
                                                               gateway):
    created = await create_campaign(contacts_csv(6, start=LONG), max_concurrent_calls=2)
    campaign_id = created.json()["id"]
    port = int(gateway.base_url.rsplit(":", 1)[1])
    proxy = TcpProxy("127.0.0.1", port)
    async with trio.open_nursery() as nursery:
        page.base_url = f"http://127.0.0.1:{await nursery.start(proxy.run)}"
        assert (await api.post(f"/api/v1/campaigns/{campaign_id}/start")).status_code == 200
        ids = await page.run(_reconnect, campaign_id, proxy)
        nursery.cancel_scope.cancel()
    before, sent, after = ids
    assert sent >= before and after > sent, ids
    await api.post(f"/api/v1/campaigns/{campaign_id}/stop")


def _reconnect(ui: Page, campaign_id: str, proxy: TcpProxy) -> tuple[int, int, int]:
    # The cut connections' requests (the stream's incomplete body) are reported by the
    # browser: expected here.
    ui.expected_console.append(r"Failed to load resource: net::ERR_")
    open_campaign(ui, campaign_id)
    state = ui.css("[data-stream-state]")
    ui.wait(lambda: state.get_attribute("data-stream-state") == "live"
            and ui.count('[data-count="in_flight"]') == 2)
    ui.wait(lambda: state.get_attribute("data-last-event-id"))
    before = int(state.get_attribute("data-last-event-id"))
    ui.network_requests()  # forget the requests so far
    trio.from_thread.run_sync(proxy.cut)
    ui.wait(lambda: state.get_attribute("data-stream-state") == "reconnecting",
            "the cut was not noticed")
    ui.wait(lambda: state.get_attribute("data-stream-state") == "live"
            and int(state.get_attribute("data-last-event-id")) > before, "no reconnection")
    after = int(state.get_attribute("data-last-event-id"))
    streams = [r["request"] for r in ui.network_requests()
               if r["request"]["url"].endswith(f"/campaigns/{campaign_id}/events")]
    assert streams, "the stream was not requested again"
    assert ui.count('[data-count="in_flight"]') == 2
    ui.driver.get("about:blank")  # before the proxy goes
    return before, int(streams[0]["headers"]["Last-Event-ID"]), after


# /docs


async def test_the_api_docs_render_in_the_browser(page):
    await page.run(_docs)


def _docs(ui: Page) -> None:
    ui.driver.get(f"{ui.base_url}/docs")
    ui.wait(lambda: ui.driver.title == "Outbound campaign gateway: API")
    ui.wait(lambda: len(ui.all(".opblock")) > 30, "the operations are not listed")
    paths = {el.get_attribute("data-path") for el in ui.all(".opblock-summary-path")}
    assert {"/api/v1/campaigns", "/api/v1/campaigns/{campaign_id}/events"} <= paths
    assert "/" not in paths and not [p for p in paths if p.startswith("/ui")]
    ui.driver.get(f"{ui.base_url}/")  # and back to the dashboard, a link away
    ui.wait(lambda: ui.css("h1").text == "Sign in")
    assert ui.css('footer a[href="/docs"]').text == "API documentation"

