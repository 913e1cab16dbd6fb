"""Webhooks: endpoints through the API, events written with their changes, delivered signed
(Standard Webhooks, verified by the receiver), in order per campaign, at least once, retried
while a real receiver fails or hangs, an endpoint disabled after failing too long."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta, timezone

import pytest
import test_engine_faults as faults
import trio
from engine_helpers import engine_settings, rule, wait_status
from multipart_body import multipart
from pydantic import TypeAdapter
from test_engine_faults import serving
from webhook_receiver import HANG, receiving

from gateway.engine.webhook_http import denied, literal_address
from gateway.vocabulary import WebhookEvent

pytestmark = pytest.mark.timeout(60)

HOOKS = {"poll_seconds": 0.02, "retry_base_seconds": 0.05, "retry_max_seconds": 0.2,
         "timeout_seconds": 0.5}


@pytest.fixture
def settings_overrides():
    settings = engine_settings([rule("*0143", "answered", ring=30), rule("*7", "busy"),
                                rule("*", "answered", talk=0.01)])
    settings["webhooks"] = HOOKS
    return settings


async def _endpoint(api, receiver, **fields) -> dict:
    response = await api.post("/api/v1/webhooks", json={"url": receiver.url, **fields})
    assert response.status_code == 201, response.text
    created = response.json()
    receiver.secret = created["secret"]
    return created


async def _run_campaign(api, create_campaign, contacts: int, **fields) -> str:
    csv = "phone_number\n" + "".join(f"+1212555{1000 + i:04d}\n" for i in range(contacts))
    created = await create_campaign(csv.encode(), retries_per_contact=1,
                                    retry_delay_seconds=0, **fields)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    started = await api.post(f"/api/v1/campaigns/{campaign_id}/start")
    assert started.status_code == 200, started.text
    await wait_status(api, campaign_id, "completed")
    return campaign_id


async def _calls(api, campaign_id) -> list[dict]:
    calls, page = [], 0
    while True:
        body = (await api.get(f"/api/v1/campaigns/{campaign_id}/calls?page={page}")).json()
        calls += body["data"]
        if not body["has_more"]:
            return calls
        page += 1


def _is_final(receiver) -> bool:
    return "campaign.completed" in receiver.types()


async def test_endpoints_are_created_listed_and_deleted_with_the_secret_shown_once(api):
    created = await api.post("/api/v1/webhooks", json={
        "url": "https://crm.example.com/hooks?tenant=7", "events": ["call.ended"],
        "description": "CRM"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["events"] == ["call.ended"] and body["status"] == "active"
    got = (await api.get(f"/api/v1/webhooks/{body['id']}")).json()
    assert "secret" not in got and got["url"] == "https://crm.example.com/hooks?tenant=7"
    listed = (await api.get("/api/v1/webhooks")).json()
    assert [w["id"] for w in listed["data"]] == [body["id"]] and "secret" not in listed["data"][0]
    every = (await api.post("/api/v1/webhooks", json={"url": "http://10.0.0.5:8080/x"})).json()
    assert every["events"] == list(WebhookEvent)
    assert (await api.delete(f"/api/v1/webhooks/{body['id']}")).status_code == 204
    assert (await api.get(f"/api/v1/webhooks/{body['id']}")).status_code == 404
    assert (await api.delete(f"/api/v1/webhooks/{body['id']}")).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://example.com/x"}, "url"), ({"url": "/relative"}, "url"),
    ({"url": "http://"}, "url"), ({"url": "http://example.com:99999/"}, "url"),
    ({"url": "http://exa mple.com/"}, "url"), ({"url": "https://x.test", "events": []}, "events"),
    ({"url": "https://x.test", "events": ["call.started"]}, "events"),
    ({"url": "https://x.test", "secret": "mine"}, "secret"), ({}, "url")])
async def test_a_bad_endpoint_is_a_400_naming_the_field(api, body, field):
    response = await api.post("/api/v1/webhooks", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"].startswith(field)
    assert (await api.get("/api/v1/webhooks")).json()["total"] == 0


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data", "http://[::ffff:169.254.169.254]/x",
    "http://0.0.0.0:8080/", "http://[fe80::1]/x", "http://[fd00:ec2::254]/", "http://224.0.0.1/"])
async def test_an_address_in_a_denied_network_is_refused_at_creation(api, url):
    response = await api.post("/api/v1/webhooks", json={"url": url})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == "url" and "webhooks.deny_networks" in error["message"]
    assert (await api.get("/api/v1/webhooks")).json()["total"] == 0


class TestDeniedNetworks:
    """A gateway whose accounts may not reach its own machine (loopback denied)."""

    @pytest.fixture
    def settings_overrides(self):
        settings = engine_settings([rule("*", "answered", talk=0.01)])
        settings["webhooks"] = {**HOOKS, "deny_networks": ["127.0.0.0/8", "::1/128"]}
        return settings

    async def test_a_name_resolving_into_one_is_never_connected_to(self, api,
                                                                   create_campaign):
        async with receiving() as receiver:
            port = receiver.url.rsplit(":", 1)[1]
            literal = await api.post("/api/v1/webhooks", json={"url": receiver.url})
            assert literal.status_code == 400, literal.text
            # A name is resolved at each connection: localhost is 127.0.0.1 (and ::1).
            receiver.url = f"http://localhost:{port}"
            endpoint = await _endpoint(api, receiver, events=["call.ended"])
            await _run_campaign(api, create_campaign, 2)
            with trio.fail_after(10):
                while True:
                    deliveries = (await api.get(
                        f"/api/v1/webhooks/{endpoint['id']}/deliveries")).json()["data"]
                    if len(deliveries) == 2 and deliveries[-1]["attempts"] >= 2:
                        break  # the campaign's first event, tried again and again
                    await trio.sleep(0.05)
        assert receiver.requests == []
        head, waiting = deliveries[-1], deliveries[0]  # listed newest first
        assert head["status"] == "pending" and head["last_status_code"] is None
        assert "localhost is at 127.0.0.1" in head["last_error"]
        assert "webhooks.deny_networks" in head["last_error"]
        assert waiting["attempts"] == 0  # behind it, in order


@pytest.mark.parametrize("when", [
    datetime(2026, 12, 3, 9, 47, 30, 442889, tzinfo=UTC),
    datetime(2026, 12, 3, 9, 47, 30, tzinfo=UTC),
    datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
    datetime(2026, 6, 1, 23, 59, 59, 1, tzinfo=timezone(timedelta(hours=-5)))])
async def test_payload_and_export_times_are_written_as_the_api_writes_them(raw, when):
    """One definition (api_time): the fraction only when it is not zero, as pydantic."""
    expected = TypeAdapter(datetime).dump_json(when.astimezone(UTC)).decode().strip('"')
    assert await raw.fetchval("SELECT api_time($1)", when) == expected
    assert await raw.fetchval("SELECT webhook_time($1)", when) == expected
    assert await raw.fetchval("SELECT api_time(NULL)") is None


async def test_payload_times_are_inlined_into_the_statements_that_use_them(raw):
    """webhook_time and api_time are planned as the to_char they stand for, not called:
    declared more constant than their body (IMMUTABLE over a STABLE to_char), PostgreSQL
    called each one as a SQL function, which doubled the cost of a call.ended payload."""
    plan = "\n".join(row[0] for row in await raw.fetch(
        "EXPLAIN (VERBOSE) SELECT webhook_payload('call.ended', webhook_call(a)) "
        "FROM attempts a"))
    assert "to_char" in plan, plan
    assert "webhook_time" not in plan and "api_time" not in plan, plan


def test_denied_checks_the_address_an_ipv4_mapped_one_stands_for():
    networks = [ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10")]
    assert denied("169.254.169.254", networks)
    assert denied("::ffff:169.254.169.254", networks)
    assert denied("fe80::1%eth0", networks)
    assert not denied("10.0.0.1", networks) and not denied("::ffff:10.0.0.1", networks)
    assert not denied("2001:db8::1", networks)
    assert literal_address("localhost") is None and literal_address("::1") == "::1"


async def test_every_event_is_delivered_signed_once_in_order_matching_the_api(
        api, create_campaign):
    async with receiving() as receiver:
        await _endpoint(api, receiver)
        campaign_id = await _run_campaign(api, create_campaign, 12)
        with trio.fail_after(20):
            await receiver.until(_is_final)
        calls = await _calls(api, campaign_id)
        contacts = (await api.get(f"/api/v1/campaigns/{campaign_id}/contacts")).json()["data"]
        campaign = (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()
    assert all(r.verified for r in receiver.requests)
    assert receiver.overlaps == 0
    types = receiver.types()
    assert types[0] == "campaign.started" and types[-1] == "campaign.completed"
    ended = [r.event["data"] for r in receiver.acked if r.event["type"] == "call.ended"]
    finished = [r.event["data"] for r in receiver.acked
                if r.event["type"] == "contact.finished"]
    # Each call as the calls page shows it, each contact as the contacts page shows it.
    assert sorted((e["call"] for e in ended), key=lambda c: c["id"]) == sorted(
        calls, key=lambda c: c["id"])
    assert all(e["campaign_id"] == campaign_id for e in ended + finished)
    assert sorted((f["contact"] for f in finished), key=lambda c: c["id"]) == sorted(
        (c for c in contacts if c["status"] in ("completed", "failed")), key=lambda c: c["id"])
    assert len(finished) == 12
    # Keys in the order the API writes them (the payload is built as text, not sorted).
    assert all(list(r.event) == ["type", "timestamp", "data"] for r in receiver.acked)
    assert all(list(e["call"]) == list(calls[0]) for e in ended)
    assert all(list(f["contact"]) == list(contacts[0]) for f in finished)
    # A contact's calls come before its contact.finished, its retry's after its first call.
    position = {}
    for index, r in enumerate(receiver.acked):
        data = r.event["data"]
        if r.event["type"] == "call.ended":
            position.setdefault(data["call"]["contact_id"], []).append((index, data["call"]))
        elif r.event["type"] == "contact.finished":
            seen = position[data["contact"]["id"]]
            assert all(i < index for i, _ in seen)
            assert [c["attempt"] for _, c in seen] == list(range(1, len(seen) + 1))
    assert len(set(receiver.acked_ids())) == len(receiver.acked)  # each event once
    done = receiver.acked[-1].event["data"]["campaign"]
    assert done["status"] == "completed" and done["contact_counts"] == campaign["contact_counts"]


async def test_a_failing_then_hanging_receiver_gets_every_event_in_order_after_it_recovers(
        api, create_campaign):
    def plan(n, event):
        return 500 if n < 3 else HANG if n < 5 else 503 if n == 7 else 200

    async with receiving(plan) as receiver:
        endpoint = await _endpoint(api, receiver, events=["call.ended", "campaign.completed"])
        campaign_id = await _run_campaign(api, create_campaign, 6)
        with trio.fail_after(20):
            await receiver.until(_is_final)
            # The results are written after the answers (in groups): wait for the last.
            while True:
                deliveries = (await api.get(
                    f"/api/v1/webhooks/{endpoint['id']}/deliveries")).json()["data"]
                if {d["status"] for d in deliveries} == {"delivered"}:
                    break
                await trio.sleep(0.02)
    types = receiver.types()
    assert types.count("call.ended") == len(await _calls(api, campaign_id)) and \
        types[-1] == "campaign.completed"
    assert receiver.overlaps == 0
    # The retries are of the head of the queue: what was acknowledged is the order sent.
    ended_at = [r.event["data"]["call"]["ended_at"] for r in receiver.acked[:-1]]
    assert ended_at == sorted(ended_at)
    assert len(set(receiver.acked_ids())) == len(receiver.acked)
    first = receiver.requests[0].headers["webhook-id"]
    assert [r.headers["webhook-id"] for r in receiver.requests[:6]] == [first] * 6
    head = next(d for d in deliveries if d["event_id"] == first)
    assert head["status"] == "delivered" and head["attempts"] == 6
    assert head["last_status_code"] == 200


async def test_an_endpoint_failing_too_long_is_disabled_and_enable_sends_again(
        database_url, tmp_path, settings_overrides):
    healthy = False

    def plan(n, event):
        return 200 if healthy else 500

    overrides = {**settings_overrides,
                 "webhooks": {**HOOKS, "give_up_after_seconds": 0.3}}
    async with serving(database_url, tmp_path, overrides) as gateway, \
            gateway.client() as api, receiving(plan) as receiver:
        endpoint = await _endpoint(api, receiver, events=["campaign.started",
                                                          "campaign.completed"])
        campaign_id = await faults.create_campaign(api, b"phone_number\n+12125551000\n")
        await faults.start(api, campaign_id)
        await wait_status(api, campaign_id, "completed")
        with trio.fail_after(20):
            while (got := (await api.get(f"/api/v1/webhooks/{endpoint['id']}")).json()
                   )["status"] != "disabled":
                await trio.sleep(0.05)
        assert "failed for" in got["disabled_reason"] and "HTTP 500" in got["disabled_reason"]
        deliveries = (await api.get(
            f"/api/v1/webhooks/{endpoint['id']}/deliveries")).json()["data"]
        assert {d["status"] for d in deliveries} == {"abandoned"}
        assert receiver.acked == []
        healthy = True
        enabled = await api.post(f"/api/v1/webhooks/{endpoint['id']}/enable")
        assert enabled.status_code == 200 and enabled.json()["status"] == "active"
        with trio.fail_after(20):
            await receiver.until(_is_final)
        assert receiver.types() == ["campaign.started", "campaign.completed"]


async def test_a_delivery_is_resent_with_the_same_webhook_id(api, create_campaign):
    async with receiving() as receiver:
        endpoint = await _endpoint(api, receiver, events=["campaign.completed"])
        await _run_campaign(api, create_campaign, 1)
        with trio.fail_after(20):
            await receiver.until(_is_final)
        page = (await api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries")).json()
        [delivery] = page["data"]
        resent = await api.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/"
                                f"{delivery['event_id']}/resend")
        assert resent.status_code == 201, resent.text
        assert resent.json()["event_id"] == delivery["event_id"]
        with trio.fail_after(20):
            await receiver.until(lambda r: len(r.acked) == 2)
        assert receiver.acked_ids() == [delivery["event_id"]] * 2
        missing = await api.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/"
                                 f"{endpoint['id']}/resend")
        assert missing.status_code == 404


async def test_deliveries_left_by_a_stopped_gateway_are_sent_after_its_restart(
        database_url, tmp_path, settings_overrides):
    up = False

    def plan(n, event):
        return 204 if up else 502

    async with receiving(plan) as receiver:
        async with serving(database_url, tmp_path, settings_overrides) as gateway, \
                gateway.client() as api:
            await _endpoint(api, receiver)
            campaign_id = await faults.create_campaign(
                api, "".join(["phone_number\n"] + [f"+1212555{2000 + i}\n" for i in range(5)]
                             ).encode())
            await faults.start(api, campaign_id)
            await wait_status(api, campaign_id, "completed")
            with trio.fail_after(10):
                await receiver.until(lambda r: len(r.requests) >= 3)
        # Stopped: nothing is sent now, whatever the receiver says.
        up = True
        sent = len(receiver.requests)
        await trio.sleep(0.3)
        assert len(receiver.requests) == sent and receiver.acked == []
        async with serving(database_url, tmp_path, settings_overrides) as gateway, \
                gateway.client() as api:
            with trio.fail_after(20):
                await receiver.until(_is_final)
            calls = await _calls(api, campaign_id)
    types = receiver.types()
    assert types[0] == "campaign.started" and types[-1] == "campaign.completed"
    assert types.count("call.ended") == len(calls) and types.count("contact.finished") == 5
    assert len(set(receiver.acked_ids())) == len(receiver.acked)


async def test_two_deliverers_on_one_database_never_send_a_campaign_at_once(
        db, api, create_campaign):
    """Two processes' actors (two Deliverers, each with its own owner id) share one
    database: every event is acknowledged once, in order, never two of a campaign at once."""
    from gateway.config import WebhooksSettings
    from gateway.engine.webhooks import Deliverer

    async with receiving(lambda n, event: 200) as receiver:
        await _endpoint(api, receiver)
        # The gateway's own actor is one; two more race it for the same queues.
        settings = WebhooksSettings(poll_seconds=0.001, claim_batch_size=3)
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                await nursery.start(Deliverer(db, settings).run)
            ids = [await _run_campaign(api, create_campaign, 8) for _ in range(2)]
            with trio.fail_after(20):
                await receiver.until(lambda r: r.types().count("campaign.completed") == 2)
            nursery.cancel_scope.cancel()
    assert receiver.overlaps == 0
    assert len(set(receiver.acked_ids())) == len(receiver.acked)
    for campaign_id in ids:
        mine = [r.event for r in receiver.acked
                if campaign_id in (r.event["data"].get("campaign_id"),
                                   r.event["data"].get("campaign", {}).get("id"))]
        assert mine[0]["type"] == "campaign.started"
        assert mine[-1]["type"] == "campaign.completed"
        ended = [e["data"]["call"]["ended_at"] for e in mine if e["type"] == "call.ended"]
        assert ended == sorted(ended)


async def test_a_hanging_receiver_holds_back_only_its_own_endpoint(
        api, create_campaign, gateway, db):
    from gateway.store import accounts

    other = await accounts.create_account(db, name="B", concurrent_max=50,
                                          calls_per_minute=1_000_000)
    async with receiving(lambda n, event: HANG) as stuck, \
            receiving(lambda n, event: 204) as healthy, \
            gateway.client(other.api_key) as other_api:
        await _endpoint(api, stuck)
        await _endpoint(other_api, healthy)
        agent = await other_api.post("/api/v1/agents", json={"name": "B", "greeting": "Hi"})
        number = await other_api.post("/api/v1/phone-numbers", json={"number": "+14155550199"})
        slow_campaign = await _run_campaign(api, create_campaign, 5)
        body, content_type = multipart(
            {"name": "b", "agent_id": agent.json()["id"],
             "phone_number_id": number.json()["id"]},
            {"contacts": b"phone_number\n+12125553000\n+12125553001\n"})
        created = await other_api.post("/api/v1/campaigns", content=body,
                                       headers={"Content-Type": content_type})
        campaign_id = created.json()["id"]
        await faults.start(other_api, campaign_id)
        with trio.fail_after(10):
            await healthy.until(_is_final)
        assert stuck.acked == [] and len(stuck.requests) >= 1
        assert all(r.event["type"] == "campaign.started" for r in stuck.requests)
    assert slow_campaign


async def test_each_transition_is_an_event_and_a_refused_one_is_none(api, create_campaign):
    async with receiving() as receiver:
        await _endpoint(api, receiver, events=["campaign.started", "campaign.paused",
                                               "campaign.resumed", "campaign.completed"])
        # This number rings for half a minute: the campaign is still running.
        created = await create_campaign(b"phone_number\n+12025550143\n")
        campaign_id = created.json()["id"]
        for verb in ("start", "pause", "resume", "stop"):
            response = await api.post(f"/api/v1/campaigns/{campaign_id}/{verb}")
            assert response.status_code == 200, response.text
        refused = await api.post(f"/api/v1/campaigns/{campaign_id}/pause")
        assert refused.status_code == 409
        with trio.fail_after(10):
            await receiver.until(_is_final)
        await trio.sleep(0.2)
    assert receiver.types() == ["campaign.started", "campaign.paused", "campaign.resumed",
                                "campaign.completed"]
    statuses = [r.event["data"]["campaign"]["status"] for r in receiver.acked]
    assert statuses == ["running", "paused", "running", "completed"]
