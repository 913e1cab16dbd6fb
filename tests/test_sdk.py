"""The Python SDK (``gateway.client``) against the real server on an ephemeral port.

The server runs in the test's trio loop, so the blocking ``Client`` runs in a worker thread
(``trio.to_thread.run_sync``); ``AsyncClient`` runs on the loop itself. No mocks: every
error comes from the real server (or a real refused connection).
"""

from __future__ import annotations

import uuid
from contextlib import aclosing
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
import trio
from conftest import API_KEY, contacts_csv
from engine_helpers import engine_settings, rule
from ports import free_tcp_port

from gateway.client import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    GatewayError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    ServiceUnavailableError,
    ValidationError,
)
from gateway.client.errors import error_from_response

SEED_TIME = "2027-05-10T18:00:00Z"
# Nothing dials: lifecycle transitions only (0 calls per minute is the kill-switch).
NO_DIALING = {"accounts": {"default_calls_per_minute": 0}}
# Dial fast, with frequent snapshots and heartbeats (the stream must skip the latter).
FAST_DIALING = {**engine_settings([rule("*", "answered", ring=0.05)]),
                "sse": {"tick_seconds": 0.05, "heartbeat_seconds": 0.02}}


def run(fn, *args):
    """A blocking SDK call, off the loop that serves it."""
    return trio.to_thread.run_sync(lambda: fn(*args))


@pytest.fixture
def client(gateway):
    with Client(base_url=gateway.base_url, api_key=API_KEY) as sync_client:
        yield sync_client


@pytest.fixture
async def refs(gateway):
    """An agent and a number made through the SDK."""
    async with AsyncClient(gateway.base_url, API_KEY) as aclient:
        agent = await aclient.agents.create("Ava", greeting="Hi {{first_name}}")
        number = await aclient.phone_numbers.create("+14155550100", label="main")
    return agent, number


def future_seed_time() -> str:
    """The seed's time while it is still in the future, else a month from now."""
    seed = datetime.fromisoformat(SEED_TIME.replace("Z", "+00:00"))
    if seed > datetime.now(UTC) + timedelta(days=1):
        return SEED_TIME
    return (datetime.now(UTC) + timedelta(days=30)).isoformat()


@pytest.mark.parametrize("settings_overrides", [NO_DIALING])
async def test_seed_example_runs_as_written(gateway, tmp_path, monkeypatch, capsys):
    (tmp_path / "contacts.csv").write_bytes(contacts_csv(3))
    monkeypatch.chdir(tmp_path)

    def seed() -> dict:
        from gateway.client import Client
        client = Client(base_url=gateway.base_url, api_key=API_KEY)
        agent = client.agents.create("Ava", greeting="Hi {{first_name}}")
        number = client.phone_numbers.create("+14155550100")
        with open("contacts.csv", "rb") as f:
            campaign = client.campaigns.create(
                name="Q4 follow-ups", agent_id=agent["id"], phone_number_id=number["id"],
                contacts=f, max_concurrent_calls=5, retries_per_contact=1,
                retry_delay_seconds=300, scheduled_at=future_seed_time())
        with open("contacts.csv", "rb") as f:
            draft = client.campaigns.create(name="to delete", agent_id=agent["id"],
                                            phone_number_id=number["id"], contacts=f)
        id = campaign["id"]
        client.campaigns.start(id)
        client.campaigns.pause(id)
        client.campaigns.resume(id)
        client.campaigns.stop(id)
        id = draft["id"]  # only drafts can be deleted
        client.campaigns.delete(id)
        campaign_id = campaign["id"]
        for event in client.campaigns.stream_events(campaign_id):
            print(event)
        client.close()
        return {"campaign": campaign, "draft": draft}

    made = await run(seed)
    campaign = made["campaign"]
    assert campaign["status"] == "scheduled" and campaign["name"] == "Q4 follow-ups"
    assert campaign["import_report"]["rows_accepted"] == 3
    assert (campaign["max_concurrent_calls"], campaign["retries_per_contact"],
            campaign["retry_delay_seconds"]) == (5, 1, 300)
    assert made["draft"]["status"] == "draft"
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1  # a terminal campaign: one snapshot, then end (not yielded)
    assert f"'campaign_id': '{campaign['id']}'" in printed[0]
    assert "'status': 'completed'" in printed[0] and "'skipped': 3" in printed[0]
    async with gateway.client() as api:
        assert (await api.get(f"/api/v1/campaigns/{made['draft']['id']}")).status_code == 404


@pytest.mark.parametrize("settings_overrides", [NO_DIALING])
async def test_lifecycle_returns_campaigns_and_accepts_dicts(client, refs):
    agent, number = refs

    def scenario():
        created = client.campaigns.create("c", agent, number, contacts=b"phone_number\n"
                                          b"+12025550143\n")
        assert created["status"] == "draft"
        started = client.campaigns.start(created)  # the dict itself names the campaign
        paused = client.campaigns.pause(created["id"])
        resumed = client.campaigns.resume(uuid.UUID(created["id"]))
        stopped = client.campaigns.stop(created)
        return [c["status"] for c in (started, paused, resumed, stopped)]

    assert await run(scenario) == ["running", "paused", "running", "completed"]


async def test_contacts_from_a_path_or_bytes_and_an_aware_datetime(client, refs, tmp_path):
    agent, number = refs
    path = tmp_path / "list.csv"
    path.write_bytes(b"phone_number,first_name\n+12025550143,Ann\n(202) 555-0144,Bob\nx,y\n")
    when = datetime.now(timezone(timedelta(hours=2))) + timedelta(days=3)

    def scenario():
        by_path = client.campaigns.create("p", agent["id"], number["id"], contacts=str(path),
                                          scheduled_at=when)
        by_pathlike = client.campaigns.create("q", agent["id"], number["id"], contacts=path)
        return by_path, by_pathlike

    by_path, by_pathlike = await run(scenario)
    assert by_path["status"] == "scheduled"
    assert datetime.fromisoformat(by_path["scheduled_at"].replace("Z", "+00:00")) == when
    report = by_pathlike["import_report"]
    assert (report["rows_accepted"], report["rows_rejected"]) == (2, 1)
    assert report["rejected"][0]["reason"] == "invalid_number"
    with pytest.raises(ValueError, match="timezone-aware"):
        client.campaigns.create("n", agent, number, contacts=b"x",
                                scheduled_at=datetime(2030, 1, 1))
    with pytest.raises(TypeError, match="binary mode"):
        with open(path) as text_file:
            client.campaigns.create("t", agent, number, contacts=text_file)


async def test_iter_contacts_walks_every_page(client, refs):
    agent, number = refs

    def scenario():
        created = client.campaigns.create("big", agent, number, contacts=contacts_csv(250))
        first = client.campaigns.contacts(created, page=0)
        every = list(client.campaigns.iter_contacts(created["id"]))
        pending = list(client.campaigns.iter_contacts(created["id"], status="pending"))
        failed = list(client.campaigns.iter_contacts(created["id"], status="failed"))
        return first, every, pending, failed

    first, every, pending, failed = await run(scenario)
    assert (len(first["data"]), first["total"], first["has_more"]) == (100, 250, True)
    assert len(every) == 250 and len({c["id"] for c in every}) == 250
    assert [c["custom_fields"]["first_name"] for c in every[:3]] == ["name0", "name1", "name2"]
    assert len(pending) == 250 and failed == []


async def test_agents_numbers_and_call_limits(client):
    def scenario():
        agent = client.agents.create("Bo", greeting="Hello {{name}}", sip_uri="sip:bo@10.0.0.5",
                                     max_concurrent_calls=8)
        with_uri = client.agents.get(agent)
        cleared = client.agents.update(agent, sip_uri=None, status="inactive")
        uncapped = client.agents.update(agent, max_concurrent_calls=None)
        with pytest.raises(ValidationError) as too_many:
            client.agents.update(agent, max_concurrent_calls=10_001)
        listed = client.agents.list()
        number = client.phone_numbers.create("+1 415 555 0101", label="a")
        relabelled = client.phone_numbers.update(number, label="b", outbound_enabled=False)
        numbers = client.phone_numbers.list(page=0)
        gone = (client.agents.delete(agent), client.phone_numbers.delete(number))
        with pytest.raises(NotFoundError):
            client.phone_numbers.get(number)
        return (agent, with_uri, cleared, uncapped, too_many.value, listed, number, relabelled,
                numbers, gone, client.call_limits())

    (agent, with_uri, cleared, uncapped, too_many, listed, number, relabelled, numbers, gone,
     limits) = await run(scenario)
    assert agent["variables"] == ["name"] and with_uri["sip_uri"] == "sip:bo@10.0.0.5"
    assert cleared["sip_uri"] is None and cleared["status"] == "inactive"
    assert cleared["greeting"] == "Hello {{name}}"  # PATCH leaves the others alone
    assert (agent["max_concurrent_calls"], cleared["max_concurrent_calls"]) == (8, 8)
    assert uncapped["max_concurrent_calls"] is None and uncapped["status"] == "inactive"
    assert too_many.field == "max_concurrent_calls"
    assert [a["id"] for a in listed["data"]] == [agent["id"]] and listed["total"] == 1
    assert number["number"] == "+14155550101"
    assert relabelled["label"] == "b" and relabelled["outbound_enabled"] is False
    assert numbers["total"] == 1 and gone == (None, None)
    assert limits == {"concurrent_max": 10, "calls_per_minute": 60, "daily_calls_max": None,
                      "daily_minutes_max": None}


async def test_errors_are_typed_with_the_servers_code_and_message(gateway, client, refs):
    agent, number = refs
    wrong = Client(gateway.base_url, "gw_" + "x" * 43)

    def scenario():
        errors = {}
        for name, call in {
            "401": wrong.call_limits,
            "404": lambda: client.campaigns.get(str(uuid.uuid4())),
            "409": lambda: client.campaigns.pause(
                client.campaigns.create("c", agent, number, contacts=b"phone_number\n"
                                        b"+12025550143\n")),
            "400": lambda: client.campaigns.create("c", agent, number, contacts=b"x",
                                                   max_concurrent_calls=500),
            "400-past": lambda: client.campaigns.create(
                "c", agent, number, contacts=b"x", scheduled_at="2020-01-01T00:00:00Z"),
            "400-csv": lambda: client.campaigns.create("c", agent, number,
                                                       contacts=b"name\nAnn\n"),
            "409-number": lambda: client.phone_numbers.create("+14155550100"),
        }.items():
            with pytest.raises(GatewayError) as caught:
                call()
            errors[name] = caught.value
        wrong.close()
        return errors

    errors = await run(scenario)
    unauthorized = errors["401"]
    assert isinstance(unauthorized, AuthenticationError)
    assert (unauthorized.status_code, unauthorized.code, unauthorized.message) == (
        401, "unauthorized", "invalid API key")
    assert isinstance(unauthorized.response, httpx.Response)
    missing = errors["404"]
    assert isinstance(missing, NotFoundError) and missing.code == "not_found"
    assert missing.message == "campaign not found"
    conflict = errors["409"]
    assert isinstance(conflict, ConflictError) and conflict.status_code == 409
    assert conflict.message == "cannot pause a campaign that is draft"
    assert str(conflict) == "conflict: cannot pause a campaign that is draft (HTTP 409)"
    invalid = errors["400"]
    assert isinstance(invalid, ValidationError) and invalid.code == "validation_error"
    assert invalid.field == "max_concurrent_calls" and "500" in invalid.message
    assert errors["400-past"].field == "scheduled_at"
    assert errors["400-csv"].field == "contacts" and "phone_number" in errors["400-csv"].message
    assert isinstance(errors["409-number"], ConflictError)
    assert errors["409-number"].field == "number"


@pytest.mark.parametrize("settings_overrides", [{"limits": {"max_csv_bytes": 100}}])
async def test_a_csv_over_the_limit_is_payload_too_large(client, refs):
    agent, number = refs
    with pytest.raises(PayloadTooLargeError) as caught:
        await run(lambda: client.campaigns.create("big", agent, number,
                                                  contacts=contacts_csv(50)))
    assert caught.value.status_code == 413 and caught.value.code == "payload_too_large"
    assert caught.value.field == "contacts"


async def test_connection_refused_is_api_connection_error():
    port = free_tcp_port()  # free a moment ago: nothing listens
    # max_retries=0: the error itself (retries are tests/test_sdk_retries.py's).
    with Client(f"http://127.0.0.1:{port}", API_KEY, timeout=5, max_retries=0) as dead:
        with pytest.raises(APIConnectionError) as caught:
            dead.call_limits()
        with pytest.raises(APIConnectionError):
            list(dead.campaigns.stream_events(str(uuid.uuid4())))
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.status_code is None and caught.value.code == "connection_error"
    async with AsyncClient(f"http://127.0.0.1:{port}", API_KEY, timeout=5,
                           max_retries=0) as adead:
        with pytest.raises(APIConnectionError):
            await adead.call_limits()


def test_503_and_unknown_statuses_map_to_their_classes():
    request = httpx.Request("GET", "http://gateway/api/v1/call-limits")
    unavailable = error_from_response(httpx.Response(
        503, headers={"Retry-After": "5"}, request=request,
        json={"error": {"code": "service_unavailable", "message": "the database is down"}}))
    assert isinstance(unavailable, ServiceUnavailableError) and unavailable.retry_after == 5
    assert isinstance(unavailable, ServerError)
    proxy = error_from_response(httpx.Response(502, text="Bad gateway", request=request))
    assert type(proxy) is ServerError and proxy.code == "http_502"
    assert proxy.message == "Bad gateway"
    other = error_from_response(httpx.Response(
        415, request=request, json={"error": {"code": "unsupported_media_type", "message": "m"}}))
    assert type(other) is GatewayError and other.code == "unsupported_media_type"


@pytest.mark.parametrize("settings_overrides", [FAST_DIALING])
async def test_stream_events_yields_snapshots_until_the_end(client, refs):
    agent, number = refs

    def scenario():
        created = client.campaigns.create("live", agent, number, contacts=contacts_csv(40),
                                          max_concurrent_calls=4)
        events = client.campaigns.stream_events(created)
        first = next(events)  # subscribed before the start: the draft's snapshot
        client.campaigns.start(created)
        return created, [first, *events]

    created, snapshots = await run(scenario)
    assert snapshots[0]["status"] == "draft" and snapshots[0]["total"] == 40
    assert all(s and s["campaign_id"] == created["id"] for s in snapshots)
    last = snapshots[-1]
    assert last["status"] == "completed" and last["completed"] == 40
    assert last["outcomes"]["answered"] == 40 and last["in_flight"] == 0
    assert {"pending", "in_progress", "retry_pending", "failed", "skipped", "attempts",
            "max_concurrent_calls", "started_at", "completed_at", "updated_at"} <= set(last)


async def test_stream_events_of_a_missing_campaign_is_not_found(client):
    with pytest.raises(NotFoundError):
        await run(lambda: list(client.campaigns.stream_events(str(uuid.uuid4()))))


@pytest.mark.parametrize("settings_overrides", [FAST_DIALING])
async def test_async_client_under_trio(gateway):
    async with AsyncClient(gateway.base_url, API_KEY) as aclient:
        agent = await aclient.agents.create("Ava")
        number = await aclient.phone_numbers.create("+14155550100")
        created = await aclient.campaigns.create(
            "async", agent["id"], number["id"], contacts=contacts_csv(120),
            max_concurrent_calls=10, retries_per_contact=0)
        assert created["status"] == "draft"
        assert (await aclient.campaigns.get(created))["id"] == created["id"]
        listed = await aclient.campaigns.list(status="draft")
        assert [c["id"] for c in listed["data"]] == [created["id"]]
        contacts = [c async for c in aclient.campaigns.iter_contacts(created["id"])]
        assert len(contacts) == 120
        assert (await aclient.call_limits())["concurrent_max"] == 50
        with pytest.raises(ConflictError, match="cannot resume a campaign that is draft"):
            await aclient.campaigns.resume(created)
        with pytest.raises(NotFoundError):
            await aclient.campaigns.start(str(uuid.uuid4()))
        with pytest.raises(ValidationError) as caught:
            await aclient.agents.create("x", greeting="Hi {{oops")
        assert caught.value.field == "greeting"

        assert (await aclient.campaigns.start(created))["status"] == "running"
        async with aclosing(aclient.campaigns.stream_events(created["id"])) as events:
            snapshots = [snapshot async for snapshot in events]
        assert snapshots[-1]["status"] == "completed" and snapshots[-1]["completed"] == 120
        calls = [c async for c in aclient.campaigns.iter_calls(created)]
        assert len(calls) == 120 and {c["outcome"] for c in calls} == {"answered"}
        everything = [c async for c in aclient.campaigns.iter_campaigns()]
        assert [c["status"] for c in everything] == ["completed"]
        with pytest.raises(ConflictError, match="completed"):
            await aclient.campaigns.delete(created)


async def test_async_stream_can_be_left_early(gateway, refs):
    agent, number = refs
    async with AsyncClient(gateway.base_url, API_KEY) as aclient:
        created = await aclient.campaigns.create("early", agent, number,
                                                 contacts=b"phone_number\n+12025550143\n")
        async with aclosing(aclient.campaigns.stream_events(created)) as events:
            async for snapshot in events:
                assert snapshot["status"] == "draft"
                break


@pytest.mark.parametrize("settings_overrides", [FAST_DIALING])
async def test_the_stream_of_a_deleted_campaign_ends(gateway, refs):
    agent, number = refs
    async with AsyncClient(gateway.base_url, API_KEY) as aclient:
        created = await aclient.campaigns.create("gone", agent, number,
                                                 contacts=b"phone_number\n+12025550143\n")
        ended = False
        async with aclosing(aclient.campaigns.stream_events(created)) as events:
            assert (await events.__anext__())["status"] == "draft"
            await aclient.campaigns.delete(created)
            with trio.move_on_after(3):  # 60 snapshot ticks
                async for _ in events:  # ends cleanly at `event: end` (status "deleted")
                    pass
                ended = True
        assert ended, "the stream was still open 3 s after the campaign was deleted"
