"""The real SipAdapter dialing sipp while hostile datagrams hit its port.

A tap between the adapter and sipp (the adapter's "proxy") copies what sipp sends; an
attacker task sends, from other addresses, random bytes, mutated messages (see
:func:`test_sip_fuzz.mutate`) and forgeries made from sipp's real traffic: exact replays,
finals rewritten to 486/603, BYEs built from a real 200's tags, copies with forged
Call-IDs and branches. Every call is bridged to a second sipp, the agent (reached
directly). Every call must still end as both scenarios say (answered, 200, connected to
the agent, and both sipps' own success: a call the attacker ended or rejected would break
their scenarios), the adapter must still answer, and its statistics must show the junk
was dropped.
Harness rules: see test_sip_harness.py. The default test takes ~5-10 s; ``-m slow`` runs
a long soak.
"""

from __future__ import annotations

import random
import re

import pytest
import trio
from test_sip_fuzz import SEEDS, mutate
from test_sip_harness import (
    Answers,
    LossyRelay,
    running_adapter,
    sip_settings,
    sipp_bridge,
)

from gateway.telephony.sip.message import SipParseError, SipResponse, parse


def forge(real: bytes, rng: random.Random) -> bytes:
    """A forgery made from one of sipp's real datagrams."""
    kind = rng.randrange(5)
    if kind == 0:
        return real  # an exact replay, from the wrong address
    if kind == 1:  # the final sipp did not send
        return re.sub(rb"^SIP/2\.0 [0-9]{3} [^\r]*", rng.choice(
            [b"SIP/2.0 486 Busy Here", b"SIP/2.0 603 Decline", b"SIP/2.0 487 Terminated",
             b"SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"n\""
             ]), real, count=1)
    if kind == 2:  # the far end's BYE, tags and all
        try:
            message = parse(real)
        except SipParseError:
            return real
        if not isinstance(message, SipResponse):
            return real
        return (f"BYE sip:gw@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK{rng.getrandbits(40):x}\r\n"
                f"From: {message.get('to')}\r\nTo: {message.get('from')}\r\n"
                f"Call-ID: {message.call_id}\r\nCSeq: 9 BYE\r\n\r\n").encode()
    if kind == 3:  # someone else's call
        forged = re.sub(rb"(Call-ID|i): [^\r]*", b"Call-ID: %x@evil" % rng.getrandbits(48),
                        real)
        return re.sub(rb"branch=[^;\r,]*", b"branch=z9hG4bK%x" % rng.getrandbits(48), forged)
    return mutate(real, rng)


async def attack(target, tap: LossyRelay, rng: random.Random, done: trio.Event,
                 minimum: int) -> dict[str, int]:
    """Send junk until ``done`` is set and at least ``minimum`` datagrams went out."""
    sent = {"random": 0, "mutated": 0, "forged": 0}
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as far, \
            trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as near:
        await far.bind(("127.0.0.2", 0))   # another host
        await near.bind(("127.0.0.1", 0))  # the proxy's host, another port
        while not done.is_set() or sum(sent.values()) < minimum:
            for _ in range(25):
                choice = rng.random()
                if choice < 0.2:
                    kind, data = "random", rng.randbytes(rng.randint(0, 1400))
                elif choice < 0.5 or not tap.from_upstream:
                    kind, data = "mutated", mutate(rng.choice(SEEDS), rng)
                else:
                    kind, data = "forged", forge(rng.choice(tap.from_upstream), rng)
                # A forged request from the proxy's host would be accepted by design
                # (requests are checked by host): those come from the other host.
                sock = far if data.startswith(b"BYE") or rng.random() < 0.5 else near
                try:
                    await sock.sendto(data, target)
                    sent[kind] += 1
                except OSError:  # too large for a datagram
                    pass
            await trio.sleep(0.005)
    return sent


async def hostile_campaign(tmp_path, *, calls: int, concurrency: int, minimum: int,
                           seed: int) -> None:
    rng = random.Random(seed)
    results = []
    async with sipp_bridge("trunk_answer_then_bye.xml", "agent_answer.xml", tmp_path,
                           calls=calls, timeout=240) as peers, \
            trio.open_nursery() as outer:
        tap = await outer.start(LossyRelay(("127.0.0.1", peers.trunk.port)).run)
        settings = sip_settings(f"127.0.0.1:{tap.address[1]}", max_call_seconds=30)
        async with running_adapter(settings) as adapter:
            done, sent = trio.Event(), {}

            async def run_attack() -> None:
                sent.update(await attack(adapter.local_address, tap, rng, done, minimum))

            async def one(i: int, limiter: trio.CapacityLimiter) -> None:
                async with limiter:
                    results.append(await adapter.dial(peers.request(f"+1202555{i:04d}"),
                                                      Answers()))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_attack)
                async with trio.open_nursery() as dialing:
                    limiter = trio.CapacityLimiter(concurrency)
                    for i in range(calls):
                        dialing.start_soon(one, i, limiter)
                done.set()
            # Still serving: a probe gets its answer.
            with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as probe:
                await probe.bind(("127.0.0.2", 0))
                await probe.sendto(SEEDS[6], adapter.local_address)
                with trio.fail_after(5):
                    reply, _ = await probe.recvfrom(65536)
            stats = adapter.statistics()
        assert await peers.wait(30) == (0, 0), peers.errors()
        outer.cancel_scope.cancel()
    assert reply.startswith(b"SIP/2.0 200 OK") and b"probe@10.0.0.9" in reply
    assert [(r.outcome, r.sip_status) for r in results] == [("answered", 200)] * calls
    assert all(r.answered_at is not None for r in results)
    assert all((r.agent_sip_status, r.hangup_by) == (200, "contact") and
               r.connected_at is not None for r in results)
    for peer in (peers.trunk, peers.agent):
        sipp_stats = peer.statistics()
        assert (sipp_stats["SuccessfulCall(C)"], sipp_stats["FailedCall(C)"]) == \
            (str(calls), "0")
    assert sum(sent.values()) >= minimum and sent["forged"] > minimum // 10, sent
    assert stats.errors == 0
    assert stats.received == stats.delivered + stats.replied + stats.dropped
    assert stats.malformed > minimum // 10 and stats.unexpected_source > 0, stats


@pytest.mark.timeout(60)
async def test_calls_survive_hostile_datagrams(tmp_path):
    await hostile_campaign(tmp_path, calls=30, concurrency=10, minimum=3000, seed=11)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_calls_survive_hostile_datagrams_soak(tmp_path):
    await hostile_campaign(tmp_path, calls=300, concurrency=30, minimum=50_000, seed=12)
