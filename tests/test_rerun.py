"""``POST /api/v1/campaigns/{id}/rerun`` against a real server and PostgreSQL.

A rerun is a draft with the source's agent, number and settings and the source's contacts
of the statuses asked for, pending again with their CSV row, number, zone and custom
fields, minus the numbers on the do-not-call list now; it dials like any campaign. Only a
completed or failed campaign is rerun; bad input is a 400 naming the field, a rerun with
nothing to copy a 400 ``no_contacts`` that creates nothing.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import trio
from conftest import API_KEY, contacts_csv, us_number
from engine_helpers import engine_settings, rule, start, wait_status

from gateway.client import AsyncClient, ConflictError, ValidationError
from gateway.http.idempotency import HEADER, REPLAYED_HEADER
from gateway.store import accounts
from gateway.vocabulary import ContactStatus

WINDOW = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00",
          "end": "24:00"}
POLICY = {"no_answer": {"delay_seconds": 600, "max_attempts": 2}}  # none here
# Two numbers fail (busy, no retries), the others answer.
FAILING = ("+12025550143", "+12025550144")
DIALING = engine_settings([rule(FAILING[0], "busy"), rule(FAILING[1], "busy"),
                           rule("*", "answered")])
CSV = (b"phone_number,first_name,timezone\n"
       b"+12025550143,Ann,Europe/Paris\n+12025550144,Bob,\n+12025550145,Cy,\n"
       b"+12025550146,Dee,Asia/Tokyo\n")


def rerun_path(campaign_id: str) -> str:
    return f"/api/v1/campaigns/{campaign_id}/rerun"


async def finished(raw, campaign_id: str, statuses: dict[int, str]) -> None:
    """Decide the campaign's contacts (by seq; the others completed) and complete it, as
    the engine would have: attempts made, outcomes recorded."""
    await raw.execute("UPDATE contacts SET status = 'completed', attempts = 1, "
                      "last_outcome = 'answered', last_attempt_at = now() "
                      "WHERE campaign_id = $1", uuid.UUID(campaign_id))
    for seq, status in statuses.items():
        await raw.execute("UPDATE contacts SET status = $3, last_outcome = 'busy' "
                          "WHERE campaign_id = $1 AND seq = $2", uuid.UUID(campaign_id), seq,
                          status)
    await raw.execute("UPDATE campaigns SET status = 'completed', started_at = now(), "
                      "completed_at = now() WHERE id = $1", uuid.UUID(campaign_id))


async def contacts(api, campaign_id: str) -> list[dict]:
    page = (await api.get(f"/api/v1/campaigns/{campaign_id}/contacts")).json()
    return page["data"]


@pytest.mark.parametrize("settings_overrides", [DIALING])
async def test_a_rerun_of_the_failed_contacts_dials_them_again(api, raw, create_campaign):
    created = await create_campaign(CSV, retries_per_contact=0, retry_delay_seconds=600,
                                    max_concurrent_calls=3, calling_window=json.dumps(WINDOW),
                                    retry_policy=json.dumps(POLICY))
    assert created.status_code == 201, created.text
    source = created.json()
    await start(api, source["id"])
    with trio.fail_after(30):
        await wait_status(api, source["id"], "completed")
    by_number = {c["phone_number"]: c for c in await contacts(api, source["id"])}
    assert {n for n, c in by_number.items() if c["status"] == "failed"} == set(FAILING)

    response = await api.post(rerun_path(source["id"]), json={"statuses": ["failed"]})
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy == (await api.get(f"/api/v1/campaigns/{copy['id']}")).json()
    assert copy["id"] != source["id"] and copy["status"] == "draft"
    assert copy["name"] == "Q4 follow-ups (rerun)"
    for field in ("agent_id", "phone_number_id", "max_concurrent_calls",
                  "retries_per_contact", "retry_delay_seconds", "calling_window",
                  "retry_policy"):
        assert copy[field] == source[field], field
    assert (copy["calling_window"], copy["retry_policy"]) == (WINDOW, POLICY)
    assert copy["scheduled_at"] is copy["started_at"] is copy["completed_at"] is None
    assert copy["contact_counts"] == {"total": 2, "pending": 2, "in_progress": 0,
                                      "retry_pending": 0, "completed": 0, "failed": 0,
                                      "skipped": 0}
    copied = await contacts(api, copy["id"])
    assert [c["phone_number"] for c in copied] == list(FAILING)  # in the source's order
    for contact in copied:
        was = by_number[contact["phone_number"]]
        assert (contact["row_number"], contact["custom_fields"]) == (
            was["row_number"], was["custom_fields"])
        assert (contact["status"], contact["attempts"], contact["last_outcome"],
                contact["last_attempt_at"], contact["disposition"]) == (
            "pending", 0, None, None, None)
        assert contact["id"] != was["id"]
    # Each contact keeps its zones (Paris for Ann, her number's for Bob).
    zones = await raw.fetch(
        "SELECT c.phone_number, z.names FROM contacts c JOIN campaign_zones z "
        "ON z.campaign_id = c.campaign_id AND z.zone = c.zone WHERE c.campaign_id = $1 "
        "ORDER BY c.seq", uuid.UUID(copy["id"]))
    assert [(row["phone_number"], row["names"]) for row in zones] == [
        (FAILING[0], ["Europe/Paris"]), (FAILING[1], ["America/New_York"])]

    # It dials like any campaign: both fail again, once each.
    await start(api, copy["id"])
    with trio.fail_after(30):
        done = await wait_status(api, copy["id"], "completed")
    assert done["contact_counts"]["failed"] == 2
    calls = (await api.get(f"/api/v1/campaigns/{copy['id']}/calls")).json()
    assert sorted(call["phone_number"] for call in calls["data"]) == list(FAILING)
    # The source is untouched.
    assert (await api.get(f"/api/v1/campaigns/{source['id']}")).json()["contact_counts"] == \
        source_counts_after(by_number)


def source_counts_after(by_number: dict[str, dict]) -> dict[str, int]:
    counts = dict.fromkeys(("pending", "in_progress", "retry_pending", "completed", "failed",
                            "skipped"), 0)
    for contact in by_number.values():
        counts[contact["status"]] += 1
    return {"total": len(by_number), **counts}


async def test_numbers_listed_since_are_left_out(api, raw, create_campaign):
    source = (await create_campaign(contacts_csv(6))).json()
    await finished(raw, source["id"], {0: "failed", 1: "failed", 2: "skipped", 3: "failed"})
    listed = await api.post("/api/v1/dnc", json={"numbers": [us_number(1), us_number(2)]})
    assert listed.status_code == 200, listed.text
    copy = (await api.post(rerun_path(source["id"]),
                           json={"statuses": ["skipped", "failed", "failed"],
                                 "name": "  second try  "})).json()
    assert copy["name"] == "second try"
    assert [c["phone_number"] for c in await contacts(api, copy["id"])] == [
        us_number(0), us_number(3)]
    assert copy["contact_counts"]["total"] == copy["contact_counts"]["pending"] == 2
    # All of them listed: nothing to copy, and nothing is created.
    await api.post("/api/v1/dnc", json={"numbers": [us_number(0), us_number(3)]})
    before = await raw.fetchval("SELECT count(*) FROM campaigns")
    refused = await api.post(rerun_path(source["id"]), json={"statuses": ["failed"]})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("no_contacts", "statuses")
    assert "do-not-call" in error["message"] and error["message"].startswith("statuses: ")
    assert await raw.fetchval("SELECT count(*) FROM campaigns") == before


async def test_no_matching_contact_is_a_400_and_creates_nothing(api, raw, create_campaign):
    source = (await create_campaign(contacts_csv(3))).json()
    await finished(raw, source["id"], {})
    response = await api.post(rerun_path(source["id"]), json={"statuses": ["failed"]})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "no_contacts", "field": "statuses",
        "message": "statuses: the campaign has no contact with status failed"}
    assert await raw.fetchval("SELECT count(*) FROM campaigns") == 1
    assert await raw.fetchval("SELECT count(*) FROM campaign_zones") == 1  # the source's


async def test_only_a_finished_campaign_is_rerun(api, raw, create_campaign):
    draft = (await create_campaign(contacts_csv(2))).json()
    scheduled = (await create_campaign(contacts_csv(2),
                                       scheduled_at="2099-01-01T00:00:00Z")).json()
    paused = (await create_campaign(contacts_csv(2))).json()
    await raw.execute("UPDATE campaigns SET status = 'paused', started_at = now() "
                      "WHERE id = $1", uuid.UUID(paused["id"]))
    for campaign, status in ((draft, "draft"), (scheduled, "scheduled"), (paused, "paused")):
        response = await api.post(rerun_path(campaign["id"]), json={"statuses": ["pending"]})
        assert response.status_code == 409, response.text
        assert response.json()["error"]["message"].startswith(
            f"only a completed or failed campaign can be rerun; this one is {status}")
    await raw.execute("UPDATE campaigns SET status = 'failed', failure_reason = 'x' "
                      "WHERE id = $1", uuid.UUID(paused["id"]))
    rerun = await api.post(rerun_path(paused["id"]), json={"statuses": ["pending"]})
    assert rerun.status_code == 201, rerun.text
    assert rerun.json()["contact_counts"]["pending"] == 2


async def test_bad_input_is_a_400_naming_the_field(api, raw, create_campaign):
    source = (await create_campaign(contacts_csv(2))).json()
    await finished(raw, source["id"], {0: "failed"})
    for body, field in (({"statuses": []}, "statuses"), ({}, "statuses"),
                        ({"statuses": ["lost"]}, "statuses.0"),
                        ({"statuses": "failed"}, "statuses"),
                        ({"statuses": ["failed"] * 7}, "statuses"),
                        ({"statuses": ["failed"], "name": ""}, "name"),
                        ({"statuses": ["failed"], "name": "x" * 201}, "name"),
                        ({"statuses": ["failed"], "other": 1}, "other")):
        response = await api.post(rerun_path(source["id"]), json=body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error["field"] == field and error["message"].startswith(f"{field}: "), body
    not_json = await api.post(rerun_path(source["id"]), content=b"statuses=failed")
    assert not_json.status_code == 400
    assert await raw.fetchval("SELECT count(*) FROM campaigns") == 1


async def test_another_accounts_campaign_and_an_unknown_one_are_not_found(
        gateway, api, db, raw, create_campaign):
    source = (await create_campaign(contacts_csv(2))).json()
    await finished(raw, source["id"], {0: "failed"})
    other = await accounts.create_account(db, name="other", concurrent_max=1,
                                          calls_per_minute=1)
    async with gateway.client(other.api_key) as them:
        theirs = await them.post(rerun_path(source["id"]), json={"statuses": ["failed"]})
    assert theirs.status_code == 404
    unknown = await api.post(rerun_path(str(uuid.uuid4())), json={"statuses": ["failed"]})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


async def test_the_default_name_fits_and_an_unusable_agent_is_a_409(
        api, raw, create_campaign, agent_id):
    source = (await create_campaign(contacts_csv(2), name="n" * 198 + " x")).json()
    await finished(raw, source["id"], {0: "failed"})
    copy = (await api.post(rerun_path(source["id"]), json={"statuses": ["failed"]})).json()
    assert copy["name"] == "n" * 192 + " (rerun)" and len(copy["name"]) == 200
    assert (await api.patch(f"/api/v1/agents/{agent_id}",
                            json={"status": "inactive"})).status_code == 200
    refused = await api.post(rerun_path(source["id"]), json={"statuses": ["failed"]})
    assert refused.status_code == 409
    assert refused.json()["error"]["field"] == "agent_id"


async def test_a_retried_rerun_makes_one_campaign(api, raw, create_campaign):
    source = (await create_campaign(contacts_csv(3))).json()
    await finished(raw, source["id"], {1: "failed"})
    first = await api.post(rerun_path(source["id"]), json={"statuses": ["failed"]},
                           headers={HEADER: "rerun-1"})
    again = await api.post(rerun_path(source["id"]), json={"statuses": ["failed"]},
                           headers={HEADER: "rerun-1"})
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers[REPLAYED_HEADER] == "true"
    assert await raw.fetchval("SELECT count(*) FROM campaigns") == 2


async def test_the_sdk_reruns(gateway, raw, create_campaign):
    source = (await create_campaign(contacts_csv(3))).json()
    await finished(raw, source["id"], {0: "failed", 2: "skipped"})
    async with AsyncClient(gateway.base_url, API_KEY) as client:
        copy = await client.campaigns.rerun(source, [ContactStatus.FAILED, "skipped"])
        assert (copy["status"], copy["contact_counts"]["total"]) == ("draft", 2)
        named = await client.campaigns.rerun(source["id"], ["failed"], name="again")
        assert (named["name"], named["contact_counts"]["total"]) == ("again", 1)
        with pytest.raises(ValidationError) as refused:
            await client.campaigns.rerun(source, ["retry_pending"])
        assert (refused.value.code, refused.value.field) == ("no_contacts", "statuses")
        with pytest.raises(ConflictError):
            await client.campaigns.rerun(copy, ["pending"])  # a draft


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_100k_contact_rerun_is_fast(api, raw, create_campaign):
    source = (await create_campaign(contacts_csv(100_000))).json()
    assert source["contact_counts"]["total"] == 100_000
    await finished(raw, source["id"], {})
    await raw.execute("UPDATE contacts SET status = 'failed' WHERE campaign_id = $1 "
                      "AND seq % 10 <> 0", uuid.UUID(source["id"]))
    began = time.perf_counter()
    response = await api.post(rerun_path(source["id"]), json={"statuses": ["failed"]})
    took = time.perf_counter() - began
    assert response.status_code == 201, response.text
    assert response.json()["contact_counts"]["pending"] == 90_000
    print(f"rerun of 90,000 of 100,000 contacts: {took * 1000:.0f} ms")
    assert took < 5


async def test_the_cli_reruns(gateway, raw, create_campaign):
    from test_cli_client import run_cli

    source = (await create_campaign(contacts_csv(3))).json()
    await finished(raw, source["id"], {0: "failed", 1: "failed"})
    code, out, err = await run_cli(gateway, "campaigns", "rerun", source["id"],
                                   "--status", "failed", "--name", "second pass")
    assert code == 0, err
    copy = json.loads(out)
    assert (copy["name"], copy["status"], copy["contact_counts"]["total"]) == (
        "second pass", "draft", 2)
    code, out, err = await run_cli(gateway, "campaigns", "rerun", source["id"],
                                   "--status", "retry_pending")
    assert code == 1 and "no_contacts" in err
    with pytest.raises(SystemExit) as usage:  # argparse: --status is required
        await run_cli(gateway, "campaigns", "rerun", source["id"])
    assert usage.value.code == 2
