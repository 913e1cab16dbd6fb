"""``trunk_offer = "early"``: the agent is invited first, its offer goes to the trunk, and
the contact's answer reaches the agent in a re-INVITE (sipp peers checking each step:
tests/sip/early_*.xml)."""

from __future__ import annotations

import re

from test_sip_harness import Answers, dial_request, running_adapter, sip_settings, sipp_uas

from gateway.telephony.sip.sdp import hold_answer, with_origin


async def test_early_offer_bridges_through_the_agents_offer_and_a_re_invite(tmp_path):
    (tmp_path / "trunk").mkdir()
    (tmp_path / "agent").mkdir()
    answers, connects = Answers(), Answers()
    async with sipp_uas("early_trunk.xml", tmp_path / "trunk") as trunk, \
            sipp_uas("early_agent.xml", tmp_path / "agent") as agent, \
            running_adapter(sip_settings(trunk.proxy, max_call_seconds=30,
                                         trunk_offer="early")) as adapter:
        request = dial_request(agent_sip_uri=f"sip:agent@127.0.0.1:{agent.port}")
        result = await adapter.dial(request, answers, connects)
        assert await trunk.wait() == 0, trunk.errors()
        assert await agent.wait() == 0, agent.errors()
    assert (result.outcome, result.hangup_by) == ("answered", "contact")
    assert answers.times == [result.answered_at] and connects.times == [result.connected_at]
    assert result.connected_at >= result.answered_at
    assert result.agent_sip_status == 200 and result.agent_sip_call_id in agent.messages()
    # The hold answer (in the ACK) and the re-INVITE's offer are one SDP session of the
    # gateway's: same origin and session id, the version one up (RFC 3264 section 8).
    origins = re.findall(r"o=- (\d+) (\d+) IN", agent.messages())
    assert len(origins) == 2 and origins[0][0] == origins[1][0]
    assert int(origins[1][1]) == int(origins[0][1]) + 1


async def test_early_offer_with_a_rejecting_contact_hangs_up_the_held_agent(tmp_path):
    (tmp_path / "trunk").mkdir()
    (tmp_path / "agent").mkdir()
    async with sipp_uas("reject_486.xml", tmp_path / "trunk") as trunk, \
            sipp_uas("early_agent_held.xml", tmp_path / "agent") as agent, \
            running_adapter(sip_settings(trunk.proxy, trunk_offer="early")) as adapter:
        request = dial_request(agent_sip_uri=f"sip:agent@127.0.0.1:{agent.port}")
        result = await adapter.dial(request, Answers(), Answers())
        assert await trunk.wait() == 0, trunk.errors()
        assert await agent.wait() == 0, agent.errors()  # its scenario ends with our BYE
    assert (result.outcome, result.sip_status) == ("busy", 486)
    assert result.connected_at is None and result.hangup_by is None


def test_hold_answer_and_origin_rewrite():
    offer = b"v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n" \
            b"m=audio 4000 RTP/AVP 0 101\r\nm=video 5000 RTP/AVP 96\r\n"
    held = hold_answer(offer, "192.0.2.9", 77).decode()
    assert "m=audio 9 RTP/AVP 0\r\na=inactive\r\nm=video 9 RTP/AVP 96\r\na=inactive" in held
    assert "o=- 77 77 IN IP4 192.0.2.9" in held
    contact_answer = b"v=0\r\no=trunk 5 5 IN IP4 10.9.9.9\r\nm=audio 6000 RTP/AVP 0\r\n"
    again = with_origin(contact_answer, held.encode()).decode()
    assert "o=- 77 78 IN IP4 192.0.2.9" in again and "m=audio 6000 RTP/AVP 0" in again
    assert "o=trunk" not in again
