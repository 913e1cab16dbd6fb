"""The whole gateway dialing through the SIP adapter into sipp: every call bridged from a
sipp trunk to a sipp agent (the campaign's agent's sip_uri). A campaign completes with
both legs' SIP call ids and status codes recorded, an agent that refuses makes
``agent_unavailable`` attempts, and a shutdown mid-call hangs up both legs of every call.
"""

from __future__ import annotations

import contextlib
import functools
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import trio
from conftest import API_KEY, contacts_csv, make_settings, multipart
from test_sip_harness import sipp_bridge

from gateway.serve import serve


def _sip_settings(database_url: str, tmp_path: Path, proxy: str, grace: float = 5, **sip):
    return make_settings(
        database_url, tmp_path,
        http={"host": "127.0.0.1", "port": 0, "shutdown_grace_seconds": grace},
        telephony={"adapter": "sip", "sip": {"proxy": proxy, "bind_host": "127.0.0.1",
                                             "bind_port": 0, "ring_timeout_seconds": 5,
                                             **sip}},
        engine={"scheduler_poll_seconds": 0.05})


@contextlib.asynccontextmanager
async def _gateway(settings):
    """The gateway serving; yields an API client. Leaving it shuts the gateway down."""
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(functools.partial(
            serve, settings, shutdown=shutdown, handle_signals=False, bootstrap_key=API_KEY))
        async with httpx.AsyncClient(base_url=binds[0], timeout=30, headers={
                "Authorization": f"Bearer {API_KEY}"}) as api:
            yield api
        shutdown.set()


async def _start_campaign(api, count: int, agent_uri: str) -> str:
    created = await api.post("/api/v1/agents", json={"name": "Ava", "sip_uri": agent_uri})
    assert created.status_code == 201, created.text
    agent = created.json()["id"]
    number = (await api.post("/api/v1/phone-numbers",
                             json={"number": "+14155550100"})).json()["id"]
    body, content_type = multipart({"name": "sip", "agent_id": agent,
                                    "phone_number_id": number,
                                    "max_concurrent_calls": str(count)},
                                   {"contacts": contacts_csv(count)})
    created = await api.post("/api/v1/campaigns", content=body,
                             headers={"Content-Type": content_type})
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert (await api.post(f"/api/v1/campaigns/{campaign_id}/start")).status_code == 200
    return campaign_id


async def _run_to_completion(api, count: int, agent_uri: str) -> list[dict]:
    """Start a campaign of ``count`` contacts, wait for it to complete; its calls."""
    campaign_id = await _start_campaign(api, count, agent_uri)
    url = f"/api/v1/campaigns/{campaign_id}"
    while (await api.get(url)).json()["status"] != "completed":
        await trio.sleep(0.05)
    return (await api.get(f"{url}/calls")).json()["data"]


@pytest.mark.timeout(40)
async def test_campaign_over_sip_records_call_ids(database_url, tmp_path):
    async with sipp_bridge("trunk_answer_then_bye.xml", "agent_answer.xml", tmp_path,
                           calls=5) as peers:
        async with _gateway(_sip_settings(database_url, tmp_path, peers.proxy)) as api:
            calls = await _run_to_completion(api, 5, peers.agent_uri)
        assert await peers.wait() == (0, 0), peers.errors()
    trunk, agent = peers.messages()
    assert [call["outcome"] for call in calls] == ["answered"] * 5
    assert all(call["sip_status"] == 200 and call["sip_call_id"] in trunk
               for call in calls)
    # Every call bridged: the agent leg recorded, connected, and the contact hung up.
    assert all(call["agent_sip_status"] == 200 and call["agent_sip_call_id"] in agent
               for call in calls)
    assert all(datetime.fromisoformat(call["answered_at"])
               <= datetime.fromisoformat(call["connected_at"])
               <= datetime.fromisoformat(call["ended_at"]) for call in calls)
    assert [call["hangup_by"] for call in calls] == ["contact"] * 5
    assert len({call["agent_sip_call_id"] for call in calls}) == 5
    # The agent got each attempt's context.
    assert all(f"X-Call-Id: {call['id']}" in agent for call in calls)


@pytest.mark.timeout(40)
async def test_campaign_whose_agent_refuses(database_url, tmp_path):
    async with sipp_bridge("trunk_declined.xml", "agent_reject_486.xml", tmp_path,
                           calls=3) as peers:
        async with _gateway(_sip_settings(database_url, tmp_path, peers.proxy)) as api:
            calls = await _run_to_completion(api, 3, peers.agent_uri)
        # The trunk's scenario: every contact ACKed with a declining answer, then BYE.
        assert await peers.wait() == (0, 0), peers.errors()
    assert [call["outcome"] for call in calls] == ["agent_unavailable"] * 3
    assert [(call["sip_status"], call["agent_sip_status"], call["hangup_by"])
            for call in calls] == [(200, 486, "gateway")] * 3
    assert all(call["answered_at"] is not None and call["connected_at"] is None
               for call in calls)
    assert all(call["agent_sip_call_id"] in peers.agent.messages() for call in calls)


@pytest.mark.timeout(40)
async def test_shutdown_hangs_up_calls_in_flight(database_url, tmp_path):
    async with sipp_bridge("answer_and_wait.xml", "agent_answer.xml", tmp_path,
                           calls=3) as peers:
        settings = _sip_settings(database_url, tmp_path, peers.proxy, grace=0.3,
                                 max_call_seconds=60)
        async with _gateway(settings) as api:
            await _start_campaign(api, 3, peers.agent_uri)
            # All three calls bridged: the trunk's ACK follows the agent's answer.
            while peers.trunk.messages().count("ACK sip:") < 3:
                await trio.sleep(0.05)
        # Shutdown: 0.3 s of grace, then the calls are cancelled and each sends its BYEs;
        # both scenarios end with the BYE and its 200, so success means all legs hung up.
        assert await peers.wait() == (0, 0), peers.errors()
    trunk, agent = peers.messages()
    assert trunk.count("BYE sip:") == 3
    assert agent.count("BYE sip:agent@") == 3
