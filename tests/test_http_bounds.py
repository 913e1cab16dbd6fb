"""Every input that once answered 500 is a 400 naming its field, one test each (so a
regression names itself), plus the last line of defence: a value past a schema bound that
reaches PostgreSQL is a 400 naming the field too, never a 500."""

from __future__ import annotations

import uuid

import pytest
from conftest import multipart
from pydantic import Field, field_validator
from test_http_edges import assert_json_error

from gateway.db import InvalidValue
from gateway.http.errors import ApiError
from gateway.http.multipart import MAX_PARTS, read_form
from gateway.http.routes import campaigns as campaign_routes
from gateway.http.schemas import INT4_MAX, MAX_PAGE, MAX_RETRY_DELAY_SECONDS, CampaignFields

LISTS = ["/api/v1/agents", "/api/v1/phone-numbers", "/api/v1/campaigns"]


async def _no_campaign(db) -> None:
    assert await db.fetchval("testing.count_campaigns") == 0
    assert await db.fetchval("testing.count_contacts") == 0


def assert_names(response, status: int, field: str) -> dict:
    error = assert_json_error(response, status)
    assert error["field"] == field, error
    assert error["message"].startswith(f"{field}: "), error
    return error


async def test_retry_delay_seconds_above_int4_is_400(create_campaign, db):
    for value in (INT4_MAX + 1, 10**30, MAX_RETRY_DELAY_SECONDS + 1):
        response = await create_campaign(retry_delay_seconds=value)
        assert_names(response, 400, "retry_delay_seconds")
    await _no_campaign(db)
    response = await create_campaign(retry_delay_seconds=MAX_RETRY_DELAY_SECONDS)
    assert response.status_code == 201, response.text
    assert response.json()["retry_delay_seconds"] == MAX_RETRY_DELAY_SECONDS


async def test_scheduled_at_out_of_range_is_400(create_campaign, db):
    for when, words in [("9999-12-31T23:59:59-05:00", "100 years"),  # year 10000 in UTC
                        ("9999-12-31T23:59:59Z", "100 years"),
                        ("2999-01-01T00:00:00+14:00", "100 years"),
                        ("0001-01-01T00:00:00+05:00", "past")]:  # year 0 in UTC
        error = assert_names(await create_campaign(scheduled_at=when), 400, "scheduled_at")
        assert words in error["message"], error
    await _no_campaign(db)


async def test_rfc2231_boundary_parameter(api, agent_id, number_id, db):
    body, _ = multipart({"name": "x", "agent_id": agent_id, "phone_number_id": number_id},
                        {"contacts": b"phone_number\n+12025550143\n"})
    boundary = body[2:body.index(b"\r\n")].decode()
    # Undecodable or outside RFC 2046's characters once decoded: 400 naming the header.
    for content_type in ("multipart/form-data; boundary*=utf-8''%E2%82%AC",
                         "multipart/form-data; boundary*=utf-8''%ff%fe",
                         'multipart/form-data; boundary=""',
                         "multipart/form-data; boundary=" + "b" * 71,
                         "multipart/form-data; boundary=\"ends with space \"",
                         "multipart/form-data"):
        response = await api.post("/api/v1/campaigns", content=body,
                                  headers={"Content-Type": content_type})
        error = assert_json_error(response, 400)
        assert error["message"].startswith("Content-Type: "), (content_type, error)
        assert "boundary" in error["message"]
    # A valid boundary that the body does not use (werkzeug reads this one as "''").
    response = await api.post("/api/v1/campaigns", content=body,
                              headers={"Content-Type": "multipart/form-data; boundary*=''"})
    assert "boundary" in assert_json_error(response, 400)["message"]
    await _no_campaign(db)
    # A well-formed RFC 2231 parameter is the boundary it spells.
    response = await api.post("/api/v1/campaigns", content=body, headers={
        "Content-Type": f"multipart/form-data; boundary*=utf-8''{boundary}"})
    assert response.status_code == 201, response.text


def _part(headers: str, value: bytes = b"x") -> bytes:
    return b"--b\r\n" + headers.encode() + b"\r\n\r\n" + value + b"\r\n"


async def _post_parts(api, *parts: bytes):
    return await api.post("/api/v1/campaigns", content=b"".join(parts) + b"--b--\r\n",
                          headers={"Content-Type": "multipart/form-data; boundary=b"})


async def test_file_part_without_a_name_is_400(api, db):
    for disposition in ('form-data; filename="c.csv"', 'form-data; name=""; filename="c.csv"',
                        'form-data', 'attachment; filename="c.csv"'):
        response = await _post_parts(api, _part(f"Content-Disposition: {disposition}",
                                                b"phone_number\n+12025550143\n"))
        error = assert_json_error(response, 400)
        assert "no name" in error["message"], (disposition, error)
    await _no_campaign(db)


async def test_part_with_an_unknown_name_is_400(api, db, agent_id, number_id):
    for disposition in ('form-data; name="photo"; filename="a.png"',
                        'form-data; name="colour"', 'form-data; name="contacts[]"; filename="c"',
                        'form-data; name="' + "n" * 50 + '"'):
        response = await _post_parts(api, _part(f"Content-Disposition: {disposition}"))
        name = disposition.split('"')[1]
        error = assert_names(response, 400, name)
        assert "not a known field" in error["message"]
    response = await _post_parts(api, _part('Content-Disposition: form-data; name="'
                                            + "n" * 101 + '"'))
    assert "longer than 100" in assert_json_error(response, 400)["message"]
    await _no_campaign(db)


async def test_file_given_for_a_text_field_is_400(api, db, agent_id):
    response = await _post_parts(api, _part('Content-Disposition: form-data; name="agent_id"; '
                                            'filename="id.txt"', agent_id.encode()))
    error = assert_names(response, 400, "agent_id")
    assert "not a file" in error["message"]
    await _no_campaign(db)


async def test_page_out_of_range_is_400(api):
    campaign = str(uuid.uuid4())
    for page in (str(2**63), str(2**63 - 1), str(10**40), str(MAX_PAGE + 1), "-1", "1e3",
                 "0x10", "", "\u0661"):
        for path in [*LISTS, f"/api/v1/campaigns/{campaign}/contacts",
                     f"/api/v1/campaigns/{campaign}/calls"]:
            assert_names(await api.get(path, params={"page": page}), 400, "page")


async def test_last_page_fits_the_database(api, create_campaign):
    """page * 100 at the bound still fits every query's integer types (contacts are
    addressed by a 32-bit position)."""
    campaign = (await create_campaign()).json()["id"]
    for path in [*LISTS, f"/api/v1/campaigns/{campaign}/contacts",
                 f"/api/v1/campaigns/{campaign}/calls"]:
        for query in ({"page": MAX_PAGE}, {"page": MAX_PAGE, "status": "failed"},
                      {"page": MAX_PAGE, "status": "pending"}):
            if "status" in query and not path.endswith(("/contacts", "/campaigns")):
                continue
            if path.endswith("/campaigns") and query.get("status") == "pending":
                continue
            response = await api.get(path, params=query)
            assert response.status_code == 200, (path, query, response.text)
            assert response.json()["data"] == [] and response.json()["has_more"] is False


# The last line of defence: the schema bounds taken away, the database refuses the value.
class _Unbounded(CampaignFields):
    retry_delay_seconds: int = Field(300, ge=0)

    @field_validator("scheduled_at")
    @classmethod
    def _within_calendar(cls, value):
        return value


@pytest.fixture
def unbounded_form(monkeypatch):
    monkeypatch.setattr(campaign_routes, "CampaignFields", _Unbounded)


@pytest.mark.parametrize(("fields", "field"), [
    ({"retry_delay_seconds": INT4_MAX + 1}, "retry_delay_seconds"),
    ({"scheduled_at": "9999-12-31T23:59:59-05:00"}, "scheduled_at"),
])
async def test_value_past_the_schema_is_a_400_from_the_database(unbounded_form,
                                                                 create_campaign, db,
                                                                 fields, field):
    error = assert_names(await create_campaign(**fields), 400, field)
    assert error["code"] == "validation_error"
    assert "out of the range the database can store" in error["message"]
    await _no_campaign(db)


async def test_data_errors_are_translated(db):
    """Both sides' data errors leave the database module as InvalidValue: asyncpg's while
    encoding an argument (with its position), PostgreSQL's (SQLSTATE class 22)."""
    with pytest.raises(InvalidValue) as client_side:
        await db.fetch("campaigns.contacts_range", uuid.uuid4(), INT4_MAX + 1, 0)
    assert client_side.value.argument == 2 and client_side.value.value == str(INT4_MAX + 1)

    async def overflow(tx):
        await tx.execute_script("SELECT 2147483647::int4 + 1")

    with pytest.raises(InvalidValue) as server_side:
        await db.transaction(overflow)
    assert "out of range" in server_side.value.reason

    async def bad_date(tx):
        await tx.execute_script("SELECT '294277-01-01'::timestamptz")

    with pytest.raises(InvalidValue):
        await db.transaction(bad_date)


async def test_openapi_shows_the_bounds_and_every_error(gateway):
    async with gateway.client(None) as anonymous:
        spec = (await anonymous.get("/openapi.json")).json()
    form = spec["paths"]["/api/v1/campaigns"]["post"]["requestBody"]["content"][
        "multipart/form-data"]["schema"]["properties"]
    bounds = {name: (form[name].get("minimum"), form[name].get("maximum"))
              for name in ("max_concurrent_calls", "retries_per_contact", "retry_delay_seconds")}
    assert bounds == {"max_concurrent_calls": (1, 100), "retries_per_contact": (0, 5),
                      "retry_delay_seconds": (0, MAX_RETRY_DELAY_SECONDS)}
    assert "100 years" in form["scheduled_at"]["description"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            what = f"{method.upper()} {path}"
            responses = operation["responses"]
            for parameter in operation["parameters"]:
                if parameter["name"] == "page":
                    assert (parameter["schema"]["minimum"], parameter["schema"]["maximum"]) \
                        == (0, MAX_PAGE), what
                    assert "400" in responses, what
                if parameter["in"] == "path" and parameter["name"] == "number":
                    # A phone number (DELETE /dnc/{number}): invalid is a 400.
                    assert parameter["schema"]["type"] == "string", what
                    assert {"400", "404"} <= set(responses), what
                elif parameter["in"] == "path":
                    assert parameter["schema"] == {"type": "string", "format": "uuid"}, what
                    assert "404" in responses, what
            if path.startswith("/api/v1/"):
                assert {"401", "503"} <= set(responses), what
            assert any(status.startswith("2") for status in responses), what
            for status, response in responses.items():
                assert response["description"], (what, status)
                if status[0] in "45":  # every error is the house shape
                    schema = response["content"]["application/json"]["schema"]
                    if (path, status) == ("/readyz", "503"):  # which checks fail, and why
                        assert schema["title"] == "NotReadyOut", what
                        continue
                    assert schema["title"] == "ErrorOut" and schema["required"] == ["error"]
            if "503" in responses:
                assert "Retry-After" in responses["503"]["headers"], what
    create = spec["paths"]["/api/v1/campaigns"]["post"]["responses"]
    assert {"201", "400", "401", "413", "415", "503"} <= set(create)
    assert "409" in spec["paths"]["/api/v1/campaigns/{campaign_id}/start"]["post"]["responses"]


async def test_malformed_forms_name_the_problem(api, db):
    """The rest of the reader's refusals, each a 4xx saying what is wrong."""
    name_part = _part('Content-Disposition: form-data; name="name"')
    cases = [
        ([name_part] * 2, 400, "given more than once"),
        ([_part('Content-Disposition: form-data; name="name"\r\nX-Pad: ' + "p" * 20_000)],
         400, "headers"),
        ([b"x" * 20_000, name_part], 400, "before the first boundary"),
        ([_part("X-No-Disposition: 1")], 400, "Content-Disposition"),
        ([b"--b\r\nContent-Disposition: form-data; name=\"n\xff\"\r\n\r\nx\r\n"], 400, "UTF-8"),
    ]
    for parts, status, words in cases:
        error = assert_json_error(await _post_parts(api, *parts), status)
        assert words in error["message"], (words, error)
    for body in (b"no boundary anywhere", b"--b\r\nContent-Disposition: form-data; name=\"name\""):
        response = await api.post("/api/v1/campaigns", content=body,
                                  headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert "malformed multipart body" in assert_json_error(response, 400)["message"]
    await _no_campaign(db)


async def test_too_many_parts_is_413():
    # Through the API a form meets "unknown field" or "given more than once" first: the
    # reader's own part limit, with as many names as it takes.
    names = [f"f{i}" for i in range(MAX_PARTS + 1)]
    body = b"".join(_part(f'Content-Disposition: form-data; name="{n}"') for n in names)

    async def chunks():
        yield body + b"--b--\r\n"

    with pytest.raises(ApiError) as refused:
        await read_form(chunks(), "multipart/form-data; boundary=b", text_fields=names,
                        file_fields=(), file_max_bytes=10, body_max_bytes=10**6)
    assert refused.value.status == 413 and f"more than {MAX_PARTS} parts" in refused.value.message
