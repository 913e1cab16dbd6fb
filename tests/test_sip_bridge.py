"""Bridged calls: the SIP adapter between a sipp trunk and a sipp agent.

Each peer's scenario checks what it receives (no offer to the trunk, the offer and the
context headers to the agent, the agent's answer, or an answer declining every stream,
in the trunk's ACK) and sipp exits 0 only when its scenario ran to the end; the test
compares the adapter's CallResult with that. A peer that must see nothing is stopped and
its statistics read (see test_sip_harness.py).
"""

from __future__ import annotations

import hashlib
import re

import pytest
import trio
from ports import free_udp_port
from test_sip_harness import (
    Answers,
    dial_request,
    running_adapter,
    sip_settings,
    sipp_bridge,
    sipp_uas,
)

# agent_answer_timeout_seconds in the tests where the agent leg fails.
AGENT_TIMEOUT = 1.0


def _bye_targets(log: str) -> list[str]:
    return re.findall(r"^BYE (\S+) SIP/2\.0", log, re.MULTILINE)


async def test_contact_hangs_up_a_bridged_call(tmp_path):
    answers, connects = Answers(), Answers()
    async with sipp_bridge("trunk_answer_then_bye.xml", "agent_answer.xml",
                           tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:
        result = await adapter.dial(peers.request(), answers, connects)
        assert await peers.wait() == (0, 0), peers.errors()
    trunk, agent = peers.messages()
    assert result.outcome == "answered"
    assert result.hangup_by == "contact"
    assert (result.sip_status, result.agent_sip_status) == (200, 200)
    assert answers.times == [result.answered_at]
    assert connects.times == [result.connected_at]
    assert result.answered_at <= result.connected_at
    assert result.agent_sip_call_id and result.agent_sip_call_id in agent
    assert result.sip_call_id in trunk
    assert "X-Contact-Number: +12025550143" in agent
    # The contact's BYE was passed on: the agent's scenario ends with it.
    assert _bye_targets(agent) == [f"sip:agent@127.0.0.1:{peers.agent.port};transport=UDP"]


async def test_agent_hangs_up(tmp_path):
    connects = Answers()
    async with sipp_bridge("answer_and_wait.xml", "agent_answer_then_bye.xml",
                           tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:
        result = await adapter.dial(peers.request(), Answers(), connects)
        assert await peers.wait() == (0, 0), peers.errors()
    trunk, agent = peers.messages()
    assert (result.outcome, result.hangup_by) == ("answered", "agent")
    assert connects.times == [result.connected_at]
    assert (result.sip_status, result.agent_sip_status) == (200, 200)
    assert 0.2 < result.duration_seconds < 5  # the agent's BYE came 300 ms after its ACK
    # The trunk got our BYE (its scenario ends with it), at the 200's Contact.
    assert _bye_targets(trunk) == [f"sip:127.0.0.1:{peers.trunk.port};transport=UDP"]
    assert result.sip_call_id in trunk and result.agent_sip_call_id in agent


async def test_max_call_seconds_ends_both_legs(tmp_path):
    answers, connects = Answers(), Answers()
    async with sipp_bridge("answer_and_wait.xml", "agent_answer.xml", tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=1)) as adapter:
        result = await adapter.dial(peers.request(), answers, connects)
        ended = trio.current_time()
        assert await peers.wait() == (0, 0), peers.errors()
    trunk, agent = peers.messages()
    assert (result.outcome, result.hangup_by) == ("answered", "gateway")
    assert connects.times == [result.connected_at]
    # max_call_seconds runs from the contact's answer.
    assert 1.0 <= ended - answers.trio_times[0] < 2.5
    assert 0.9 <= result.duration_seconds < 2.5
    assert _bye_targets(trunk) == [f"sip:127.0.0.1:{peers.trunk.port};transport=UDP"]
    assert _bye_targets(agent) == [f"sip:agent@127.0.0.1:{peers.agent.port};transport=UDP"]


@pytest.mark.parametrize(("scenario", "status"), [
    ("agent_reject_486.xml", 486), ("agent_reject_488.xml", 488), ("agent_silent.xml", None),
], ids=["486", "488", "silent"])
async def test_agent_that_does_not_take_the_call(tmp_path, scenario, status):
    answers, connects = Answers(), Answers()
    async with sipp_bridge("trunk_declined.xml", scenario, tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30,
                                         agent_answer_timeout_seconds=AGENT_TIMEOUT)
                            ) as adapter:
        result = await adapter.dial(peers.request(), answers, connects)
        elapsed = trio.current_time() - answers.trio_times[0]
        # The trunk's scenario: an ACK whose SDP declines both streams, then our BYE.
        assert await peers.wait() == (0, 0), peers.errors()
    trunk, agent = peers.messages()
    assert (result.outcome, result.sip_status) == ("agent_unavailable", 200)
    assert result.agent_sip_status == status
    assert answers.times == [result.answered_at] and connects.times == []
    assert result.connected_at is None and result.hangup_by == "gateway"
    assert result.agent_sip_call_id and result.agent_sip_call_id in agent
    if status is None:  # given up at agent_answer_timeout_seconds
        assert AGENT_TIMEOUT <= elapsed < AGENT_TIMEOUT + 1
    else:
        assert elapsed < 1
    assert trunk.index("ACK sip:") < trunk.index("BYE sip:")


async def test_unreachable_agent(tmp_path):
    answers = Answers()
    nobody = f"sip:agent@127.0.0.1:{free_udp_port()}"
    async with sipp_uas("trunk_declined.xml", tmp_path) as trunk, \
            running_adapter(sip_settings(trunk.proxy, max_call_seconds=30,
                                         agent_answer_timeout_seconds=AGENT_TIMEOUT)
                            ) as adapter:
        result = await adapter.dial(dial_request(agent_sip_uri=nobody), answers)
        elapsed = trio.current_time() - answers.trio_times[0]
        assert await trunk.wait() == 0, trunk.errors()
    assert (result.outcome, result.agent_sip_status) == ("agent_unavailable", None)
    assert result.hangup_by == "gateway" and result.connected_at is None
    assert AGENT_TIMEOUT <= elapsed < AGENT_TIMEOUT + 1


async def test_agent_answer_without_sdp(tmp_path):
    async with sipp_bridge("trunk_declined.xml", "agent_answer_without_sdp.xml",
                           tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:
        result = await adapter.dial(peers.request(), Answers())
        # The agent's scenario: its 200 ACKed, then our BYE.
        assert await peers.wait() == (0, 0), peers.errors()
    assert (result.outcome, result.agent_sip_status) == ("agent_unavailable", 200)
    assert result.hangup_by == "gateway" and result.connected_at is None
    assert len(_bye_targets(peers.agent.messages())) == 1


async def test_request_without_agent_sip_uri(tmp_path):
    async with sipp_uas("trunk_declined.xml", tmp_path) as trunk, \
            running_adapter(sip_settings(trunk.proxy, max_call_seconds=30)) as adapter:
        result = await adapter.dial(dial_request(), Answers())
        assert await trunk.wait() == 0, trunk.errors()
    assert (result.outcome, result.sip_status) == ("agent_unavailable", 200)
    assert (result.agent_sip_status, result.agent_sip_call_id) == (None, None)
    assert result.hangup_by == "gateway"


async def test_contact_answer_without_offer_never_invites_the_agent(tmp_path):
    async with sipp_bridge("trunk_no_offer.xml", "agent_answer.xml", tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:
        result = await adapter.dial(peers.request(), Answers())
        # The trunk's scenario: an ACK without a body, then our BYE.
        assert await peers.trunk.wait() == 0, peers.errors()
        await peers.agent.stop()
    assert (result.outcome, result.sip_status) == ("agent_unavailable", 200)
    assert (result.agent_sip_status, result.agent_sip_call_id) == (None, None)
    assert peers.agent.calls_received() == 0
    assert "INVITE" not in peers.agent.messages()


async def test_ring_timeout_creates_no_agent_leg(tmp_path):
    answers = Answers()
    async with sipp_bridge("ring_no_answer.xml", "agent_answer.xml", tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, ring_timeout_seconds=1)) as adapter:
        result = await adapter.dial(peers.request(), answers)
        # The trunk's scenario: CANCEL, 200, 487, ACK.
        assert await peers.trunk.wait() == 0, peers.errors()
        await peers.agent.stop()
    assert (result.outcome, result.sip_status) == ("no_answer", 487)
    assert answers.times == [] and result.agent_sip_call_id is None
    assert "CANCEL sip:" in peers.trunk.messages()
    assert peers.agent.calls_received() == 0
    assert "INVITE" not in peers.agent.messages()


@pytest.mark.parametrize(("scenario", "status"), [
    ("auth_challenge.xml", 401), ("trunk_auth_407.xml", 407)])
async def test_digest_challenge_then_bridged_call(tmp_path, scenario, status):
    async with sipp_bridge(scenario, "agent_answer.xml", tmp_path, trunk_extra=(
            "-key", "auth_user", "gateway", "-key", "auth_pass", "s3cret")) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=1, username="gateway",
                                         password="s3cret")) as adapter:
        result = await adapter.dial(peers.request(), Answers())
        # The agent's scenario fails on any Authorization or Proxy-Authorization header.
        assert await peers.wait() == (0, 0), peers.errors()
    trunk, agent = peers.messages()
    assert (result.outcome, result.sip_status, result.agent_sip_status) == \
        ("answered", 200, 200)
    assert result.hangup_by == "gateway" and result.connected_at is not None
    assert trunk.count("INVITE sip:") == 2 and f"SIP/2.0 {status} " in trunk
    assert "Authorization" not in agent and "Digest" not in agent
    if status == 407:  # sipp's verifyauth reads Authorization only: check the digest here
        header = re.search(r"^Proxy-Authorization: Digest (.*)$", trunk, re.MULTILINE)
        assert header is not None
        params = dict(re.findall(r'(\w+)="([^"]*)"', header.group(1)))
        assert (params["realm"], params["nonce"]) == ("proxy.test", "a1b2c3d4e5f6")

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1, ha2 = md5("gateway:proxy.test:s3cret"), md5(f"INVITE:{params['uri']}")
        assert params["response"] == md5(f"{ha1}:a1b2c3d4e5f6:{ha2}")


async def test_cancelled_while_bridged_ends_both_legs(tmp_path):
    caught = []
    async with sipp_bridge("answer_and_wait.xml", "agent_answer.xml", tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:
        with trio.CancelScope() as scope:

            async def on_connect(at) -> None:
                scope.deadline = trio.current_time() + 0.3  # shutdown, mid-call

            try:
                await adapter.dial(peers.request(), Answers(), on_connect)
            except trio.Cancelled:
                caught.append(True)
                raise
        # Both scenarios end with our BYE and its 200: both legs were hung up before dial
        # re-raised.
        assert await peers.wait() == (0, 0), peers.errors()
    assert scope.cancelled_caught and caught
    trunk, agent = peers.messages()
    assert len(_bye_targets(trunk)) == 1 and len(_bye_targets(agent)) == 1


async def test_cancelled_as_the_contact_answers_without_agent(tmp_path):
    """Shutdown as the contact answers a call whose agent leg cannot be set up (no
    sip_uri): the contact is still ACKed (declining its offer) before the BYE."""
    async with sipp_uas("trunk_declined.xml", tmp_path) as trunk, \
            running_adapter(sip_settings(trunk.proxy, max_call_seconds=30)) as adapter:
        with trio.CancelScope() as scope:

            async def on_answer(at) -> None:
                scope.cancel()

            await adapter.dial(dial_request(), on_answer)
        assert await trunk.wait() == 0, trunk.errors()
    assert scope.cancelled_caught
    log = trunk.messages()
    assert "ACK sip:" in log and log.index("ACK sip:") < log.index("BYE sip:")


async def test_contact_hangs_up_while_the_agent_rings(tmp_path):
    answers, connects = Answers(), Answers()
    async with sipp_bridge("trunk_bye_before_ack.xml", "agent_ring.xml", tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30,
                                         agent_answer_timeout_seconds=5)) as adapter:
        result = await adapter.dial(peers.request(), answers, connects)
        elapsed = trio.current_time() - answers.trio_times[0]
        # The agent's scenario: 180, then our CANCEL, 200, 487, ACK.
        assert await peers.wait() == (0, 0), peers.errors()
    agent = peers.agent.messages()
    assert (result.outcome, result.hangup_by) == ("answered", "contact")
    assert result.connected_at is None and connects.times == []
    assert result.agent_sip_status == 487  # the agent's answer to our CANCEL
    assert f"CANCEL {peers.agent_uri} SIP/2.0" in agent
    assert _bye_targets(agent) == []
    assert elapsed < 2  # the contact's BYE came 500 ms after its 200: long before 5 s
