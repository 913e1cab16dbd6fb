"""Shutdown's grace period, on trio's mock clock: an in-process gateway (real PostgreSQL,
real HTTP) with the simulated carrier, shut down while its calls are live.

The supervisor gives its actors' nursery a deadline, the grace period: a call that ends
within it is recorded with its real outcome, a call still live at the deadline is
cancelled and recorded as interrupted, and the shutdown takes no longer than the grace
(nor waits for it when every call has ended).

Time: the mock clock jumps to the next deadline once every task has waited 10 ms of real
time, so the grace period and the calls' talk time pass in a few seconds. A task waking
every 20 ms keeps each jump short: a query merely slow in real time is never jumped past
its timeout (trio time runs at most twice as fast as real time while PostgreSQL answers).
"""

from __future__ import annotations

from datetime import datetime

import pytest
import trio
import trio.testing
from engine_helpers import FAST, MOCK_CLOCK_LEASE, engine_settings, rule
from test_engine_faults import create_campaign, serving, start

from gateway.db import Database
from gateway.vocabulary import Outcome

GRACE = 5.0
SHORT_TALK = 2.0  # ends within the grace period
LONG_TALK = 1000.0  # still live at its end
JUMP_SECONDS = 0.02
FIRST, SECOND = "+12025550143", "+12025550144"


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.01)


async def _short_jumps() -> None:
    while True:
        await trio.sleep(JUMP_SECONDS)


async def _shut_down_mid_call(database_url: str, tmp_path, talk: dict[str, float]
                              ) -> tuple[float, dict[str, dict]]:
    """Start a campaign calling ``talk``'s numbers (answered at once, talking that long),
    shut the gateway down once every call is live; (trio seconds the shutdown took, the
    attempts by number)."""
    overrides = engine_settings([rule(number, Outcome.ANSWERED, ring=FAST, talk=seconds)
                                 for number, seconds in talk.items()], **MOCK_CLOCK_LEASE)
    overrides["http"] = {"shutdown_grace_seconds": GRACE}
    csv = ("phone_number\n" + "".join(f"{number}\n" for number in talk)).encode()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_short_jumps)
        async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
            campaign_id = await create_campaign(api, csv, max_concurrent_calls=len(talk))
            await start(api, campaign_id)
            while len(await _live(api, campaign_id)) < len(talk):
                await trio.sleep(0.05)
            shutdown_at = trio.current_time()
        took = trio.current_time() - shutdown_at
        db = await Database.open(database_url, min_size=1, max_size=1)
        try:
            attempts = [dict(row) for row in await db.fetch("testing.attempts", campaign_id)]
        finally:
            await db.close()
        nursery.cancel_scope.cancel()
    assert len(attempts) == len(talk)  # nothing was dialed after the shutdown began
    return took, {attempt["phone_number"]: attempt for attempt in attempts}


async def _live(api, campaign_id: str) -> list[dict]:
    calls = (await api.get(f"/api/v1/campaigns/{campaign_id}/calls")).json()["data"]
    return [call for call in calls if call["outcome"] is None]


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


@pytest.mark.timeout(60)
async def test_calls_live_at_the_deadline_are_interrupted_the_others_end_normally(
        clock, aio_loop, database_url, tmp_path):
    took, attempts = await _shut_down_mid_call(
        database_url, tmp_path, {FIRST: SHORT_TALK, SECOND: LONG_TALK})
    # The long call kept the shutdown waiting until the deadline, and not much longer
    # (recording the interrupted call and closing the pools).
    assert GRACE <= took < GRACE + 2, took
    short, long = attempts[FIRST], attempts[SECOND]
    assert short["outcome"] == Outcome.ANSWERED
    assert _seconds(short["answered_at"], short["ended_at"]) == pytest.approx(SHORT_TALK,
                                                                              abs=0.05)
    assert long["outcome"] == Outcome.INTERRUPTED
    # Cut at the deadline: it talked through the grace period, far from its 1,000 s.
    assert GRACE <= _seconds(long["answered_at"], long["ended_at"]) < GRACE + 1
    assert long["ended_at"] > short["ended_at"]


@pytest.mark.timeout(60)
async def test_shutdown_ends_with_the_last_call_when_it_ends_within_the_grace(
        clock, aio_loop, database_url, tmp_path):
    took, attempts = await _shut_down_mid_call(
        database_url, tmp_path, {FIRST: SHORT_TALK, SECOND: SHORT_TALK + 1})
    assert SHORT_TALK < took < GRACE, took  # the deadline was not waited for
    assert [a["outcome"] for a in attempts.values()] == [Outcome.ANSWERED] * 2
    for number, talk in ((FIRST, SHORT_TALK), (SECOND, SHORT_TALK + 1)):
        attempt = attempts[number]
        assert _seconds(attempt["answered_at"], attempt["ended_at"]) == pytest.approx(
            talk, abs=0.05)
