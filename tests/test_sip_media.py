"""Media in a bridged call: the gateway carries the SDP between the legs untouched, so RTP
flows between the trunk and the agent directly (sipp peers, tests/sip/media_*.xml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from test_sip_harness import Answers, dial_request, running_adapter, sip_settings, sipp_uas


async def test_media_flows_between_the_trunk_and_the_agent_not_through_the_gateway(tmp_path):
    """The agent sends RTP to the address in the offer it received: the trunk's media
    socket (the test's) gets it, straight from the agent."""
    pcap = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")
    if not pcap.exists():
        pytest.skip("sipp's sample RTP recordings are not installed")
    (tmp_path / "trunk").mkdir()
    (tmp_path / "agent").mkdir()
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as media:
        await media.bind(("127.0.0.1", 0))
        port = media.getsockname()[1]
        senders: set = set()
        packets = 0

        async def count(*, task_status=trio.TASK_STATUS_IGNORED):
            nonlocal packets
            task_status.started()
            while True:
                data, source = await media.recvfrom(2048)
                if data[:1] == b"\x80":  # RTP version 2
                    packets += 1
                    senders.add(source[0])

        async with trio.open_nursery() as nursery:
            await nursery.start(count)
            async with sipp_uas("media_trunk.xml", tmp_path / "trunk",
                                extra=("-key", "trunkmedia", str(port))) as trunk, \
                    sipp_uas("media_agent.xml", tmp_path / "agent",
                             extra=("-key", "pcap", str(pcap))) as agent, \
                    running_adapter(sip_settings(trunk.proxy, max_call_seconds=30)) as adapter:
                request = dial_request(agent_sip_uri=f"sip:agent@127.0.0.1:{agent.port}")
                result = await adapter.dial(request, Answers(), Answers())
                assert await trunk.wait() == 0, trunk.errors()
                assert await agent.wait() == 0, agent.errors()
                statistics = adapter.statistics()
            nursery.cancel_scope.cancel()
    assert result.outcome == "answered"
    assert packets > 0 and senders == {"127.0.0.1"}
    # The agent's INVITE offered the trunk's own port: nothing was rewritten to the gateway.
    assert f"m=audio {port} RTP/AVP 0" in agent.messages()
    assert statistics.malformed == 0  # and no RTP reached the gateway's SIP socket
