"""POST /api/v1/campaigns: every field rule, the CSV import, and nothing half-created."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import API_KEY, contacts_csv, us_number

from gateway.store import accounts


async def _counts(db) -> tuple[int, int]:
    """Campaign and contact rows in the whole database."""
    return (await db.fetchval("testing.count_campaigns"),
            await db.fetchval("testing.count_contacts"))


async def test_draft_with_defaults_and_import_report(create_campaign, api, agent_id,
                                                     number_id, db):
    csv = (b"phone_number,first_name,company\n"
           b"+12025550143,Ann,Acme\n"
           b"(202) 555-0144,Bob,\"Widgets, Inc\"\n"
           b"not a number,Carl,X\n"
           b"+1 202 555 0143,Dup,Y\n"
           b",Empty,Z\n")
    response = await create_campaign(csv)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "draft"
    assert body["name"] == "Q4 follow-ups"
    assert (body["agent_id"], body["phone_number_id"]) == (agent_id, number_id)
    assert (body["max_concurrent_calls"], body["retries_per_contact"],
            body["retry_delay_seconds"]) == (5, 0, 300)
    assert body["scheduled_at"] is None and body["started_at"] is None
    assert body["completed_at"] is None and body["failure_reason"] is None
    assert body["contact_counts"] == {"total": 2, "pending": 2, "in_progress": 0,
                                      "retry_pending": 0, "completed": 0, "failed": 0,
                                      "skipped": 0}
    report = body["import_report"]
    assert report["rows_accepted"] == 2 and report["rows_rejected"] == 3
    assert report["columns"] == ["first_name", "company"]
    assert [(r["row"], r["reason"]) for r in report["rejected"]] == [
        (3, "invalid_number"), (4, "duplicate"), (5, "empty")]
    assert report["warnings"] == []
    principal = await accounts.authenticate(db, API_KEY)
    assert body["created_by"] == str(principal.api_key_id)

    contacts = (await api.get(f"/api/v1/campaigns/{body['id']}/contacts")).json()
    assert [(c["row_number"], c["phone_number"], c["custom_fields"]) for c in contacts["data"]] \
        == [(1, "+12025550143", {"first_name": "Ann", "company": "Acme"}),
            (2, "+12025550144", {"first_name": "Bob", "company": "Widgets, Inc"})]
    assert all(c["status"] == "pending" and c["attempts"] == 0 for c in contacts["data"])


async def test_all_fields_and_schedule(create_campaign):
    when = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    response = await create_campaign(max_concurrent_calls=100, retries_per_contact=5,
                                     retry_delay_seconds=60,
                                     scheduled_at=when.isoformat().replace("+00:00", "Z"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "scheduled"
    assert datetime.fromisoformat(body["scheduled_at"]) == when
    assert (body["max_concurrent_calls"], body["retries_per_contact"],
            body["retry_delay_seconds"]) == (100, 5, 60)


async def test_greeting_variable_without_column_is_a_warning(create_campaign):
    response = await create_campaign(b"phone_number,company\n+12025550143,Acme\n")
    assert response.status_code == 201
    assert response.json()["import_report"]["warnings"] == [
        "the agent's greeting uses {{first_name}} but the CSV has no 'first_name' column; "
        "it will be empty"]


async def test_empty_optional_fields_mean_defaults(create_campaign):
    response = await create_campaign(max_concurrent_calls="", scheduled_at="")
    assert response.status_code == 201, response.text
    assert response.json()["max_concurrent_calls"] == 5
    assert response.json()["status"] == "draft"


PAST = "2020-01-01T00:00:00Z"
BAD_FIELDS = [
    ({"name": "<omit>"}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"agent_id": "<omit>"}, "agent_id"),
    ({"agent_id": "not-a-uuid"}, "agent_id"),
    ({"phone_number_id": "<omit>"}, "phone_number_id"),
    ({"phone_number_id": "123"}, "phone_number_id"),
    ({"max_concurrent_calls": 0}, "max_concurrent_calls"),
    ({"max_concurrent_calls": 101}, "max_concurrent_calls"),
    ({"max_concurrent_calls": "five"}, "max_concurrent_calls"),
    ({"max_concurrent_calls": "2.5"}, "max_concurrent_calls"),
    ({"retries_per_contact": -1}, "retries_per_contact"),
    ({"retries_per_contact": 6}, "retries_per_contact"),
    ({"retry_delay_seconds": 59}, "retry_delay_seconds"),
    ({"retry_delay_seconds": "soon"}, "retry_delay_seconds"),
    ({"scheduled_at": PAST}, "scheduled_at"),
    ({"scheduled_at": "2031-01-01T10:00:00"}, "scheduled_at"),  # no zone
    ({"scheduled_at": "next tuesday"}, "scheduled_at"),
    ({"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_FIELDS,
                         ids=[f"{f}-{next(iter(v.values()))}"[:40] for v, f in BAD_FIELDS])
async def test_bad_field_is_400_naming_it(create_campaign, db, fields, field):
    response = await create_campaign(**fields)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")
    assert await _counts(db) == (0, 0)


async def test_missing_contacts_file(create_campaign, db):
    response = await create_campaign(None)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "contacts"
    assert "required" in response.json()["error"]["message"]


async def test_contacts_as_text_field_is_rejected(create_campaign, api, agent_id, number_id):
    response = await api.post("/api/v1/campaigns", files={"contacts": (None, "phone_number")},
                              data={"name": "x", "agent_id": agent_id,
                                    "phone_number_id": number_id})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "contacts"


async def test_not_multipart_is_415(api, agent_id, number_id):
    response = await api.post("/api/v1/campaigns", json={"name": "x", "agent_id": agent_id})
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["error"]["message"]


async def test_duplicate_field_is_400(api, agent_id, number_id):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\none\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ntwo\r\n--b--\r\n")
    response = await api.post("/api/v1/campaigns", content=body,
                              headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "name"


async def test_truncated_multipart_is_400(api):
    body = b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\none"
    response = await api.post("/api/v1/campaigns", content=body,
                              headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 400
    assert "malformed multipart" in response.json()["error"]["message"]


BAD_FILES = [
    (b"", "empty"),
    (b"phone_number\n", "no data rows"),
    (b"name,email\nAnn,a@example.com\n", "phone_number"),
    ("phone_number,name\n+12025550143,Zo\xe9\n".encode("latin-1"), "UTF-8"),
    (b"phone_number\n+1202\x00555\n", "NUL"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "UTF-8"),
    (b"phone_number\nabc\n123\n", "no valid row"),
    (b"phone_number,name,name\n+12025550143,a,b\n", "name"),
]


@pytest.mark.parametrize(("csv", "words"), BAD_FILES, ids=[w for _, w in BAD_FILES])
async def test_unusable_file_is_400_naming_the_problem(create_campaign, db, csv, words):
    response = await create_campaign(csv)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == "contacts"
    assert words.lower() in error["message"].lower()
    assert await _counts(db) == (0, 0)


async def test_row_with_extra_cells_is_rejected_not_truncated(create_campaign):
    response = await create_campaign(b"phone_number,name\n+12025550143,Ann,EXTRA\n"
                                     b"+12025550144,Bob\n")
    assert response.status_code == 201
    report = response.json()["import_report"]
    assert [(r["row"], r["reason"]) for r in report["rejected"]] == [(1, "column_count")]
    assert report["rows_accepted"] == 1


@pytest.mark.parametrize("problem", ["inactive", "deleted", "other_tenant", "unknown"])
async def test_unusable_agent_is_400(create_campaign, api, db, agent_id, problem):
    if problem == "inactive":
        await api.patch(f"/api/v1/agents/{agent_id}", json={"status": "inactive"})
    elif problem == "deleted":
        await api.delete(f"/api/v1/agents/{agent_id}")
    elif problem == "other_tenant":
        other = await accounts.create_account(db, name="other", concurrent_max=1,
                                              calls_per_minute=1)
        async with _client_for(api, other.api_key) as client:
            agent_id = (await client.post("/api/v1/agents", json={"name": "B"})).json()["id"]
    else:
        agent_id = "00000000-0000-4000-8000-000000000000"
    response = await create_campaign(agent_id=agent_id)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "agent_id"
    assert await _counts(db) == (0, 0)


async def test_disabled_number_is_400(create_campaign, api, number_id, db):
    await api.patch(f"/api/v1/phone-numbers/{number_id}", json={"outbound_enabled": False})
    response = await create_campaign()
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "phone_number_id"
    assert "outbound" in response.json()["error"]["message"]
    assert await _counts(db) == (0, 0)


async def test_large_import_keeps_every_row_in_order(create_campaign, api):
    response = await create_campaign(contacts_csv(5000))
    assert response.status_code == 201, response.text
    campaign = response.json()
    assert campaign["contact_counts"]["total"] == 5000
    last = (await api.get(f"/api/v1/campaigns/{campaign['id']}/contacts",
                          params={"page": 49})).json()
    assert [c["phone_number"] for c in last["data"]] == [us_number(i) for i in range(4900, 5000)]
    assert last["has_more"] is False and last["total"] == 5000


def _client_for(api, key):
    import httpx

    return httpx.AsyncClient(base_url=str(api.base_url),
                             headers={"Authorization": f"Bearer {key}"})
