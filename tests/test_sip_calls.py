"""The SIP adapter against a real sipp UAS: one scenario per call flow (tests/sip/*.xml).

Each test compares the adapter's CallResult with what sipp saw: its exit status (0 when
its scenario ran to the end for every call) and, where it matters, its message log.
Answered calls are bridged to a second sipp, the agent (see test_sip_bridge.py for the
agent leg's own flows).
"""

from __future__ import annotations

import pytest
import trio
from test_sip_harness import (
    Answers,
    LossyRelay,
    dial_request,
    running_adapter,
    sip_settings,
    sipp_bridge,
    sipp_uas,
)


async def test_far_end_hangs_up(tmp_path):
    answers = Answers()
    async with sipp_bridge("trunk_answer_then_bye.xml", "agent_answer.xml",
                           tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:
        result = await adapter.dial(peers.request(), answers)
        assert await peers.wait() == (0, 0), peers.errors()
    assert result.outcome == "answered"
    assert result.sip_status == 200
    assert answers.times == [result.answered_at]
    assert 0.2 < result.duration_seconds < 5
    assert result.sip_call_id and result.sip_call_id in peers.trunk.messages()
    # The far end's BYE was passed on to the agent (its scenario ends with it).
    assert result.hangup_by == "contact"
    assert result.agent_sip_call_id and result.agent_sip_call_id in peers.agent.messages()


async def test_gateway_hangs_up_at_max_call_seconds(tmp_path):
    async with sipp_bridge("answer_and_wait.xml", "agent_answer.xml", tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=1)) as adapter:
        result = await adapter.dial(peers.request(), Answers())
        # Both scenarios end with our BYE: both legs were hung up.
        assert await peers.wait() == (0, 0), peers.errors()
    assert result.outcome == "answered"
    assert result.hangup_by == "gateway"
    assert 0.9 <= result.duration_seconds < 3
    port = peers.trunk.port
    log = peers.trunk.messages()
    # ACK and BYE went to the 200's Contact, with its To-tag.
    assert f"ACK sip:127.0.0.1:{port};transport=UDP SIP/2.0" in log
    assert f"BYE sip:127.0.0.1:{port};transport=UDP SIP/2.0" in log
    agent = peers.agent.messages()
    assert f"ACK sip:agent@127.0.0.1:{peers.agent.port};transport=UDP SIP/2.0" in agent
    assert f"BYE sip:agent@127.0.0.1:{peers.agent.port};transport=UDP SIP/2.0" in agent


@pytest.mark.parametrize(("code", "reason", "outcome"), [
    (486, "Busy Here", "busy"),
    (404, "Not Found", "invalid_number"),
    (503, "Service Unavailable", "failed"),
    (480, "Temporarily Unavailable", "no_answer"),
])
async def test_rejected_calls_map_to_outcomes(tmp_path, code, reason, outcome):
    async with sipp_uas(f"reject_{code}.xml", tmp_path) as sipp, \
            running_adapter(sip_settings(sipp.proxy)) as adapter:
        answers = Answers()
        result = await adapter.dial(dial_request(), answers)
        # sipp's scenario ends with the ACK: its success means the final was ACKed.
        assert await sipp.wait() == 0, sipp.errors()
    assert (result.outcome, result.sip_status) == (outcome, code)
    assert result.answered_at is None and result.ended_at is not None
    assert answers.times == []


async def test_ring_timeout_cancels_the_call(tmp_path):
    async with sipp_uas("ring_no_answer.xml", tmp_path) as sipp, \
            running_adapter(sip_settings(sipp.proxy, ring_timeout_seconds=1)) as adapter:
        started = trio.current_time()
        result = await adapter.dial(dial_request(), Answers())
        elapsed = trio.current_time() - started
        assert await sipp.wait() == 0, sipp.errors()
    assert (result.outcome, result.sip_status) == ("no_answer", 487)
    assert 0.9 <= elapsed < 4
    log = sipp.messages()
    # The CANCEL reuses the INVITE's branch; the 487 is ACKed within the transaction.
    assert "CANCEL sip:+12025550143@127.0.0.1" in log
    assert "ACK sip:+12025550143@127.0.0.1" in log


async def test_digest_challenge_is_answered(tmp_path):
    async with sipp_bridge("auth_challenge.xml", "agent_answer.xml", tmp_path, trunk_extra=(
            "-key", "auth_user", "gateway", "-key", "auth_pass", "s3cret")) as peers, \
            running_adapter(sip_settings(peers.proxy, username="gateway",
                                         password="s3cret")) as adapter:
        result = await adapter.dial(peers.request(), Answers())
        # sipp's verifyauth checked the response digest: a wrong one gets a 403.
        assert await peers.wait() == (0, 0), peers.errors()
    assert (result.outcome, result.sip_status) == ("answered", 200)
    assert "Authorization" not in peers.agent.messages()  # credentials are the trunk's
    log = peers.trunk.messages()
    assert log.count("INVITE sip:") == 2
    assert 'Authorization: Digest username="gateway", realm="sipp.test"' in log
    assert "qop=auth, nc=00000001" in log and "CSeq: 2 INVITE" in log


async def test_wrong_password_fails(tmp_path):
    async with sipp_uas("auth_challenge.xml", tmp_path, extra=(
            "-key", "auth_user", "gateway", "-key", "auth_pass", "other")) as sipp, \
            running_adapter(sip_settings(sipp.proxy, username="gateway",
                                         password="s3cret")) as adapter:
        result = await adapter.dial(dial_request(), Answers())
        assert await sipp.wait() != 0  # its scenario takes the 403 branch: a failed call
    assert (result.outcome, result.sip_status) == ("failed", 403)


async def test_second_challenge_fails(tmp_path):
    async with sipp_uas("auth_always.xml", tmp_path) as sipp, \
            running_adapter(sip_settings(sipp.proxy)) as adapter:
        result = await adapter.dial(dial_request(), Answers())
        assert await sipp.wait() == 0, sipp.errors()
    assert (result.outcome, result.sip_status) == ("failed", 401)
    assert sipp.messages().count("INVITE sip:") == 2


async def test_lost_invite_is_retransmitted(tmp_path):
    first_invite = iter([True])  # drop the first INVITE datagram, and only it

    def drop(data: bytes) -> bool:
        return data.startswith(b"INVITE ") and next(first_invite, False)

    # The trunk hangs up itself (its BYE comes straight from sipp): a BYE of ours would go
    # to sipp's Contact, and sipp answers it through the relay, from an address the
    # dialog does not take responses from.
    async with sipp_bridge("trunk_answer_then_bye.xml", "agent_answer.xml",
                           tmp_path) as peers, \
            trio.open_nursery() as nursery:
        relay = await nursery.start(LossyRelay(("127.0.0.1", peers.trunk.port), drop).run)
        proxy = f"127.0.0.1:{relay.address[1]}"
        async with running_adapter(sip_settings(proxy)) as adapter:
            answers = Answers()
            started = trio.current_time()
            result = await adapter.dial(peers.request(), answers)
        assert await peers.wait() == (0, 0), peers.errors()
        nursery.cancel_scope.cancel()
    assert result.outcome == "answered"
    assert len(relay.dropped) == 1
    # sipp only saw the retransmission; the agent's INVITE went straight to the agent.
    assert peers.trunk.messages().count("INVITE sip:") == 1
    assert peers.agent.messages().count("INVITE sip:agent@") == 1
    # Timer A: the retransmission left T1 (0.5 s) after the first INVITE.
    assert 0.45 <= answers.trio_times[0] - started < 1.5


@pytest.mark.timeout(30)
async def test_twenty_concurrent_calls(tmp_path):
    results = []
    async with sipp_bridge("trunk_answer_then_bye.xml", "agent_answer.xml", tmp_path,
                           calls=20) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:

        async def one(i: int) -> None:
            results.append(await adapter.dial(peers.request(f"+1202555{i:04d}"), Answers()))

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(one, i)
        assert await peers.wait() == (0, 0), peers.errors()
    assert [r.outcome for r in results] == ["answered"] * 20
    for peer in (peers.trunk, peers.agent):
        stats = peer.statistics()
        assert (stats["SuccessfulCall(C)"], stats["FailedCall(C)"]) == ("20", "0")
    assert len({r.sip_call_id for r in results}) == 20
    assert len({r.agent_sip_call_id for r in results}) == 20
    # Each agent leg carried its own contact's number.
    agent = peers.agent.messages()
    assert all(f"X-Contact-Number: +1202555{i:04d}" in agent for i in range(20))
