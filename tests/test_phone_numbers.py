"""``/api/v1/phone-numbers``: E.164 caller IDs per account.

Each test costs a fresh database and a server start, so tables run inside one test each
and report every row that misbehaves at once.
"""

from __future__ import annotations

import uuid

import phonenumbers

from gateway.store import accounts

NUMBERS = "/api/v1/phone-numbers"


def valid(number: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


def nyc(i: int) -> str:
    """The i-th of 10,000 distinct valid New York numbers."""
    return f"+1212555{i:04d}"


async def create(api, number: str, **fields) -> dict:
    response = await api.post(NUMBERS, json={"number": number, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def validation_problem(response, field: str) -> str | None:
    error = response.json().get("error", {}) if response.headers["content-type"].startswith(
        "application/json") else {}
    if response.status_code == 400 and error.get("field") == field \
            and field in error.get("message", ""):
        return None
    return f"{response.status_code} {response.text}"


# (as typed, E.164): every spelling is valid and stored in E.164.
SPELLINGS = [
    ("+1 (415) 555-0100", "+14155550100"),
    ("+1.415.555.0101", "+14155550101"),
    ("tel:+1-415-555-0102", "+14155550102"),
    ("+44 20 7946 0000", "+442079460000"),
    ("+33 6 12 34 56 78", "+33612345678"),
    ("+49 151 1234 5678", "+4915112345678"),
]


async def test_create_get_and_normalise(api):
    number = await create(api, "+14155552671")
    assert uuid.UUID(number["id"])
    assert (number["number"], number["outbound_enabled"], number["label"]) == (
        "+14155552671", True, "")
    response = await api.get(f"{NUMBERS}/{number['id']}")
    assert response.status_code == 200 and response.json() == number
    other = await create(api, "+442079460001", outbound_enabled=False, label="  London  ")
    assert (other["outbound_enabled"], other["label"]) == (False, "London")

    assert all(valid(typed) for typed, _ in SPELLINGS)
    stored = [(await create(api, typed))["number"] for typed, _ in SPELLINGS]
    assert stored == [e164 for _, e164 in SPELLINGS]
    listed = (await api.get(NUMBERS)).json()["data"]
    assert [n["number"] for n in listed] == ["+14155552671", "+442079460001", *stored]


# (body, field the 400 must name)
BAD_CREATES = [
    ({"number": "4155552671"}, "number"),         # no country code
    ({"number": "00 44 20 7946 0000"}, "number"),  # international prefix, not +
    ({"number": "+1415555"}, "number"),           # too short
    ({"number": "+141555526710"}, "number"),      # too long
    ({"number": "+15555550100"}, "number"),       # no such area code
    ({"number": "+999123456"}, "number"),         # no such country
    ({"number": "call me"}, "number"),
    ({"number": ""}, "number"),
    ({"number": "+1" * 30}, "number"),
    ({"number": 14155552671}, "number"),
    ({"number": None}, "number"),
    ({}, "number"),
    ({"number": "+14155552671", "outbound_enabled": "maybe"}, "outbound_enabled"),
    ({"number": "+14155552671", "label": "x" * 201}, "label"),
    ({"number": "+14155552671", "sip_uri": "sip:a@b"}, "sip_uri"),
]


async def test_create_rejects_bad_bodies(api):
    assert not any(valid(body["number"]) for body, _ in BAD_CREATES[:6])
    problems = []
    for body, field in BAD_CREATES:
        problem = validation_problem(await api.post(NUMBERS, json=body), field)
        problems += [f"{body!r}: {problem}"] if problem else []
    assert not problems, "\n".join(problems)
    assert (await api.get(NUMBERS)).json()["total"] == 0


async def test_duplicates_conflict_within_an_account_only(gateway, api, db):
    first = await create(api, "+14155552671")
    for spelling in ("+14155552671", "+1 415-555-2671"):
        response = await api.post(NUMBERS, json={"number": spelling, "label": "again"})
        assert response.status_code == 409, (spelling, response.text)
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("conflict", "number")
        assert "+14155552671" in error["message"]
    assert (await api.get(NUMBERS)).json()["total"] == 1

    tenant = await accounts.create_account(db, name="B", concurrent_max=1, calls_per_minute=1)
    async with gateway.client(tenant.api_key) as other:
        response = await other.post(NUMBERS, json={"number": "+14155552671"})
        assert response.status_code == 201, response.text
        assert response.json()["id"] != first["id"]


async def test_patch_then_delete(api):
    number = await create(api, "+14155552671", label="main")
    url = f"{NUMBERS}/{number['id']}"
    updated = (await api.patch(url, json={"outbound_enabled": False})).json()
    assert (updated["outbound_enabled"], updated["label"], updated["number"]) == (
        False, "main", "+14155552671")
    updated = (await api.patch(url, json={"label": "backup"})).json()
    assert (updated["outbound_enabled"], updated["label"]) == (False, "backup")
    assert (await api.get(url)).json() == updated

    problems = []
    for body, field in [({"outbound_enabled": None}, "outbound_enabled"),
                        ({"outbound_enabled": "maybe"}, "outbound_enabled"),
                        ({"label": None}, "label"), ({"label": "x" * 201}, "label"),
                        ({"number": "+14155550100"}, "number")]:  # the number is immutable
        problem = validation_problem(await api.patch(url, json=body), field)
        problems += [f"{body!r}: {problem}"] if problem else []
    assert not problems, "\n".join(problems)
    assert (await api.get(url)).json() == updated
    missing = await api.patch(f"{NUMBERS}/{uuid.uuid4()}", json={"label": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    response = await api.delete(url)
    assert response.status_code == 204 and response.content == b""
    for method, body in (("GET", None), ("PATCH", {"label": "x"}), ("DELETE", None)):
        response = await api.request(method, url, json=body)
        assert response.status_code == 404, (method, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert (await api.get(NUMBERS)).json()["total"] == 0
    again = await create(api, "+1 415 555 2671")  # the number is free again
    assert again["id"] != number["id"] and again["number"] == "+14155552671"
    assert (again["outbound_enabled"], again["label"]) == (True, "")
    assert (await api.get(url)).status_code == 404  # the old id stays gone


async def test_list_pages(api):
    assert all(valid(nyc(i)) for i in range(101))
    for i in range(101):
        await create(api, nyc(i))
    first = (await api.get(NUMBERS)).json()
    assert (first["page"], first["page_size"], first["total"], first["has_more"]) == (
        0, 100, 101, True)
    second = (await api.get(NUMBERS, params={"page": 1})).json()
    assert (second["page"], second["total"], second["has_more"]) == (1, 101, False)
    assert [n["number"] for n in first["data"] + second["data"]] == [nyc(i) for i in range(101)]
    beyond = (await api.get(NUMBERS, params={"page": 2})).json()
    assert (beyond["data"], beyond["has_more"]) == ([], False)
    for page in ("-1", "abc"):
        assert validation_problem(await api.get(NUMBERS, params={"page": page}), "page") is None
