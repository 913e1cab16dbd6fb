"""Webhooks through the SDK (``client.webhooks``, both clients), against the real server
and a real receiver verifying the signatures."""

from __future__ import annotations

import pytest
import trio
from conftest import API_KEY
from engine_helpers import engine_settings, rule, wait_status
from webhook_receiver import receiving

from gateway.client import AsyncClient, Client, NotFoundError, ValidationError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings_overrides():
    settings = engine_settings([rule("*", "answered")])
    settings["webhooks"] = {"poll_seconds": 0.02}
    return settings


async def test_async_client_creates_lists_and_reads_deliveries(gateway, api, create_campaign):
    async with AsyncClient(gateway.base_url, API_KEY) as client, receiving() as receiver:
        created = await client.webhooks.create(receiver.url,
                                               events=["campaign.started",
                                                       "campaign.completed"],
                                               description="CRM")
        receiver.secret = created["secret"]
        assert created["secret"].startswith("whsec_") and created["status"] == "active"
        assert (await client.webhooks.get(created["id"]))["description"] == "CRM"
        assert [w["id"] for w in (await client.webhooks.list())["data"]] == [created["id"]]
        campaign = (await create_campaign()).json()
        await client.campaigns.start(campaign["id"])
        await wait_status(api, campaign["id"], "completed")
        with trio.fail_after(10):
            await receiver.until(lambda r: "campaign.completed" in r.types())
        assert all(r.verified for r in receiver.requests)
        with trio.fail_after(10):  # the answer reached the receiver before it is recorded
            while len((page := await client.webhooks.deliveries(
                    created["id"], status="delivered"))["data"]) < 2:
                await trio.sleep(0.02)
        assert [d["type"] for d in page["data"]] == ["campaign.completed", "campaign.started"]
        assert [d["event_id"] async for d in client.webhooks.iter_deliveries(
            created, status="delivered")] == [d["event_id"] for d in page["data"]]
        assert [w["id"] async for w in client.webhooks.iter_webhooks()] == [created["id"]]
        again = await client.webhooks.resend(created["id"], page["data"][0])
        assert again["event_id"] == page["data"][0]["event_id"]
        assert again["status"] == "pending"
        assert (await client.webhooks.enable(created["id"]))["status"] == "active"
        with pytest.raises(ValidationError) as caught:
            await client.webhooks.create("ftp://x.test")
        assert caught.value.field == "url"
        assert await client.webhooks.delete(created["id"]) is None
        with pytest.raises(NotFoundError):
            await client.webhooks.get(created["id"])


async def test_sync_client_manages_endpoints(gateway):
    def run() -> tuple:
        with Client(gateway.base_url, API_KEY) as client:
            created = client.webhooks.create("https://crm.example.com/hooks")
            listed = client.webhooks.list()
            assert [w["id"] for w in client.webhooks.iter_webhooks()] == [created["id"]]
            assert list(client.webhooks.iter_deliveries(created)) == []
            deliveries = client.webhooks.deliveries(created)
            client.webhooks.delete(created)
            return created, listed, deliveries, client.webhooks.list()

    created, listed, deliveries, after = await trio.to_thread.run_sync(run)
    assert len(created["events"]) == 7 and listed["total"] == 1
    assert deliveries["data"] == [] and after["total"] == 0


async def test_the_cli_manages_endpoints_and_lists_deliveries(gateway, api, create_campaign):
    import json

    from test_cli_client import run_cli

    async with receiving() as receiver:
        code, out, err = await run_cli(gateway, "webhooks", "create", "--url", receiver.url,
                                       "--event", "campaign.started", "--event",
                                       "campaign.completed", "--description", "CRM")
        assert code == 0, err
        created = json.loads(out)
        receiver.secret = created["secret"]
        assert created["events"] == ["campaign.started", "campaign.completed"]
        campaign = (await create_campaign()).json()
        await api.post(f"/api/v1/campaigns/{campaign['id']}/start")
        with trio.fail_after(10):
            await receiver.until(lambda r: "campaign.completed" in r.types())
        code, out, err = await run_cli(gateway, "webhooks", "deliveries", created["id"],
                                       "--all")
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert [d["type"] for d in lines] == ["campaign.completed", "campaign.started"]
        code, out, err = await run_cli(gateway, "webhooks", "resend", created["id"],
                                       lines[0]["event_id"])
        assert code == 0 and json.loads(out)["event_id"] == lines[0]["event_id"]
        code, out, _ = await run_cli(gateway, "webhooks", "list", "--table")
        assert code == 0 and created["id"] in out and "secret" not in out
        code, out, _ = await run_cli(gateway, "webhooks", "delete", created["id"])
        assert code == 0 and json.loads(out)["deleted"] is True
        code, _, err = await run_cli(gateway, "webhooks", "show", created["id"])
        assert code == 1 and "not_found" in err
