"""An agent's seats in the running engine, on trio's mock clock: an in-process gateway (real
PostgreSQL, real HTTP) with the simulated carrier and agent, two running campaigns that
share one agent.

The campaigns may each have 5 calls live, the account 50, but the agent takes 2 at once:
its two campaigns together never have more than 2 live, because the budget takes the
agent's seat when it dials. A PATCH of the agent's ``max_concurrent_calls`` is picked up by
the supervisor's caps refresh: raised, more calls are dialed at once; lowered, the calls
live finish and no new one is dialed until the agent is under its new cap.

What is checked: the budget's count of the agent's live calls at each grant (the gateway
runs a :class:`Budget` that notes it), and the attempt history the database keeps (its
timestamps come from trio's clock, so overlaps are exact). Time as in test_drain_deadline:
the mock clock jumps once every task has waited 10 ms of real time, and a task waking every
``JUMP_SECONDS`` keeps each jump short, so a query merely slow in real time is never jumped
past its timeout.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar

import pytest
import trio
import trio.testing
from conftest import contacts_csv, multipart
from engine_helpers import FAST, MOCK_CLOCK_LEASE, engine_settings, max_overlap, rule
from test_engine_faults import serving, start

from gateway.clock import utcnow
from gateway.db import Database
from gateway.engine.budget import Budget, Slot
from gateway.vocabulary import Outcome

TALK = 10.0  # every call: answered at once, connected to the agent, 10 s of talk
CONTACTS = 6  # per campaign
JUMP_SECONDS = 0.25
# When the test changes the agent's cap (trio seconds after the start): halfway between
# two call ends, so a refresh (the poll every 0.5 s + caps every 0.5 s) lands before the next.
RAISE_AT, LOWER_AT = 15.0, 28.0


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.01)


async def _short_jumps() -> None:
    while True:
        await trio.sleep(JUMP_SECONDS)


class NotingBudget(Budget):
    """The gateway's budget, noting at every grant (trio time, agent, its live calls)."""

    made: ClassVar[list[NotingBudget]] = []

    def __init__(self) -> None:
        super().__init__()
        self.grants: list[tuple[float, uuid.UUID | None, int]] = []
        NotingBudget.made.append(self)

    def _note(self, slot: Slot) -> None:
        live = 0 if slot.agent_id is None else self.agent_live(slot.agent_id)
        self.grants.append((trio.current_time(), slot.agent_id, live))

    async def acquire(self, campaign_id: uuid.UUID) -> Slot:
        slot = await super().acquire(campaign_id)
        self._note(slot)
        return slot

    def try_acquire(self, campaign_id: uuid.UUID) -> Slot | None:
        slot = super().try_acquire(campaign_id)
        if slot is not None:
            self._note(slot)
        return slot


@pytest.fixture
def budgets(monkeypatch) -> list[NotingBudget]:
    made: ClassVar[list[NotingBudget]] = []
    monkeypatch.setattr(NotingBudget, "made", made)
    monkeypatch.setattr("gateway.serve.Budget", NotingBudget)
    return made


async def _campaign(api, agent_id: str, number_id: str, start_at: int) -> str:
    form = {"name": f"shares the agent {start_at}", "agent_id": agent_id,
            "phone_number_id": number_id, "max_concurrent_calls": "5",
            "retry_delay_seconds": "0"}
    body, content_type = multipart(form, {"contacts": contacts_csv(CONTACTS, start=start_at)})
    created = await api.post("/api/v1/campaigns", content=body,
                             headers={"Content-Type": content_type})
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def _set_cap(api, agent_id: str, cap: int | None) -> None:
    response = await api.patch(f"/api/v1/agents/{agent_id}", json={"max_concurrent_calls": cap})
    assert response.status_code == 200 and response.json()["max_concurrent_calls"] == cap


def _live_at(attempts: list[dict], instant: datetime) -> int:
    return sum(1 for a in attempts
               if a["dialed_at"] <= instant and (a["ended_at"] is None or instant < a["ended_at"]))


@pytest.mark.timeout(60)
async def test_two_campaigns_share_their_agents_seats_and_follow_its_cap(
        clock, aio_loop, database_url, tmp_path, budgets):
    overrides = engine_settings([rule("*", Outcome.ANSWERED, ring=FAST, talk=TALK)],
                                scheduler_poll_seconds=0.5, caps_refresh_seconds=0.5,
                                **MOCK_CLOCK_LEASE)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_short_jumps)
        async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
            agent = await api.post("/api/v1/agents", json={"name": "IVR",
                                                           "max_concurrent_calls": 2})
            assert agent.status_code == 201, agent.text
            agent_id = agent.json()["id"]
            number = await api.post("/api/v1/phone-numbers", json={"number": "+14155550100"})
            assert number.status_code == 201, number.text
            number_id = number.json()["id"]
            campaigns = [await _campaign(api, agent_id, number_id, start_at)
                         for start_at in (0, 100)]
            started = trio.current_time()
            for campaign_id in campaigns:
                await start(api, campaign_id)

            await trio.sleep_until(started + RAISE_AT)
            raised_at, raised_utc = trio.current_time(), utcnow()
            await _set_cap(api, agent_id, 4)
            await trio.sleep_until(started + LOWER_AT)
            lowered_at, lowered_utc = trio.current_time(), utcnow()
            await _set_cap(api, agent_id, 1)

            for campaign_id in campaigns:
                while (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()[
                        "status"] != "completed":
                    await trio.sleep(1.0)
        db = await Database.open(database_url, min_size=1, max_size=1)
        try:
            attempts = [dict(row) for row in await db.fetch("testing.all_attempts")]
        finally:
            await db.close()
        nursery.cancel_scope.cancel()

    [budget] = budgets
    agent_uuid = uuid.UUID(agent_id)
    grants = [(at, live) for at, agent_of, live in budget.grants if agent_of == agent_uuid]
    assert len(grants) == len(budget.grants) >= 2 * CONTACTS  # some claims came back short
    phases = ([live for at, live in grants if at < raised_at],
              [live for at, live in grants if raised_at <= at < lowered_at],
              [live for at, live in grants if at >= lowered_at])
    # Cap 2, then 4 (reached once the refresh saw it), then 1: the four live when it was
    # lowered ran to their end, and the last contacts were dialed one at a time.
    assert [max(phase, default=0) for phase in phases] == [2, 4, 1], phases
    assert budget.agent_live(agent_uuid) == 0

    # The database's history says the same: every contact dialed once and answered, never
    # more than the agent's cap live across the two campaigns (each could have had 5).
    assert len(attempts) == 2 * CONTACTS
    assert all(a["outcome"] == Outcome.ANSWERED for a in attempts)
    assert {str(a["campaign_id"]) for a in attempts} == set(campaigns)
    windows = ((datetime.min.replace(tzinfo=UTC), raised_utc), (raised_utc, lowered_utc),
               (lowered_utc, datetime.max.replace(tzinfo=UTC)))
    dialed = [[a for a in attempts if low <= a["dialed_at"] < high] for low, high in windows]
    assert [len(window) for window in dialed] == [4, 6, 2]  # 10 s calls: 2, then 4, then 1
    # The most calls live at a dial of each window (peaks happen at dials).
    assert [max(_live_at(attempts, a["dialed_at"]) for a in window)
            for window in dialed] == [2, 4, 1]
    assert max_overlap(attempts) == 4
    for campaign_id in campaigns:
        mine = [a for a in attempts if str(a["campaign_id"]) == campaign_id]
        assert len(mine) == CONTACTS and max_overlap(mine) <= 4
