"""The CSV size limit holds for declared and chunked uploads alike; nothing is created."""

from __future__ import annotations

import pytest
from conftest import contacts_csv, multipart

LIMIT = 4096


@pytest.fixture
def settings_overrides():
    return {"limits": {"max_csv_bytes": LIMIT}}


def _form(agent_id: str, number_id: str, csv: bytes) -> tuple[bytes, str]:
    return multipart({"name": "big", "agent_id": agent_id, "phone_number_id": number_id},
                     {"contacts": csv})


async def _no_rows(db) -> None:
    assert await db.fetchval("testing.count_campaigns") == 0
    assert await db.fetchval("testing.count_contacts") == 0


async def test_file_at_the_limit_is_accepted(create_campaign):
    csv = contacts_csv(200)[:LIMIT]
    csv = csv[:csv.rindex(b"\n") + 1]
    assert len(csv) <= LIMIT
    response = await create_campaign(csv)
    assert response.status_code == 201, response.text


async def test_file_over_the_limit_is_413(create_campaign, db):
    csv = contacts_csv(400)
    assert LIMIT < len(csv) < LIMIT + 64 * 1024  # over the file limit, under the body limit
    response = await create_campaign(csv)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["field"] == "contacts"
    assert str(LIMIT) in error["message"]
    await _no_rows(db)


async def test_chunked_upload_over_the_limit_is_413(api, agent_id, number_id, db):
    body, content_type = _form(agent_id, number_id, contacts_csv(400))

    async def chunks():
        for start in range(0, len(body), 1000):
            yield body[start:start + 1000]

    # An async generator body has no Content-Length: httpx sends it chunked.
    response = await api.post("/api/v1/campaigns", content=chunks(),
                              headers={"Content-Type": content_type})
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 413
    assert response.json()["error"]["field"] == "contacts"
    await _no_rows(db)


async def test_chunked_upload_under_the_limit_works(api, agent_id, number_id):
    body, content_type = _form(agent_id, number_id, contacts_csv(20))

    async def chunks():
        for start in range(0, len(body), 100):
            yield body[start:start + 100]

    response = await api.post("/api/v1/campaigns", content=chunks(),
                              headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text
    assert response.json()["contact_counts"]["total"] == 20


async def test_declared_body_far_over_the_limit_is_413_at_once(api, agent_id, number_id, db):
    body, content_type = _form(agent_id, number_id, b"x" * (2 * 1024 * 1024))
    response = await api.post("/api/v1/campaigns", content=body,
                              headers={"Content-Type": content_type})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    await _no_rows(db)
