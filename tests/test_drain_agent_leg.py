"""A shutdown past its grace period cuts calls on the agent leg, on trio's mock clock: an
in-process gateway (real PostgreSQL, real HTTP) with the simulated carrier and agent.

A call whose contact answered is recorded ``interrupted``, hung up by the gateway, with
the instants it reached: answered (the agent still answering), or answered and connected
(talking). Time as in test_drain_deadline: the mock clock jumps once every task has waited
10 ms of real time, and a task waking every 20 ms keeps the jumps short.
"""

from __future__ import annotations

import uuid

import pytest
import trio
import trio.testing
from engine_helpers import FAST, MOCK_CLOCK_LEASE, engine_settings, rule
from test_drain_deadline import JUMP_SECONDS, _live
from test_engine_faults import create_campaign, serving, start

from gateway.db import Database
from gateway.store import calls
from gateway.vocabulary import HangupBy, Outcome

GRACE = 2.0
LONG = 1000.0  # far past the grace period
NUMBERS = ("+12025550143", "+12025550144")


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.01)


async def _short_jumps() -> None:
    while True:
        await trio.sleep(JUMP_SECONDS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("agent_answer", "talk", "connected"), [
    (LONG, 0.0, False),  # cut while the agent is answering
    (0.0, LONG, True)])  # cut while talking to the agent
async def test_calls_cut_on_the_agent_leg_are_interrupted_by_the_gateway(
        clock, aio_loop, database_url, tmp_path, agent_answer, talk, connected):
    overrides = engine_settings([rule(number, Outcome.ANSWERED, ring=FAST, talk=talk)
                                 for number in NUMBERS],
                                sim={"agent_answer_seconds": agent_answer}, **MOCK_CLOCK_LEASE)
    overrides["http"] = {"shutdown_grace_seconds": GRACE}
    csv = ("phone_number\n" + "".join(f"{number}\n" for number in NUMBERS)).encode()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_short_jumps)
        async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
            campaign_id = await create_campaign(api, csv, max_concurrent_calls=len(NUMBERS))
            await start(api, campaign_id)
            while len(await _live(api, campaign_id)) < len(NUMBERS):
                await trio.sleep(0.05)
            await trio.sleep(1.0)  # past the ring: answered, and connected if it is quick
            shutdown_at = trio.current_time()
        took = trio.current_time() - shutdown_at
        db = await Database.open(database_url, min_size=1, max_size=1)
        try:
            recorded = (await calls.page(db, uuid.UUID(campaign_id), 0)).items
        finally:
            await db.close()
        nursery.cancel_scope.cancel()
    assert GRACE - 0.01 <= took < GRACE + 2, took  # the deadline, and not much longer
    assert len(recorded) == len(NUMBERS)
    for call in recorded:
        assert call.outcome == Outcome.INTERRUPTED and call.hangup_by == HangupBy.GATEWAY
        assert call.answered_at is not None and call.ended_at is not None
        assert (call.connected_at is not None) == connected
        # Cut at the deadline, far from the agent's answer or the talk's end.
        assert GRACE <= (call.ended_at - call.answered_at).total_seconds() < GRACE + 3
