"""A gateway that dials over SIP connects every answered call to the campaign's agent at
its ``sip_uri``: a campaign cannot be created with an agent that has none (400), nor started
or resumed once its agent has lost it (409), and a scheduled one whose agent lost it fails
at its time, saying why. The simulated carrier needs none.

The real server on an ephemeral port with the SIP adapter bound to 127.0.0.1 (its proxy a
port nothing listens on). The account's calls_per_minute is 0, so a started campaign
dials nothing: only the API's checks are under test, no SIP traffic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio
from conftest import contacts_csv
from engine_helpers import start

SIP_URI = "sip:ava@10.0.0.5:5060"
SIP_GATEWAY = {
    "telephony": {"adapter": "sip", "sip": {"proxy": "127.0.0.1:9", "bind_host": "127.0.0.1",
                                            "bind_port": 0}},
    "accounts": {"default_calls_per_minute": 0},
    "limits": {"min_retry_delay_seconds": 0},
}


async def _set_sip_uri(api, agent_id: str, sip_uri: str | None) -> None:
    response = await api.patch(f"/api/v1/agents/{agent_id}", json={"sip_uri": sip_uri})
    assert response.status_code == 200, response.text
    assert response.json()["sip_uri"] == sip_uri


def _names_sip_uri(response, status: int) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == "agent_id"
    assert error["message"].startswith("agent_id: ") and "sip_uri" in error["message"]


@pytest.mark.parametrize("settings_overrides", [SIP_GATEWAY])
async def test_an_agent_without_sip_uri_cannot_be_used_over_sip(api, db, create_campaign,
                                                                agent_id):
    refused = await create_campaign(contacts_csv(3))
    _names_sip_uri(refused, 400)
    assert refused.json()["error"]["code"] == "validation_error"
    assert await db.fetchval("testing.count_campaigns") == 0  # nothing was written

    await _set_sip_uri(api, agent_id, SIP_URI)
    created = await create_campaign(contacts_csv(3))
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]

    # The agent loses its sip_uri before the start: the start is refused, nothing changes.
    await _set_sip_uri(api, agent_id, None)
    response = await api.post(f"/api/v1/campaigns/{campaign_id}/start")
    _names_sip_uri(response, 409)
    assert response.json()["error"]["code"] == "conflict"
    assert (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()["status"] == "draft"

    # Given back, the campaign starts; paused, it cannot resume once the sip_uri is gone.
    await _set_sip_uri(api, agent_id, SIP_URI)
    assert (await start(api, campaign_id))["status"] == "running"
    assert (await start(api, campaign_id, "pause"))["status"] == "paused"
    await _set_sip_uri(api, agent_id, None)
    for verb in ("resume", "start"):  # start also resumes a paused campaign
        _names_sip_uri(await api.post(f"/api/v1/campaigns/{campaign_id}/{verb}"), 409)
    assert (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()["status"] == "paused"
    await _set_sip_uri(api, agent_id, SIP_URI)
    assert (await start(api, campaign_id, "resume"))["status"] == "running"


@pytest.mark.parametrize("settings_overrides", [{"accounts": {"default_calls_per_minute": 0}}])
async def test_the_simulated_carrier_needs_no_sip_uri(api, create_campaign, agent_id):
    agent = (await api.get(f"/api/v1/agents/{agent_id}")).json()
    assert agent["sip_uri"] is None
    created = await create_campaign(contacts_csv(3))
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert (await start(api, campaign_id))["status"] == "running"
    assert (await start(api, campaign_id, "pause"))["status"] == "paused"
    assert (await start(api, campaign_id, "resume"))["status"] == "running"


@pytest.mark.parametrize("settings_overrides", [
    {**SIP_GATEWAY, "engine": {"scheduler_poll_seconds": 0.05}}])
async def test_a_scheduled_campaign_whose_agent_lost_its_sip_uri_fails_at_its_time(
        api, create_campaign, agent_id):
    await _set_sip_uri(api, agent_id, SIP_URI)
    at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    created = await create_campaign(contacts_csv(3), scheduled_at=at)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    await _set_sip_uri(api, agent_id, None)
    with trio.fail_after(10):
        while (campaign := (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()
               )["status"] == "scheduled":
            await trio.sleep(0.05)
    assert campaign["status"] == "failed"
    assert "sip_uri" in campaign["failure_reason"]
