"""The SIP adapter when things go wrong: garbage on the socket, a silent trunk, and
cancellation (shutdown) in the middle of a call. Answered calls are bridged to a sipp
agent."""

from __future__ import annotations

from itertools import pairwise

import pytest
import trio
from test_sip_harness import (
    Answers,
    dial_request,
    running_adapter,
    sip_settings,
    sipp_bridge,
    sipp_uas,
)

from gateway.telephony.sip import SipAdapter

GARBAGE = [
    b"",
    b"\x00\xff" * 50,
    b"hello world\r\n\r\n",
    b"SIP/2.0 200 OK\r\n\r\n",                                     # no Via, no CSeq...
    b"SIP/2.0 99999 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n",
    b"INVITE sip:x@y SIP/2.0\r\nVia: nonsense\r\nFrom: <sip:a@b>\r\nTo: <sip:c@d>\r\n"
    b"Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",                         # bad Via
    b"BYE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>\r\n"
    b"To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: one BYE\r\n\r\n",         # bad CSeq
    b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\nFrom: <sip:a@b>\r\n"
    b"To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 900\r\n\r\nshort",
    b"INVITE sip:x@y SIP/2.0\r\n\xc3\x28: bad utf-8\r\n\r\n",
    b"A" * 70000,                                                  # larger than a datagram
]


async def test_garbage_does_not_break_a_call(tmp_path):
    answers, connects = Answers(), Answers()
    async with sipp_bridge("answer_and_wait.xml", "agent_answer.xml", tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=1)) as adapter, \
            trio.open_nursery() as nursery:

        async def spray(sock) -> None:
            for _ in range(3):
                for datagram in GARBAGE:
                    try:
                        await sock.sendto(datagram, adapter.local_address)
                    except OSError:  # the 70 kB one may not even leave
                        pass
                await trio.sleep(0.2)

        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
            await sock.bind(("127.0.0.1", 0))
            nursery.start_soon(spray, sock)
            result = await adapter.dial(peers.request(), answers, connects)
            # A well-formed request for no known call still gets its answer: the
            # reader is alive after all that.
            await sock.sendto(b"BYE sip:x@127.0.0.1 SIP/2.0\r\n"
                              b"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKabc\r\n"
                              b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n"
                              b"Call-ID: unknown@nowhere\r\nCSeq: 7 BYE\r\n\r\n",
                              adapter.local_address)
            with trio.fail_after(5):
                while True:
                    reply, _ = await sock.recvfrom(65536)
                    if b"Call-ID: unknown@nowhere" in reply:
                        break
        # Both legs went their whole way: answered, ACKed with the answer, hung up.
        assert await peers.wait() == (0, 0), peers.errors()
    assert result.outcome == "answered" and answers.times == [result.answered_at]
    assert connects.times == [result.connected_at] and result.hangup_by == "gateway"
    assert reply.startswith(b"SIP/2.0 481 ")
    stats = adapter.statistics()  # the run's final figures
    assert stats.malformed >= 2 * (len(GARBAGE) - 1) and stats.errors == 0
    assert stats.received == stats.delivered + stats.replied + stats.dropped


async def test_silent_trunk_is_a_failed_call_after_timer_b():
    """Timer A doubles from T1 (20 ms here) and Timer B gives up at 64·T1 (1.28 s)."""
    received: list[float] = []

    async def black_hole(sock) -> None:
        while True:
            await sock.recvfrom(65536)
            received.append(trio.current_time())

    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))
        proxy = f"127.0.0.1:{sock.getsockname()[1]}"
        async with trio.open_nursery() as nursery, \
                running_adapter(sip_settings(proxy), timer_t1_ms=20) as adapter:
            nursery.start_soon(black_hole, sock)
            started = trio.current_time()
            result = await adapter.dial(dial_request(), Answers())
            elapsed = trio.current_time() - started
            nursery.cancel_scope.cancel()
    assert (result.outcome, result.sip_status, result.answered_at) == ("failed", None, None)
    assert 1.28 <= elapsed < 2.5
    # INVITE at 0, then 20, 60, 140, 300, 620(, 1260) ms: each gap twice the one before
    # (a late wake-up delays a retransmission, it never brings one forward).
    assert len(received) in (6, 7)
    gaps = [b - a for a, b in pairwise(received)]
    expected = [0.02 * 2**i for i in range(len(gaps))]
    assert all(want * 0.9 <= gap <= want + 0.1
               for gap, want in zip(gaps, expected, strict=True)), gaps


async def test_cancelled_while_ringing_sends_cancel(tmp_path):
    caught = []
    async with sipp_uas("ring_no_answer.xml", tmp_path) as sipp, \
            running_adapter(sip_settings(sipp.proxy, ring_timeout_seconds=30)) as adapter:
        with trio.move_on_after(0.5) as scope:
            try:
                await adapter.dial(dial_request(), Answers())
            except trio.Cancelled:  # a plain Cancelled: the engine's call task expects one
                caught.append(True)
                raise
        # sipp got the CANCEL, answered 200 + 487 and got the ACK, all before dial re-raised.
        assert await sipp.wait() == 0, sipp.errors()
    assert scope.cancelled_caught and caught
    assert "CANCEL sip:" in sipp.messages()


async def test_cancelled_after_answer_sends_bye(tmp_path):
    async with sipp_bridge("trunk_declined.xml", "agent_answer.xml", tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:
        with trio.CancelScope() as scope:

            async def on_answer(at) -> None:
                scope.cancel()  # shutdown arrives just as the call is answered

            await adapter.dial(peers.request(), on_answer)
        # The trunk's scenario: the 200 ACKed with an answer declining its offer (the agent
        # leg never came up), then our BYE.
        assert await peers.trunk.wait() == 0, peers.errors()
        agent_status = await peers.agent.stop()
    assert scope.cancelled_caught
    assert "BYE sip:" in peers.trunk.messages()
    # Nothing left open at the agent either: not INVITEd at all (the shutdown came before
    # its leg), or INVITEd and hung up (its scenario ends with our BYE).
    assert peers.agent.calls_received() == 0 or \
        (agent_status == 0 and "BYE sip:agent@" in peers.agent.messages()), peers.errors()


async def test_cancelled_while_the_agent_has_not_responded_ends_its_leg(tmp_path):
    """A shutdown while the agent's INVITE has had no response at all: no CANCEL may be
    sent yet (RFC 3261 section 9.1), so the clean-up waits for the agent's answer, ACKs it
    and hangs up; nothing is left open at the agent."""
    async with sipp_bridge("trunk_declined.xml", "agent_slow_answer.xml", tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:
        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                with trio.CancelScope() as scope:

                    async def cancel_soon(at) -> None:
                        async def later() -> None:
                            await trio.sleep(0.2)  # the agent's INVITE is out, unanswered
                            scope.cancel()
                        nursery.start_soon(later)

                    await adapter.dial(peers.request(), cancel_soon)
            assert scope.cancelled_caught
            assert await peers.trunk.wait() == 0, peers.errors()
            assert await peers.agent.wait() == 0, peers.errors()
    agent_messages = peers.agent.messages()
    assert "ACK sip:agent@" in agent_messages and "BYE sip:agent@" in agent_messages
    assert "CANCEL sip:" not in agent_messages


async def test_dial_needs_run():
    adapter = SipAdapter(sip_settings("127.0.0.1:5060"))
    with pytest.raises(RuntimeError, match="not running"):
        await adapter.dial(dial_request(), Answers())


def test_bad_proxy_setting_is_a_config_error():
    from gateway.config import ConfigError

    for proxy in ("", "trunk.example.com:notaport", "a b:5060"):
        with pytest.raises(ConfigError, match=r"telephony\.sip\.proxy"):
            SipAdapter(sip_settings(proxy))
