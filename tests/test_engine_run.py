"""Campaigns run end to end: real PostgreSQL, the real server, the sim carrier.

Every test checks the attempt history against the API's promises: live calls never
above a cap, exact attempt counts, retry spacing, pause and stop semantics.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from datetime import datetime, timedelta

import asyncpg
import pytest
import trio
import trio_asyncio
from conftest import contacts_csv, us_number
from engine_helpers import (
    check_attempt_invariants,
    engine_settings,
    max_overlap,
    outcome_counts,
    rule,
    start,
    wait_for,
    wait_status,
)

from gateway.clock import utcnow
from gateway.engine.snapshots import snapshot_from_row
from gateway.store import dialing

RULES = [rule("*1", "busy"), rule("*2", "no_answer"), rule("*3", "invalid_number"),
         rule("*4", "failed"), rule("*5", "answered", agent="agent_unavailable"),
         rule("*6", "answered", talk=0.02, hangup_by="agent"),
         rule("*", "answered", talk=0.02)]


@pytest.fixture
def settings_overrides():
    return engine_settings(RULES)


async def _attempts(db, campaign_id):
    return [dict(row) for row in await db.fetch("testing.attempts", campaign_id)]


@pytest.mark.timeout(90)
async def test_thousand_contacts_complete_with_the_counts_the_rules_imply(api, db,
                                                                         create_campaign):
    created = (await create_campaign(contacts_csv(1000), max_concurrent_calls=20,
                                     retries_per_contact=2, retry_delay_seconds=0)).json()
    await start(api, created["id"])
    done = await wait_status(api, created["id"], "completed", "failed")
    assert done["status"] == "completed" and done["completed_at"] is not None
    # 100 numbers end in each digit. Retryable: busy, no_answer, failed, agent_unavailable
    # (3 attempts each).
    assert done["contact_counts"] == {"total": 1000, "completed": 500, "failed": 500,
                                      "pending": 0, "in_progress": 0, "retry_pending": 0,
                                      "skipped": 0}
    attempts = await _attempts(db, created["id"])
    assert outcome_counts(attempts) == {"answered": 500, "busy": 300, "no_answer": 300,
                                        "failed": 300, "agent_unavailable": 300,
                                        "invalid_number": 100}
    # The counts the triggers kept while 1,800 attempts were claimed and recorded in
    # concurrent batches are the ones the attempts themselves give.
    snapshot = snapshot_from_row(await db.fetchrow("snapshots.snapshot", created["id"], utcnow()))
    assert snapshot["outcomes"] == {**outcome_counts(attempts), "interrupted": 0}
    assert (snapshot["attempts"], snapshot["in_flight"]) == (1800, 0)
    assert (snapshot["ringing"], snapshot["connected"]) == (0, 0)  # not dialing any more
    check_attempt_invariants(attempts, retries_per_contact=2)
    assert max_overlap(attempts) <= 20
    contacts = await db.fetch("testing.contacts", created["id"])
    last = {row["phone_number"]: row["last_outcome"] for row in contacts}
    assert last[us_number(1)] == "busy" and last[us_number(3)] == "invalid_number"
    calls = (await api.get(f"/api/v1/campaigns/{created['id']}/calls", params={"page": 18})).json()
    assert calls["total"] == 1800 and len(calls["data"]) == 0 and not calls["has_more"]
    # The agent leg as the call pages show it: connected or not, and who hung up (the
    # agent for numbers ending in 6; the gateway when the agent was unavailable).
    legs: Counter = Counter()
    for page in range(18):
        for call in (await api.get(f"/api/v1/campaigns/{created['id']}/calls",
                                   params={"page": page})).json()["data"]:
            connected = call["connected_at"] is not None
            legs[call["outcome"], call["hangup_by"], connected] += 1
            if connected:
                answered, connected_at, ended = (
                    datetime.fromisoformat(call[key].replace("Z", "+00:00"))
                    for key in ("answered_at", "connected_at", "ended_at"))
                assert answered <= connected_at <= ended
            assert call["agent_sip_status"] is None and call["agent_sip_call_id"] is None
    assert legs == {("answered", "contact", True): 400, ("answered", "agent", True): 100,
                    ("agent_unavailable", "gateway", False): 300, ("busy", None, False): 300,
                    ("no_answer", None, False): 300, ("failed", None, False): 300,
                    ("invalid_number", None, False): 100}
    # A call names its contact by the id the contact pages show.
    shown = {c["phone_number"]: c["id"] for page in range(10) for c in (await api.get(
        f"/api/v1/campaigns/{created['id']}/contacts", params={"page": page})).json()["data"]}
    assert {str(a["contact_id"]): a["phone_number"] for a in attempts} == \
        {i: phone for phone, i in shown.items()}


async def test_retries_wait_for_the_delay(api, db, create_campaign):
    csv = f"phone_number\n{us_number(1)}\n{us_number(2)}\n".encode()
    created = (await create_campaign(csv, retries_per_contact=2, retry_delay_seconds=1)).json()
    await start(api, created["id"])
    done = await wait_status(api, created["id"], "completed")
    assert done["contact_counts"]["failed"] == 2
    attempts = await _attempts(db, created["id"])
    assert len(attempts) == 6
    check_attempt_invariants(attempts, retries_per_contact=2)
    for contact_id in {a["contact_id"] for a in attempts}:
        mine = [a for a in attempts if a["contact_id"] == contact_id]
        for earlier, later in itertools.pairwise(mine):
            assert later["dialed_at"] - earlier["ended_at"] >= timedelta(seconds=1)


async def test_live_calls_never_exceed_the_campaign_cap(api, db, create_campaign):
    created = (await create_campaign(contacts_csv(60, start=5000), max_concurrent_calls=3)
               ).json()
    await start(api, created["id"])
    await wait_status(api, created["id"], "completed")
    attempts = await _attempts(db, created["id"])
    assert len(attempts) == 60
    assert max_overlap(attempts) == 3  # reached, never passed


@pytest.mark.parametrize("settings_overrides", [
    engine_settings([rule("*", "answered", ring=0.05, talk=0.2)])])
async def test_pause_dials_nothing_new_and_resume_continues(api, db, create_campaign):
    created = (await create_campaign(contacts_csv(40), max_concurrent_calls=4)).json()
    await start(api, created["id"])
    await wait_for(api, created["id"], lambda c: c["contact_counts"]["completed"] >= 4)
    paused = await start(api, created["id"], "pause")
    paused_at = trio.current_time()
    assert paused["status"] == "paused"
    # In-flight calls finish and are recorded; nothing else is dialed.
    settled = await wait_for(api, created["id"], lambda c: c["contact_counts"]["in_progress"] == 0)
    before = await _attempts(db, created["id"])
    assert all(a["outcome"] == "answered" for a in before)
    await trio.sleep(0.5)  # a window in which a paused campaign must not dial
    assert len(await _attempts(db, created["id"])) == len(before)
    assert settled["status"] == "paused" and settled["contact_counts"]["pending"] > 0
    assert trio.current_time() - paused_at < 5
    await start(api, created["id"], "resume")
    done = await wait_status(api, created["id"], "completed")
    assert done["contact_counts"]["completed"] == 40
    attempts = await _attempts(db, created["id"])
    assert len(attempts) == 40
    check_attempt_invariants(attempts, retries_per_contact=0)


@pytest.mark.parametrize("settings_overrides", [
    engine_settings([rule("*", "answered", ring=0.05, talk=0.3)])])
async def test_stop_skips_the_rest_and_records_calls_in_flight(api, db, create_campaign):
    created = (await create_campaign(contacts_csv(50), max_concurrent_calls=5)).json()
    await start(api, created["id"])
    await wait_for(api, created["id"], lambda c: c["contact_counts"]["in_progress"] > 0)
    stopped = await start(api, created["id"], "stop")
    assert stopped["status"] == "completed" and stopped["completed_at"] is not None
    counts = (await wait_for(api, created["id"],
                             lambda c: c["contact_counts"]["in_progress"] == 0))["contact_counts"]
    attempts = await _attempts(db, created["id"])
    assert attempts and all(a["outcome"] == "answered" for a in attempts)  # not aborted
    assert counts["completed"] == len(attempts)
    assert counts["skipped"] == 50 - len(attempts) > 0
    assert counts["pending"] == counts["retry_pending"] == 0


TRANSITIONS = [
    ("draft", "pause", 409), ("draft", "resume", 409), ("draft", "stop", 409),
    ("scheduled", "pause", 409), ("scheduled", "resume", 409), ("scheduled", "stop", 200),
    ("scheduled", "start", 200), ("draft", "start", 200),
]


@pytest.mark.parametrize(("status", "verb", "code"), TRANSITIONS)
@pytest.mark.parametrize("settings_overrides", [
    engine_settings([rule("*", "answered", ring=5)])])
async def test_transition_table(api, create_campaign, status, verb, code):
    fields = {"scheduled_at": "2099-01-01T00:00:00Z"} if status == "scheduled" else {}
    created = (await create_campaign(**fields)).json()
    assert created["status"] == status
    response = await api.post(f"/api/v1/campaigns/{created['id']}/{verb}")
    assert response.status_code == code, response.text
    if code == 409:
        assert response.json()["error"]["code"] == "conflict"
        assert status in response.json()["error"]["message"]


@pytest.mark.parametrize("settings_overrides", [
    engine_settings([rule("*", "answered", ring=5)])])
async def test_running_paused_and_completed_transitions(api, create_campaign):
    created = (await create_campaign()).json()
    cid = created["id"]

    async def code(verb):
        return (await api.post(f"/api/v1/campaigns/{cid}/{verb}")).status_code

    assert await code("start") == 200
    assert [await code(v) for v in ("start", "resume")] == [409, 409]
    assert (await api.delete(f"/api/v1/campaigns/{cid}")).status_code == 409
    assert await code("pause") == 200
    assert [await code(v) for v in ("pause",)] == [409]
    assert await code("resume") == 200
    assert await code("pause") == 200
    assert await code("start") == 200  # start also resumes a paused campaign
    assert await code("stop") == 200
    assert [await code(v) for v in ("start", "pause", "resume", "stop")] == [409] * 4
    assert (await api.delete(f"/api/v1/campaigns/{cid}")).status_code == 409


@pytest.mark.parametrize("settings_overrides", [
    engine_settings([rule("*", "answered", ring=0, talk=0)], claim_batch_size=100)])
async def test_stop_during_full_speed_dialing_is_not_a_deadlock(api, create_campaign):
    """Stop locks the campaign row while claims insert attempts that reference it (a
    foreign-key lock) and hold contact rows: the two must not deadlock (it was a 500)."""
    for round_ in range(3):
        created = (await create_campaign(contacts_csv(3000, start=round_ * 3000),
                                         max_concurrent_calls=50)).json()
        await start(api, created["id"])
        await wait_for(api, created["id"], lambda c: c["contact_counts"]["completed"] > 200)
        stopped = await api.post(f"/api/v1/campaigns/{created['id']}/stop")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "completed"


async def test_a_contact_locked_while_the_claims_passed_it_is_still_dialed(
        api, db, database_url, create_campaign):
    """New contacts are claimed from a cursor past the last claim; one that was locked
    (SKIP LOCKED) when the cursor passed it is found once the rest are done."""
    created = (await create_campaign(contacts_csv(30, start=5000), max_concurrent_calls=5)
               ).json()
    campaign_id = uuid.UUID(created["id"])
    conn = await trio_asyncio.aio_as_trio(asyncpg.connect)(database_url)
    try:
        locker = conn.transaction()
        await trio_asyncio.aio_as_trio(locker.start)()
        await trio_asyncio.aio_as_trio(conn.fetch)(
            "SELECT id FROM contacts WHERE campaign_id = $1 AND seq = 0 FOR UPDATE", campaign_id)
        await start(api, created["id"])
        with trio.fail_after(20):
            while await db.fetchval("testing.engine_attempt_count", campaign_id) < 29:
                await trio.sleep(0.05)
        first = (await db.fetch("testing.contacts", campaign_id))[0]
        assert first["status"] == "pending" and first["attempts"] == 0
        await trio_asyncio.aio_as_trio(locker.rollback)()
    finally:
        await trio_asyncio.aio_as_trio(conn.close)()
    done = await wait_status(api, created["id"], "completed")
    assert done["contact_counts"]["pending"] == 0
    attempts = await _attempts(db, campaign_id)
    assert len(attempts) == 30 and len({a["contact_id"] for a in attempts}) == 30


async def test_new_contacts_past_windows_with_none_left_are_dialed(
        api, db, database_url, create_campaign, monkeypatch):
    """New contacts are looked for a window of seqs at a time past the cursor: windows
    with none left (here the first 25 of 40 contacts, skipped before the start) move the
    cursor on, and every pending contact is dialed. Contact pages by status read the
    statuses in and out of the status index."""
    monkeypatch.setattr(dialing, "FRESH_WINDOW", 10)
    created = (await create_campaign(contacts_csv(40, start=6000), max_concurrent_calls=5)
               ).json()
    campaign_id = uuid.UUID(created["id"])
    conn = await trio_asyncio.aio_as_trio(asyncpg.connect)(database_url)
    try:
        await trio_asyncio.aio_as_trio(conn.execute)(
            "UPDATE contacts SET status = 'skipped' WHERE campaign_id = $1 AND seq < 25",
            campaign_id)
    finally:
        await trio_asyncio.aio_as_trio(conn.close)()
    url = f"/api/v1/campaigns/{created['id']}/contacts"
    pending = (await api.get(url, params={"status": "pending"})).json()
    assert [c["phone_number"] for c in pending["data"]] == [us_number(6000 + i)
                                                           for i in range(25, 40)]
    await start(api, created["id"])
    with trio.fail_after(30):
        done = await wait_status(api, created["id"], "completed")
    assert (done["contact_counts"]["skipped"], done["contact_counts"]["pending"]) == (25, 0)
    attempts = await _attempts(db, campaign_id)
    assert sorted({a["phone_number"] for a in attempts}) == [us_number(6000 + i)
                                                           for i in range(25, 40)]
    skipped = (await api.get(url, params={"status": "skipped", "page": 0})).json()
    assert skipped["total"] == 25
    assert [c["phone_number"] for c in skipped["data"]] == [us_number(6000 + i)
                                                           for i in range(25)]
    assert (await api.get(url, params={"status": "pending"})).json()["total"] == 0
