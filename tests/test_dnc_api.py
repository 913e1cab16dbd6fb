"""``/api/v1/dnc``: the account's do-not-call list over the real server and PostgreSQL.

JSON adds, CSV uploads, the list's pages and filter, deletes, tenant isolation, and
generated bodies and files: never a 5xx, and the list changes exactly as the answer says
(counted with real queries), or not at all.
"""

from __future__ import annotations

import io
import json
import logging
from urllib.parse import quote

import phonenumbers
import pytest
import structlog
import trio
from conftest import API_KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multipart_body import multipart
from structlog.testing import capture_logs

from gateway.db import CheckViolation
from gateway.dnc_csv import DncFileError, read_numbers
from gateway.logs import configure_logging
from gateway.store import accounts, dnc
from gateway.store.dnc import CHUNK_NUMBERS

DNC = "/api/v1/dnc"
EXAMPLES = 60


def nyc(i: int) -> str:
    """The i-th of 10,000 distinct valid New York numbers."""
    return f"+1212555{i:04d}"


def national(number: str) -> str:
    return f"({number[2:5]}) {number[5:8]}-{number[8:]}"


async def account_of(db, key: str = API_KEY):
    return (await accounts.authenticate(db, key)).account.id


async def listed_count(db, account) -> int:
    return await db.fetchval("dnc.count", account, None)


async def upload(client, csv: bytes, name: str = "file"):
    body, content_type = multipart({}, {name: csv})
    return await client.post(DNC, content=body, headers={"Content-Type": content_type})


def problem(response) -> tuple[int, str | None, str]:
    error = response.json()["error"]
    return response.status_code, error.get("field"), error["message"]


async def test_add_then_list_in_number_order(api, db):
    first = await api.post(DNC, json={"numbers": [nyc(3), national(nyc(1)), "1 212 555 0002"]})
    assert first.status_code == 200, first.text
    assert first.json() == {"added": 3, "already_listed": 0}
    # Listed already, in another spelling; repeated within the request; new.
    again = await api.post(DNC, json={"numbers": ["212.555.0003", nyc(4), "2125550004",
                                                  "+442079460018"]})
    assert again.json() == {"added": 2, "already_listed": 2}

    body = (await api.get(DNC)).json()
    assert [entry["number"] for entry in body["data"]] == [
        nyc(1), nyc(2), nyc(3), nyc(4), "+442079460018"]
    assert {entry["source"] for entry in body["data"]} == {"api"}
    assert all(entry["created_at"].endswith("Z") or "+00:00" in entry["created_at"]
               for entry in body["data"])
    assert (body["page"], body["page_size"], body["total"], body["has_more"]) == (0, 100, 5,
                                                                                 False)
    one = (await api.get(DNC, params={"number": national(nyc(2))})).json()
    assert [entry["number"] for entry in one["data"]] == [nyc(2)] and one["total"] == 1
    none = (await api.get(DNC, params={"number": nyc(9)})).json()
    assert (none["data"], none["total"]) == ([], 0)
    assert (await api.get(DNC, params={"number": ""})).json()["total"] == 5
    bad = await api.get(DNC, params={"number": "12"})
    assert problem(bad)[:2] == (400, "number")
    assert await dnc.listed(db, await account_of(db), [nyc(i) for i in range(6)]) == {
        nyc(1), nyc(2), nyc(3), nyc(4)}


BAD_BODIES = [
    ({"numbers": [nyc(1), "not a number"]}, "numbers[1]", "'not a number' is not a valid"),
    ({"numbers": [nyc(1), nyc(2), "   "]}, "numbers[2]", "is blank"),
    ({"numbers": ["+1212555"]}, "numbers[0]", "'+1212555' is not a valid phone number;"),
    ({"numbers": ["555-0100"]}, "numbers[0]", "(read as a US number)"),
    ({"numbers": [nyc(1), 2125550100]}, "numbers[1]", "valid string"),
    ({"numbers": [None]}, "numbers[0]", "valid string"),
    ({"numbers": [nyc(1), "1" * 251]}, "numbers[1]", "at most 250 characters"),
    ({"numbers": []}, "numbers", "at least 1 item"),
    ({"numbers": [nyc(i % 10_000) for i in range(10_001)]}, "numbers", "at most 10000 items"),
    ({"numbers": nyc(1)}, "numbers", "valid list"),
    ({}, "numbers", "is required"),
    ({"numbers": [nyc(1)], "source": "api"}, "source", "is not a known field"),
    ([nyc(1)], "body", "must be a JSON object"),
]


@pytest.mark.parametrize(("body", "field", "words"), BAD_BODIES,
                         ids=[field + ":" + words[:20] for _, field, words in BAD_BODIES])
async def test_an_invalid_body_adds_nothing_and_names_the_item(api, db, body, field, words):
    response = await api.post(DNC, json=body)
    status, named, message = problem(response)
    assert (status, named) == (400, field), response.text
    assert message.startswith(f"{field}: ") and words in message, message
    assert await listed_count(db, await account_of(db)) == 0


async def test_other_media_types_are_415_and_bad_json_is_400(api):
    response = await api.post(DNC, content=b"phone_number\n+12125550100\n",
                              headers={"Content-Type": "text/csv"})
    status, _, message = problem(response)
    assert status == 415 and "application/json" in message and "multipart/form-data" in message
    assert (await api.post(DNC)).status_code == 415
    response = await api.post(DNC, content=b'{"numbers": [', headers={
        "Content-Type": "application/json"})
    assert problem(response)[:2] == (400, "body")


async def test_upload_reports_good_bad_duplicate_and_blank_rows(api, db):
    await api.post(DNC, json={"numbers": [nyc(9)]})
    csv = (b"name,phone_number,notes\n"
           b"Ann,+12125550001,a\n"        # 1 added
           b"Bob,(212) 555-0002,\n"       # 2 added (national)
           b"Cy,not a number,\n"          # 3 invalid_number
           b"Di,212.555.0001,\n"          # 4 duplicate of row 1
           b"\n"                          # 5 empty
           b"Ed,,x\n"                     # 6 empty phone_number
           b"Fy,+12125550003,x,extra\n"   # 7 column_count
           b"Gus,+12125550009,\n"         # 8 listed already
           b"\n\n")
    response = await upload(api, csv)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["added"], body["already_listed"], body["rows_rejected"]) == (2, 1, 5)
    assert body["rejected_counts"] == {"empty": 2, "invalid_number": 1, "duplicate": 1,
                                       "column_count": 1}
    assert [(r["row"], r["reason"]) for r in body["rejected"]] == [
        (3, "invalid_number"), (4, "duplicate"), (5, "empty"), (6, "empty"),
        (7, "column_count")]
    assert body["rejected"][1]["message"] == "Row 4: +12125550001 is a duplicate of row 1."
    entries = (await api.get(DNC)).json()["data"]
    assert [(e["number"], e["source"]) for e in entries] == [
        (nyc(1), "upload"), (nyc(2), "upload"), (nyc(9), "api")]


async def test_a_semicolon_csv(api):
    response = await upload(api, b"phone_number;name\n+12125550001;\"Ann; Jr\"\n"
                                 b"(212) 555-0002;Bob\n")
    assert response.status_code == 200, response.text
    assert (response.json()["added"], response.json()["rows_rejected"]) == (2, 0)


BAD_UPLOADS = [
    (b"", "file", "The file is empty"),
    (b"name,number\nAnn,+12125550001\n", "file", "no phone_number column"),
    (b"phone_number\nabc\n\n12\n", "file", "no valid rows: all 3 data rows"),
    (b"phone_number\n+12125550001\nZo\xe9\n", "file", "not UTF-8"),
    (b"phone_number\n\"+12125550001\n", "file", "not valid CSV"),
]


@pytest.mark.parametrize(("csv", "field", "words"), BAD_UPLOADS,
                         ids=[words for _, _, words in BAD_UPLOADS])
async def test_an_unusable_file_is_400_naming_file(api, db, csv, field, words):
    status, named, message = problem(await upload(api, csv))
    assert (status, named) == (400, field) and words in message, message
    assert await listed_count(db, await account_of(db)) == 0


async def test_a_form_without_the_file_part(api, db):
    body, content_type = multipart({"file": "phone_number\n+12125550001\n"}, {})
    response = await api.post(DNC, content=body, headers={"Content-Type": content_type})
    assert problem(response)[:2] == (400, "file")
    assert problem(await upload(api, b"phone_number\n+12125550001\n", name="contacts"))[:2] \
        == (400, "contacts")
    body, content_type = multipart({}, {})
    response = await api.post(DNC, content=body, headers={"Content-Type": content_type})
    status, field, message = problem(response)
    assert (status, field) == (400, "file") and "is required" in message
    assert await listed_count(db, await account_of(db)) == 0


@pytest.mark.parametrize("settings_overrides", [{"limits": {"max_csv_bytes": 1000}}])
async def test_a_file_over_the_limit_is_413(api, db):
    csv = b"phone_number\n" + b"".join(b"+1212555%04d\n" % i for i in range(100))
    status, field, message = problem(await upload(api, csv))
    assert (status, field) == (413, "file") and "1000 bytes" in message
    assert await listed_count(db, await account_of(db)) == 0


async def test_pages_of_100_past_the_first(api):
    numbers = [nyc(i) for i in range(250)]
    assert (await api.post(DNC, json={"numbers": numbers[::-1]})).json()["added"] == 250
    pages = [(await api.get(DNC, params={"page": page})).json() for page in range(4)]
    assert [len(p["data"]) for p in pages] == [100, 100, 50, 0]
    assert [p["has_more"] for p in pages] == [True, True, False, False]
    assert {p["total"] for p in pages} == {250}
    assert [e["number"] for p in pages for e in p["data"]] == numbers
    assert problem(await api.get(DNC, params={"page": -1}))[:2] == (400, "page")


async def test_delete_in_any_spelling_then_404(api):
    await api.post(DNC, json={"numbers": [nyc(1), nyc(2), nyc(3)]})
    for spelling in ("%2B12125550001", "+12125550002", quote(national(nyc(3)), safe="")):
        response = await api.delete(f"{DNC}/{spelling}")
        assert response.status_code == 204, (spelling, response.text)
        again = await api.delete(f"{DNC}/{spelling}")
        status, _, message = problem(again)
        assert status == 404 and "is not on the do-not-call list" in message
    assert (await api.get(DNC)).json()["total"] == 0
    status, field, message = problem(await api.delete(f"{DNC}/abc"))
    assert (status, field) == (400, "number") and message.startswith("number: 'abc' is not")


async def test_another_account_can_neither_see_nor_delete(gateway, api, db):
    await api.post(DNC, json={"numbers": [nyc(1), nyc(2)]})
    tenant = await accounts.create_account(db, name="B", concurrent_max=1, calls_per_minute=1)
    async with gateway.client(tenant.api_key) as other:
        assert (await other.get(DNC)).json()["total"] == 0
        assert (await other.get(DNC, params={"number": nyc(1)})).json()["data"] == []
        assert (await other.delete(f"{DNC}/{quote(nyc(1))}")).status_code == 404
        # Its own list is its own: the same number is new to it.
        assert (await other.post(DNC, json={"numbers": [nyc(1)]})).json() == {
            "added": 1, "already_listed": 0}
        assert (await upload(other, b"phone_number\n+12125550002\n")).json()["added"] == 1
        assert (await other.delete(f"{DNC}/{quote(nyc(1))}")).status_code == 204
    mine = (await api.get(DNC)).json()
    assert [entry["number"] for entry in mine["data"]] == [nyc(1), nyc(2)]
    assert await listed_count(db, tenant.account.id) == 1


@pytest.mark.timeout(120)
async def test_an_upload_of_100k_numbers_is_one_transaction(api, db):
    csv = b"phone_number\n" + b"".join(b"+1212%07d\n" % (2000000 + i) for i in range(100_000))
    response = await upload(api, csv)
    assert response.status_code == 200, response.text
    assert response.json()["added"] == 100_000
    again = (await upload(api, csv)).json()
    assert (again["added"], again["already_listed"]) == (0, 100_000)
    assert await listed_count(db, await account_of(db)) == 100_000


@pytest.mark.timeout(120)
async def test_concurrent_overlapping_uploads_all_succeed_and_add_each_number_once(api, db):
    # Each file is several chunks (several statements of one transaction), and they overlap
    # across chunk boundaries: each waits for the others' rows, and counts each number once.
    starts = [0, 7_000, 15_000, 22_000]
    files = [b"phone_number\n" + b"".join(b"+1212%07d\n" % (2000000 + i)
                                         for i in range(start, start + 25_000))
             for start in starts]
    results = []

    async def send(csv: bytes) -> None:
        results.append(await upload(api, csv))

    async with trio.open_nursery() as nursery:
        for csv in files:
            nursery.start_soon(send, csv)
    assert [r.status_code for r in results] == [200] * len(files), [r.text for r in results]
    union = starts[-1] + 25_000
    assert sum(r.json()["added"] for r in results) == union
    assert sum(r.json()["already_listed"] for r in results) == 25_000 * len(files) - union
    assert await listed_count(db, await account_of(db)) == union


async def test_chunks_past_the_first_roll_back_with_it(db):
    tenant = await accounts.create_account(db, name="A", concurrent_max=1, calls_per_minute=1)
    account = tenant.account.id
    numbers = [f"+1212{2000000 + i}" for i in range(CHUNK_NUMBERS + 5)] + ["not e164"]
    with pytest.raises(CheckViolation):
        await dnc.add(db, account, numbers, "upload")
    assert await listed_count(db, account) == 0


async def test_logs_carry_counts_never_numbers(api):
    # Every level (the conftest logs warnings only).
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            await api.post(DNC, json={"numbers": [nyc(7), nyc(8)]})
            await upload(api, b"phone_number\n+12125550009\n")
            await api.delete(f"{DNC}/{quote(nyc(7))}")
    finally:
        configure_logging("warning", cache=False)
    events = {entry["event"]: entry for entry in logs}
    assert events["dnc.added"]["added"] == 2 and events["dnc.uploaded"]["added"] == 1
    assert "dnc.deleted" in events
    text = json.dumps(logs, default=str)
    assert not any(n in text or n[1:] in text for n in (nyc(7), nyc(8), nyc(9)))


# --- generated bodies and files ------------------------------------------------------------

POOL = [nyc(i) for i in range(30)] + ["+442079460018", "+4915123456789"]


def spellings(number: str) -> st.SearchStrategy[str]:
    forms = [number, " " + number + " "]
    if number.startswith("+1"):
        forms += [national(number), number[2:], f"1-{number[2:5]}-{number[5:8]}-{number[8:]}"]
    return st.sampled_from(forms)


JUNK = st.one_of(st.text(max_size=16), st.sampled_from(["", " ", "+", "12", "\x00", "\ud800",
                                                         "1" * 251, "(212) 555", "+999"]),
                 st.integers(), st.floats(allow_nan=False), st.none(), st.booleans(),
                 st.lists(st.integers(), max_size=2))
ITEM = st.sampled_from(POOL).flatmap(spellings)
BODIES = st.one_of(
    st.fixed_dictionaries({"numbers": st.lists(ITEM, min_size=1, max_size=12)}),
    st.fixed_dictionaries({"numbers": st.lists(st.one_of(ITEM, ITEM, JUNK), max_size=12)}),
    st.dictionaries(st.sampled_from(["numbers", "number", "source"]),
                    st.one_of(st.lists(ITEM, max_size=3), JUNK), max_size=2),
    JUNK)


def expected_outcome(body) -> tuple[str | None, list[str]]:
    """(the field a 400 names, or None for a 200; the E.164 numbers a 200 lists), by
    phonenumbers itself."""
    if not isinstance(body, dict):
        return "body", []
    items = body.get("numbers")
    if not isinstance(items, list) or not 1 <= len(items) <= 10_000:
        return "numbers", []
    for index, item in enumerate(items):
        if not isinstance(item, str) or len(item) > 250:
            return f"numbers[{index}]", []
    if set(body) - {"numbers"}:  # pydantic checks the known fields first
        return sorted(set(body) - {"numbers"})[0], []
    numbers = []
    for index, item in enumerate(items):
        try:
            parsed = phonenumbers.parse(item, "US")
        except phonenumbers.NumberParseException:
            return f"numbers[{index}]", []
        if not phonenumbers.is_valid_number(parsed):
            return f"numbers[{index}]", []
        numbers.append(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    return None, numbers


async def test_generated_json_bodies_add_exactly_what_they_say_or_nothing(api, db):
    account = await account_of(db)
    seen: dict[int, int] = {}

    async def post(body):
        field, numbers = expected_outcome(body)
        before = await listed_count(db, account)
        listed_before = await dnc.listed(db, account, numbers)
        response = await api.post(DNC, content=json.dumps(body).encode(),
                                  headers={"Content-Type": "application/json"})
        return field, numbers, before, listed_before, response, await listed_count(db, account)

    @settings(max_examples=EXAMPLES * 2, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(body=BODIES)
    def check(body):
        field, numbers, before, listed_before, response, after = trio.from_thread.run(
            post, body)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code in (200, 400), response.text
        if field is None:
            assert response.status_code == 200, response.text
            added = len(set(numbers) - listed_before)
            assert response.json() == {"added": added,
                                       "already_listed": len(numbers) - added}
            assert after == before + added
        else:
            assert problem(response)[1] == field, (body, response.text)
            assert problem(response)[2].startswith(f"{field}: ")
            assert after == before

    await trio.to_thread.run_sync(check, abandon_on_cancel=True)
    assert 200 in seen and 400 in seen, seen
    assert await dnc.listed(db, account, POOL) - {nyc(i) for i in range(30)} == set()


@st.composite
def csv_uploads(draw) -> bytes:
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    header = draw(st.permutations(["phone_number", "name"]))
    lines = [delimiter.join(header)]
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["number", "number", "number", "blank", "junk", "wide"]))
        phone = draw(ITEM) if kind != "junk" else draw(st.text(max_size=10))
        cells = {"phone_number": phone, "name": draw(st.text("ab ;,\"", max_size=5))}
        row = [cells[name] for name in header]
        if draw(st.booleans()):
            row = ['"' + cell.replace('"', '""') + '"' for cell in row]
        if kind == "blank":
            row = []
        elif kind == "wide":
            row.append("extra")
        lines.append(delimiter.join(row))
    data = ("\n".join(lines) + "\n").encode()
    for _ in range(draw(st.integers(0, 2))):  # mutated bytes, now and then
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=4)) + data[at + draw(st.integers(0, 4)):]
    return data


async def test_generated_uploads_list_what_they_report_or_nothing(api, db):
    account = await account_of(db)
    seen: dict[int, int] = {}

    async def post(csv: bytes):
        try:
            parsed = read_numbers(io.BytesIO(csv), default_region="US")
            numbers, error = list(parsed.numbers), None
        except DncFileError as exc:
            numbers, error = [], exc.message
        before = await listed_count(db, account)
        listed_before = await dnc.listed(db, account, numbers)
        response = await upload(api, csv)
        listed_after = await dnc.listed(db, account, numbers)
        return (error, numbers, before, listed_before, response, listed_after,
                await listed_count(db, account))

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(csv=st.one_of(csv_uploads(), st.binary(max_size=80)))
    def check(csv):
        error, numbers, before, listed_before, response, listed_after, after = \
            trio.from_thread.run(post, csv)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code in (200, 400), response.text
        if error is None:
            assert response.status_code == 200, response.text
            body = response.json()
            added = len(set(numbers) - listed_before)
            assert (body["added"], body["already_listed"]) == (added, len(numbers) - added)
            assert sum(body["rejected_counts"].values()) == body["rows_rejected"]
            assert len(body["rejected"]) == min(body["rows_rejected"], 1000)
            assert listed_after == set(numbers) and after == before + added
        else:
            assert problem(response) == (400, "file", f"file: {error}")
            assert after == before

    await trio.to_thread.run_sync(check, abandon_on_cancel=True)
    assert 200 in seen and 400 in seen, seen
