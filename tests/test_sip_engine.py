"""The whole gateway dialing through the SIP adapter into sipp: a campaign completes with
SIP call ids and status codes recorded, and a shutdown mid-call hangs every call up.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import httpx
import pytest
import trio
from conftest import API_KEY, contacts_csv, make_settings, multipart
from test_sip_harness import sipp_uas

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


async def _start_campaign(api, count: int) -> str:
    agent = (await api.post("/api/v1/agents", json={"name": "Ava"})).json()["id"]
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


@pytest.mark.timeout(40)
async def test_campaign_over_sip_records_call_ids(database_url, tmp_path):
    async with sipp_uas("answer_then_bye.xml", tmp_path, calls=5) as sipp:
        async with _gateway(_sip_settings(database_url, tmp_path, sipp.proxy)) as api:
            campaign_id = await _start_campaign(api, 5)
            url = f"/api/v1/campaigns/{campaign_id}"
            while (await api.get(url)).json()["status"] != "completed":
                await trio.sleep(0.05)
            calls = (await api.get(f"{url}/calls")).json()["data"]
        assert await sipp.wait() == 0, sipp.errors()
    assert [call["outcome"] for call in calls] == ["answered"] * 5
    assert all(call["sip_status"] == 200 and call["sip_call_id"] in sipp.messages()
               for call in calls)


@pytest.mark.timeout(40)
async def test_shutdown_hangs_up_calls_in_flight(database_url, tmp_path):
    async with sipp_uas("answer_and_wait.xml", tmp_path, calls=3) as sipp:
        settings = _sip_settings(database_url, tmp_path, sipp.proxy, grace=0.3,
                                 max_call_seconds=60)
        async with _gateway(settings) as api:
            await _start_campaign(api, 3)
            while sipp.messages().count("ACK sip:") < 3:  # all three calls answered
                await trio.sleep(0.05)
        # Shutdown: 0.3 s of grace, then the calls are cancelled and each sends its BYE;
        # sipp's scenario ends with the BYE and its 200, so success means all hung up.
        assert await sipp.wait() == 0, sipp.errors()
    assert sipp.messages().count("BYE sip:") == 3
