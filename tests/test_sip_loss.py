"""Bridged calls over lossy networks: 15% of the datagrams lost on both legs, both ways.

Each leg runs through a :class:`LossyRelay` that drops a seeded 15% of what crosses it in
either direction; the peers' Contacts are their relays, so every request and response of
both dialogs (but the peers' own BYEs) can be lost. The relays also repeat sipp's final
to a repeated INVITE (sipp itself aborts the call: see LossyRelay). Retransmissions (ours: RFC 3261
timers; sipp's: its scenarios' ``retrans``) must carry every call to its end, recorded
right.
"""

from __future__ import annotations

import random

import trio
from ports import free_udp_port
from test_sip_harness import (
    Answers,
    LossyRelay,
    dial_request,
    running_adapter,
    sip_settings,
    sipp_uas,
)

CALLS = 6
LOSS = 0.15


def _lossy(seed: int):
    rng = random.Random(seed)
    return lambda _data: rng.random() < LOSS


async def test_bridged_calls_survive_fifteen_percent_loss_on_both_legs(tmp_path):
    (tmp_path / "trunk").mkdir()
    (tmp_path / "agent").mkdir()
    async with trio.open_nursery() as nursery:
        # The relays need the peers' ports, the peers the relays' (their Contact): take
        # the relays' sockets first, pointing at ports the peers are then started on.
        trunk_port, agent_port = free_udp_port(), free_udp_port()
        trunk_relay = await nursery.start(LossyRelay(("127.0.0.1", trunk_port), _lossy(1),
                                                     _lossy(2), repeat_finals=True).run)
        agent_relay = await nursery.start(LossyRelay(("127.0.0.1", agent_port), _lossy(3),
                                                     _lossy(4), repeat_finals=True).run)
        trunk_at = "{}:{}".format(*trunk_relay.address)
        agent_at = "{}:{}".format(*agent_relay.address)
        async with sipp_uas("lossy_trunk.xml", tmp_path / "trunk", calls=CALLS, timeout=60,
                            port=trunk_port, extra=("-key", "relay", trunk_at)) as trunk, \
                sipp_uas("lossy_agent.xml", tmp_path / "agent", calls=CALLS, timeout=60,
                         port=agent_port, extra=("-key", "relay", agent_at)) as agent, \
                running_adapter(sip_settings(trunk_at, max_call_seconds=30,
                                             ring_timeout_seconds=20, timer_t1_ms=100,
                                             agent_answer_timeout_seconds=10)) as adapter:
            results = []
            for _ in range(CALLS):
                request = dial_request(agent_sip_uri=f"sip:agent@{agent_at}")
                results.append(await adapter.dial(request, Answers(), Answers()))
            assert await trunk.wait(60) == 0, trunk.errors()
            assert await agent.wait(60) == 0, agent.errors()
        nursery.cancel_scope.cancel()
    assert [(r.outcome, r.hangup_by) for r in results] == [("answered", "contact")] * CALLS
    assert all(r.connected_at is not None for r in results)
    assert len({r.agent_sip_call_id for r in results}) == CALLS
    # The loss was real, on both legs and both ways.
    for relay in (trunk_relay, agent_relay):
        assert relay.dropped and relay.dropped_back
