"""re-INVITE and UPDATE relayed between the legs of a bridged call, against sipp peers
that check what reaches them (tests/sip/relay_*.xml)."""

from __future__ import annotations

from test_sip_harness import Answers, dial_request, running_adapter, sip_settings, sipp_uas


async def _bridged(tmp_path, trunk_scenario: str, agent_scenario: str):
    (tmp_path / "trunk").mkdir()
    (tmp_path / "agent").mkdir()
    async with sipp_uas(trunk_scenario, tmp_path / "trunk") as trunk, \
            sipp_uas(agent_scenario, tmp_path / "agent") as agent, \
            running_adapter(sip_settings(trunk.proxy, max_call_seconds=30)) as adapter:
        request = dial_request(agent_sip_uri=f"sip:agent@127.0.0.1:{agent.port}")
        result = await adapter.dial(request, Answers(), Answers())
        assert await trunk.wait() == 0, trunk.errors()
        assert await agent.wait() == 0, agent.errors()
    return result, trunk, agent


async def test_a_re_invite_from_the_trunk_reaches_the_agent_and_its_answer_comes_back(
        tmp_path):
    result, trunk, agent = await _bridged(tmp_path, "relay_trunk_reinvite.xml",
                                          "relay_agent_answers_reinvite.xml")
    assert (result.outcome, result.hangup_by) == ("answered", "contact")
    assert result.connected_at is not None
    # The agent got the re-INVITE in its own dialog: its Call-ID, a CSeq above the first.
    log = agent.messages()
    assert log.count(f"Call-ID: {result.agent_sip_call_id}") >= 4
    assert "CSeq: 2 INVITE" in log and "a=sendonly" in log
    assert "a=recvonly" in trunk.messages()


async def test_an_update_from_the_agent_reaches_the_trunk_and_its_answer_comes_back(tmp_path):
    result, trunk, _agent = await _bridged(tmp_path, "relay_trunk_answers_update.xml",
                                          "relay_agent_update.xml")
    assert (result.outcome, result.hangup_by) == ("answered", "agent")
    assert f"Call-ID: {result.sip_call_id}" in trunk.messages()
    assert "UPDATE sip:" in trunk.messages()


async def test_an_offerless_re_invite_gets_the_offer_and_carries_the_answer_back(tmp_path):
    # The agent asks, the trunk offers in its 200, the agent's ACK answers: the trunk's
    # ACK (sent by the gateway) must carry that answer.
    result, trunk, _agent = await _bridged(tmp_path, "relay_trunk_offers_in_200.xml",
                                          "relay_agent_offerless_reinvite.xml")
    assert (result.outcome, result.hangup_by) == ("answered", "contact")
    assert "a=recvonly" in trunk.messages()

