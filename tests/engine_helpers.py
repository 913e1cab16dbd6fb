"""Helpers for the engine's integration tests: sim rules, waiting, and checks on the
attempt history that every promise of docs/api.md about dialing must satisfy."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import pairwise

import trio

FAST = 0.01

# For a gateway on trio's autojumping mock clock: the account lease an hour long. A database
# round trip longer than the autojump threshold (a loaded machine) lets the clock jump past
# a lease renewal's deadline, and a few such jumps fence the process (lease.lost: its calls
# hung up, their contacts redialed minutes later), which no mock-clock test is about.
MOCK_CLOCK_LEASE = {"lease_seconds": 3600.0}


def rule(pattern: str, outcome: str, ring: float = FAST, talk: float = 0.0, *,
         agent: str = "answered", hangup_by: str = "contact") -> dict:
    """A sim rule; ``agent``: what the agent does with an answered call (``answered`` or
    ``agent_unavailable``), ``hangup_by``: who ends a connected one."""
    return {"pattern": pattern, "outcome": outcome, "ring_seconds": ring, "talk_seconds": talk,
            "agent_outcome": agent, "hangup_by": hangup_by}


def engine_settings(rules: list[dict], *, sim: dict | None = None, **engine) -> dict:
    """Settings overrides for a gateway dialing the sim carrier with ``rules`` (``sim``:
    its other settings), no pacing in the way, and ``engine`` settings."""
    return {
        "telephony": {"sim": {"rules": rules, **(sim or {})}},
        "limits": {"min_retry_delay_seconds": 0},
        "engine": {"scheduler_poll_seconds": 0.05, "caps_refresh_seconds": 0.2, **engine},
        "accounts": {"default_calls_per_minute": 1_000_000, "default_concurrent_max": 50},
    }


async def wait_for(api, campaign_id: str, predicate, *, poll: float = 0.05) -> dict:
    """Poll the campaign until ``predicate(campaign)``; the test's fail_after bounds it."""
    while True:
        campaign = (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()
        if predicate(campaign):
            return campaign
        await trio.sleep(poll)


async def wait_status(api, campaign_id: str, *statuses: str) -> dict:
    return await wait_for(api, campaign_id, lambda c: c["status"] in statuses)


async def start(api, campaign_id: str, verb: str = "start"):
    response = await api.post(f"/api/v1/campaigns/{campaign_id}/{verb}")
    assert response.status_code == 200, response.text
    return response.json()


def max_overlap(attempts, key=lambda a: True) -> int:
    """The most calls live at one instant, from [dialed_at, ended_at] of each attempt."""
    events = []
    for a in attempts:
        if key(a) and a["ended_at"] is not None:
            events.append((a["dialed_at"], 1))
            events.append((a["ended_at"], -1))
    live = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts on ties
        live += delta
        peak = max(peak, live)
    return peak


def check_attempt_invariants(attempts, retries_per_contact: int) -> None:
    """No contact dialed twice at once, nor more than 1 + retries times, attempts numbered
    1..n in dial order."""
    by_contact = defaultdict(list)
    for a in attempts:
        by_contact[a["contact_id"]].append(a)
    for contact_attempts in by_contact.values():
        assert len(contact_attempts) <= 1 + retries_per_contact
        assert [a["attempt"] for a in contact_attempts] == list(range(1, len(contact_attempts) + 1))
        for earlier, later in pairwise(contact_attempts):
            assert earlier["ended_at"] is not None and earlier["ended_at"] <= later["dialed_at"]


def outcome_counts(attempts) -> Counter:
    return Counter(a["outcome"] for a in attempts)
