"""An agent's media address: set through the API, carried to the SIP INVITE's SDP."""

from __future__ import annotations

import attrs
from test_sip_harness import dial_request

from gateway.telephony.sip.outgoing import SipProfile, build_invite

PROFILE = SipProfile(proxy_host="192.0.2.1", proxy_port=5060, proxy_addr=("192.0.2.1", 5060),
                     local_host="198.51.100.7", local_port=5062, media_address="203.0.113.5")


def _sdp_host(request) -> str:
    invite = build_invite(PROFILE, request, call_id="c@h", from_tag="t", cseq=1, branch="z9hG4bKx")
    line = next(text for text in invite.body.decode().splitlines() if text.startswith("c="))
    return line.split()[-1]


def test_sdp_uses_the_agents_address_else_the_adapters():
    assert _sdp_host(dial_request()) == "203.0.113.5"
    agent_request = attrs.evolve(dial_request(), agent_media_address="10.20.30.40")
    assert _sdp_host(agent_request) == "10.20.30.40"


async def test_media_address_through_the_api(api):
    created = await api.post("/api/v1/agents", json={"name": "A", "media_address": "10.0.0.9"})
    assert created.status_code == 201 and created.json()["media_address"] == "10.0.0.9"
    agent = created.json()["id"]
    cleared = await api.patch(f"/api/v1/agents/{agent}", json={"media_address": None})
    assert cleared.json()["media_address"] is None
    bad = await api.post("/api/v1/agents", json={"name": "B", "media_address": "10.0.0.9\r\nX: y"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "media_address"
