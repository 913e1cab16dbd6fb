"""Campaign reads: get, list, contact pages and filters, delete, tenant isolation,
and an import that fails half-way leaving nothing behind."""

from __future__ import annotations

import io
import struct
import uuid

import httpx
import pytest
from conftest import contacts_csv, us_number

from gateway.contacts_csv import COPY_SIGNATURE, COPY_TRAILER, ContactsFileError, ContactsImport
from gateway.db import DatabaseError
from gateway.store import accounts, campaigns


@pytest.fixture
async def campaign(create_campaign):
    response = await create_campaign(contacts_csv(250))
    assert response.status_code == 201, response.text
    return response.json()


async def test_get_matches_create(api, campaign):
    got = (await api.get(f"/api/v1/campaigns/{campaign['id']}")).json()
    created = {k: v for k, v in campaign.items() if k != "import_report"}
    assert got == created


async def test_contact_pages(api, campaign):
    url = f"/api/v1/campaigns/{campaign['id']}/contacts"
    pages = [(await api.get(url, params={"page": p})).json() for p in range(4)]
    assert [len(p["data"]) for p in pages] == [100, 100, 50, 0]
    assert [p["has_more"] for p in pages] == [True, True, False, False]
    assert {p["total"] for p in pages} == {250} and {p["page_size"] for p in pages} == {100}
    numbers = [c["phone_number"] for p in pages for c in p["data"]]
    assert numbers == [us_number(i) for i in range(250)]
    first = pages[0]["data"][0]
    assert set(first) == {"id", "row_number", "phone_number", "custom_fields", "status",
                          "attempts", "last_outcome", "last_attempt_at", "next_attempt_at",
                          "disposition"}
    assert first["custom_fields"] == {"first_name": "name0"}
    # Contact ids: one UUIDv7 prefix for the import, the contact's place in it after it.
    ids = [uuid.UUID(c["id"]) for p in pages for c in p["data"]]
    assert all(i.version == 7 for i in ids) and len({i.int >> 32 for i in ids}) == 1
    assert [i.int & 0xFFFF_FFFF for i in ids] == list(range(250))


async def test_contact_status_filter(api, campaign):
    url = f"/api/v1/campaigns/{campaign['id']}/contacts"
    pending = (await api.get(url, params={"status": "pending", "page": 2})).json()
    assert pending["total"] == 250 and len(pending["data"]) == 50
    assert pending["data"][-1]["phone_number"] == us_number(249)
    failed = (await api.get(url, params={"status": "failed"})).json()
    assert failed == {"data": [], "page": 0, "page_size": 100, "total": 0, "has_more": False}


@pytest.mark.parametrize("params", [{"status": "done"}, {"page": "-1"}, {"page": "x"},
                                    {"page": "1.5"}])
async def test_bad_contact_query_is_400(api, campaign, params):
    response = await api.get(f"/api/v1/campaigns/{campaign['id']}/contacts", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == next(iter(params))


async def test_list_newest_first_with_status_filter(api, create_campaign, campaign):
    when = "2099-01-01T00:00:00Z"
    scheduled = (await create_campaign(scheduled_at=when)).json()
    listed = (await api.get("/api/v1/campaigns")).json()
    assert [c["id"] for c in listed["data"]] == [scheduled["id"], campaign["id"]]
    assert listed["total"] == 2 and listed["has_more"] is False
    assert listed["data"][1]["contact_counts"]["pending"] == 250
    only = (await api.get("/api/v1/campaigns", params={"status": "scheduled"})).json()
    assert [c["id"] for c in only["data"]] == [scheduled["id"]]
    assert (await api.get("/api/v1/campaigns", params={"status": "nope"})).status_code == 400


async def test_delete_draft_removes_contacts(api, campaign, db):
    response = await api.delete(f"/api/v1/campaigns/{campaign['id']}")
    assert response.status_code == 204
    assert (await api.get(f"/api/v1/campaigns/{campaign['id']}")).status_code == 404
    assert await db.fetchval("testing.count_contacts") == 0
    assert (await api.delete(f"/api/v1/campaigns/{campaign['id']}")).status_code == 404


async def test_delete_non_draft_is_409_naming_status(api, create_campaign, db):
    scheduled = (await create_campaign(scheduled_at="2099-01-01T00:00:00Z")).json()
    response = await api.delete(f"/api/v1/campaigns/{scheduled['id']}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "scheduled" in response.json()["error"]["message"]
    assert (await api.get(f"/api/v1/campaigns/{scheduled['id']}")).status_code == 200


async def test_other_tenant_sees_404_everywhere(api, campaign, db):
    other = await accounts.create_account(db, name="other", concurrent_max=5,
                                          calls_per_minute=5)
    async with httpx.AsyncClient(base_url=str(api.base_url),
                                 headers={"Authorization": f"Bearer {other.api_key}"}) as them:
        base = f"/api/v1/campaigns/{campaign['id']}"
        for response in [await them.get(base), await them.get(base + "/contacts"),
                         await them.delete(base)]:
            assert response.status_code == 404
            assert campaign["id"] not in response.text
        assert (await them.get("/api/v1/campaigns")).json()["total"] == 0
    assert (await api.get(base)).status_code == 200


async def test_unknown_campaign_is_404(api):
    response = await api.get(f"/api/v1/campaigns/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


class _BrokenImport:
    """An import whose second chunk is not a valid COPY payload."""

    accepted, rejected, columns = 2, [], []

    def __init__(self, campaign_id: uuid.UUID) -> None:
        self.campaign_id = campaign_id

    def chunks(self):
        # A valid first chunk (binary COPY: the signature and one row), then a row whose
        # custom_fields is not JSON: the server refuses it after taking the first.
        yield COPY_SIGNATURE + self._row(0, b"[]")
        yield self._row(1, b"not-json") + COPY_TRAILER

    def _row(self, seq: int, fields: bytes) -> bytes:
        values = (self.campaign_id.bytes, struct.pack(">h", 0), struct.pack(">i", seq),
                  struct.pack(">i", seq + 1),
                  f"+1202555014{seq}".encode(), fields)
        return struct.pack(">h", len(values)) + b"".join(
            struct.pack(">i", len(value)) + value for value in values)


def _settings(agent_id, number_id):
    return campaigns.CampaignSettings(
        name="broken", agent_id=uuid.UUID(agent_id), phone_number_id=uuid.UUID(number_id),
        max_concurrent_calls=1, retries_per_contact=0, retry_delay_seconds=60,
        scheduled_at=None)


async def test_failed_copy_rolls_back_the_campaign(db, api, agent_id, number_id):
    """The campaign row and its contacts are one transaction: a COPY that fails half-way
    (here on the second chunk) leaves no campaign behind."""
    principal = await accounts.authenticate(db, "gw_test_" + "k" * 40)
    campaign_id = uuid.uuid4()
    with pytest.raises(DatabaseError.__base__):
        await campaigns.create(db, campaign_id=campaign_id, account_id=principal.account.id,
                               api_key_id=principal.api_key_id,
                               settings=_settings(agent_id, number_id),
                               contacts=_BrokenImport(campaign_id))
    assert await db.fetchval("testing.count_campaigns") == 0
    assert await db.fetchval("testing.count_contacts") == 0


async def test_file_error_after_rows_were_copied_rolls_back(db, api, agent_id, number_id):
    """The parse runs while earlier chunks are already copied: a file-level error found
    late (an unclosed quote on the last row) still leaves nothing behind."""
    principal = await accounts.authenticate(db, "gw_test_" + "k" * 40)
    rows = "".join(f"+1202555{i:04d},name{i}\n" for i in range(100, 160))
    data = f"phone_number,first_name\n{rows}+12025559999,\"unclosed\n".encode()
    campaign_id = uuid.uuid4()
    contacts = ContactsImport(io.BytesIO(data), campaign_id=campaign_id, default_region="US",
                              chunk_rows=7)
    with pytest.raises(ContactsFileError, match="unclosed"):
        await campaigns.create(db, campaign_id=campaign_id, account_id=principal.account.id,
                               api_key_id=principal.api_key_id,
                               settings=_settings(agent_id, number_id), contacts=contacts)
    assert contacts.accepted >= 56  # chunks of 7 were copied before the error
    assert await db.fetchval("testing.count_campaigns") == 0
    assert await db.fetchval("testing.count_contacts") == 0
