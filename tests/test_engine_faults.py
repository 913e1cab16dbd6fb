"""The engine keeps its promises across faults: restarts inside the rate window, claims
whose answer was lost, result writes that fail, a busy pool.

Real PostgreSQL and real in-process gateways (``serve``) on the test's database; the sim
carrier with short calls. Timestamps in the history come from the gateway's clock, which
the in-process server shares with the test. Every wait is for an event or a database
state, bounded by the test's time limit; a sleep appears only where a test asserts that
something does NOT happen, and says so.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import uuid
from datetime import timedelta

import asyncpg
import pytest
import trio
import trio_asyncio
from conftest import API_KEY, Gateway, contacts_csv, make_settings, multipart, us_number
from engine_helpers import check_attempt_invariants, engine_settings, rule, wait_for, wait_status

import gateway.db
from gateway.clock import utcnow
from gateway.db import DatabaseBusy, DatabaseUnavailable
from gateway.serve import serve
from gateway.store import accounts, dialing


@contextlib.asynccontextmanager
async def serving(database_url, tmp_path, overrides):
    """An in-process gateway on ``database_url`` for as long as the context lasts."""
    settings = make_settings(database_url, tmp_path, **overrides)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(functools.partial(
            serve, settings, shutdown=shutdown, handle_signals=False, bootstrap_key=API_KEY))
        yield Gateway(binds[0], settings)
        shutdown.set()


_numbers = itertools.count(100)


async def create_campaign(api, csv: bytes, **fields) -> str:
    agent = await api.post("/api/v1/agents", json={"name": "Ava", "greeting": "Hi"})
    number = await api.post("/api/v1/phone-numbers",
                            json={"number": f"+1415555{next(_numbers):04d}"})
    assert number.status_code == 201, number.text
    form = {"name": "faults", "agent_id": agent.json()["id"],
            "phone_number_id": number.json()["id"], "retry_delay_seconds": "0",
            **{key: str(value) for key, value in fields.items()}}
    body, content_type = multipart(form, {"contacts": csv})
    created = await api.post("/api/v1/campaigns", content=body,
                             headers={"Content-Type": content_type})
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def start(api, campaign_id: str) -> None:
    response = await api.post(f"/api/v1/campaigns/{campaign_id}/start")
    assert response.status_code == 200, response.text


async def until(check, *, poll: float = 0.02):
    """Poll until ``check()`` is truthy (the test's time limit bounds it)."""
    while not (value := await check()):
        await trio.sleep(poll)
    return value


async def attempts(db, campaign_id) -> list[dict]:
    return [dict(row) for row in await db.fetch("testing.attempts", campaign_id)]


async def attempt_count(db, campaign_id) -> int:
    return await db.fetchval("testing.engine_attempt_count", campaign_id)


async def finished(db, campaign_id) -> dict | None:
    row = await db.fetchrow("testing.engine_campaign", campaign_id)
    return dict(row) if row["status"] in ("completed", "failed") else None


def most_in_a_window(history, seconds: float = 60.0) -> int:
    """The most dials of ``history`` in any window of ``seconds`` (a dial leaves it at
    dial + seconds)."""
    dials = sorted(a["dialed_at"] for a in history)
    window = timedelta(seconds=seconds)
    return max((sum(1 for d in dials if t - window < d <= t) for t in dials), default=0)


# -- the rate window and the daily cap across a restart --------------------------------------

RATE = 3
BACKDATE_SECONDS = 57.0  # the first process's dials, moved to 57 s ago: 3 s of window left


@pytest.mark.timeout(60)
async def test_calls_per_minute_holds_across_a_restart(database_url, tmp_path, db):
    """The first process dials its full minute, then stops; the next one, started inside
    that minute, waits for the window to move instead of dialing a second full window."""
    overrides = engine_settings([rule("*", "answered")])
    overrides["accounts"] = {"default_calls_per_minute": RATE, "default_concurrent_max": 10}
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        campaign_id = await create_campaign(api, contacts_csv(2 * RATE))
        await start(api, campaign_id)
        await until(lambda: _all_ended(db, campaign_id, RATE))
    # As if the first process's dials had happened 57 s ago (the test cannot wait a minute).
    await db.execute("testing_engine.shift_attempts", campaign_id, BACKDATE_SECONDS)
    restarted = utcnow()
    async with serving(database_url, tmp_path, overrides):
        # (Not until the campaign completes: a rate-limited actor notices that only when
        # its next slot comes, up to a minute later.)
        await until(lambda: _all_ended(db, campaign_id, 2 * RATE))
    history = await attempts(db, campaign_id)
    assert len(history) == 2 * RATE
    assert most_in_a_window(history) == RATE
    second = [a["dialed_at"] for a in history[RATE:]]
    # Not before the first process's first dial left the window.
    assert min(second) >= history[0]["dialed_at"] + timedelta(seconds=60)
    assert min(second) >= restarted + timedelta(seconds=60 - BACKDATE_SECONDS - 0.5)


async def _all_ended(db, campaign_id, count) -> bool:
    history = await attempts(db, campaign_id)
    return len(history) >= count and all(a["outcome"] is not None for a in history)


@pytest.mark.timeout(60)
async def test_the_daily_cap_holds_right_after_a_restart_and_between_refreshes(
        database_url, tmp_path, db):
    """daily_calls_max 40 with three campaigns dialing zero-length calls as fast as they
    can and the caps re-read every 20 ms: exactly 40 dials, and none after a restart."""
    cap = 40
    overrides = engine_settings([rule("*", "answered", ring=0)], caps_refresh_seconds=0.02,
                                claim_batch_size=7)
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        account_id = (await accounts.authenticate(db, API_KEY)).account.id
        await accounts.set_limits(db, account_id, daily_calls_max=cap)
        ids = [await create_campaign(api, contacts_csv(100, start=1000 * i),
                                     max_concurrent_calls=10) for i in range(3)]
        for campaign_id in ids:
            await start(api, campaign_id)
        await until(lambda: _dialed(db, ids, cap))
        # Asserting that nothing more is dialed: a window of many cap refreshes.
        await trio.sleep(0.5)
        assert await _total(db, ids) == cap
    async with serving(database_url, tmp_path, overrides):
        await trio.sleep(0.5)  # again: nothing may be dialed after the restart either
        assert await _total(db, ids) == cap


async def _total(db, ids) -> int:
    return sum([await attempt_count(db, campaign_id) for campaign_id in ids])


async def _dialed(db, ids, count) -> bool:
    return await _total(db, ids) >= count


# -- orphans: claims whose answer was lost, results that could not be written ----------------

SWEEP = {"orphan_sweep_seconds": 0.3}


@pytest.mark.timeout(60)
async def test_a_claim_whose_answer_was_lost_is_recovered_while_running(database_url,
                                                                        tmp_path, db):
    """A claim commits but its rows never reach the actor (here: the test makes the claim,
    as the dialer, and drops the answer). Its contacts are not left in_progress: the sweep
    interrupts those attempts and the contacts are retried; the live calls, longer than
    the sweep's age, are left alone."""
    overrides = engine_settings([rule("*", "answered", ring=0.5)], **SWEEP)
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        campaign_id = await create_campaign(api, contacts_csv(8), max_concurrent_calls=2,
                                            retries_per_contact=1)
        await start(api, campaign_id)
        await until(lambda: _live_calls(db, campaign_id))
        lease = await db.fetchrow("testing_engine.campaign_lease", campaign_id)
        row = await dialing.campaign(db, uuid.UUID(campaign_id))
        lost = (await dialing.claim(db, utcnow(), 3, dialing.ClaimCursor(row, 0),
                                    dialing.LeaseRef(lease["owner"], lease["epoch"]))).claims
        assert len(lost) == 3  # committed: in_progress, attempts open, nobody dials them
        done = await until(lambda: finished(db, campaign_id))
    assert done["status"] == "completed"
    history = await attempts(db, campaign_id)
    check_attempt_invariants(history, retries_per_contact=1)
    orphaned = {c.contact_id for c in lost}
    for contact_id in {a["contact_id"] for a in history}:
        outcomes = [a["outcome"] for a in history if a["contact_id"] == contact_id]
        expected = ["interrupted", "answered"] if contact_id in orphaned else ["answered"]
        assert outcomes == expected, (contact_id, outcomes)
    contacts = await db.fetch("testing.contacts", campaign_id)
    assert all(c["status"] == "completed" for c in contacts)


async def _live_calls(db, campaign_id) -> bool:
    return await db.fetchval("testing.engine_open_attempts", campaign_id) > 0


@pytest.mark.timeout(60)
async def test_a_result_that_cannot_be_written_does_not_stall_the_campaign(database_url,
                                                                          tmp_path, db):
    """One contact's result is refused by the database (not an outage). The batch it was
    in is written one by one (the other results keep their real outcomes), the actor goes
    on, and the refused attempt is finished as interrupted by the sweep: the campaign
    completes instead of waiting for a restart."""
    await db.execute("testing_engine.refuse_results_function")
    await db.execute("testing_engine.refuse_results_trigger")
    overrides = engine_settings([rule("*", "answered", ring=0.05)], **SWEEP)
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        campaign_id = await create_campaign(api, contacts_csv(20), max_concurrent_calls=10)
        await start(api, campaign_id)
        done = await until(lambda: finished(db, campaign_id))
    assert done["status"] == "completed"
    contacts = {c["phone_number"]: dict(c) for c in await db.fetch("testing.contacts",
                                                                   campaign_id)}
    refused = contacts.pop(us_number(3))
    assert (refused["status"], refused["last_outcome"]) == ("failed", "interrupted")
    assert all((c["status"], c["last_outcome"]) == ("completed", "answered")
               for c in contacts.values())


# -- pools ----------------------------------------------------------------------------------


async def test_a_pool_that_is_only_busy_is_not_an_outage(db, monkeypatch):
    """Every connection of the pool in use past the acquire timeout: DatabaseBusy (still a
    DatabaseUnavailable, so the engine waits it out), saying the connections are busy."""
    monkeypatch.setattr(gateway.db, "ACQUIRE_TIMEOUT_SECONDS", 0.3)
    async with trio.open_nursery() as nursery:
        for _ in range(4):  # the fixture's pool has 4 connections
            nursery.start_soon(db.fetchval, "testing_engine.sleep", 3.0)
        observer = await gateway.db.Database.open(db._dsn, min_size=1, max_size=1)
        try:
            await until(lambda: _sleeping(observer, 4))
        finally:
            await observer.close()
        with pytest.raises(DatabaseBusy) as caught:
            await db.fetchval("testing_engine.sleep", 0)
        nursery.cancel_scope.cancel()
    assert isinstance(caught.value, DatabaseUnavailable)
    assert "in use" in str(caught.value)


async def _sleeping(observer, count) -> bool:
    return await observer.fetchval("testing_engine.sleeping_backends") >= count


@pytest.mark.timeout(60)
async def test_api_requests_holding_every_api_connection_do_not_stall_dialing(
        database_url, tmp_path, db):
    """The API's pool is one connection, held by a start request that waits on a row lock
    the test holds; the running campaign dials to completion on the engine's own pool
    meanwhile."""
    overrides = engine_settings([rule("*", "answered", ring=0.05)])
    overrides["database"] = {"pool_max_size": 1}
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        running = await create_campaign(api, contacts_csv(200), max_concurrent_calls=5)
        waiting = await create_campaign(api, contacts_csv(5, start=500))
        account_id = (await accounts.authenticate(db, API_KEY)).account.id
        await start(api, running)  # before the lock: its start is not blocked
        holder = await trio_asyncio.aio_as_trio(asyncpg.connect)(database_url)
        try:
            await trio_asyncio.aio_as_trio(holder.execute)("BEGIN")
            await trio_asyncio.aio_as_trio(holder.execute)(
                "SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE", account_id)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(api.post, f"/api/v1/campaigns/{waiting}/start")
                await until(lambda: _waiting_on_a_lock(db))  # the API's only connection
                assert await finished(db, running) is None
                done = await until(lambda: finished(db, running))
                assert await _waiting_on_a_lock(db)  # held all along
                await trio_asyncio.aio_as_trio(holder.execute)("ROLLBACK")
        finally:
            await trio_asyncio.aio_as_trio(holder.close)()
    assert done["status"] == "completed"


async def _waiting_on_a_lock(db) -> bool:
    return await db.fetchval("testing_engine.waiting_on_a_lock") > 0



async def test_an_outage_when_a_campaign_must_fail_is_waited_out(database_url, tmp_path, db,
                                                                 monkeypatch):
    """Every call a carrier failure: the campaign must fail just as the database stops
    answering (its first two tries to record the failure). The actor waits for the database
    instead of crashing, so the two long calls in flight run to their end and are recorded
    as answered (a crash would cancel them: ``interrupted``)."""
    from gateway.store import lifecycle  # the actor's fail path goes through it

    real_finish, refused = lifecycle.finish, []

    async def finish(*args, **kwargs):
        if len(refused) < 2:
            refused.append(kwargs.get("status"))
            raise DatabaseUnavailable("database unavailable: the test's outage")
        return await real_finish(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "finish", finish)
    long_calls = (us_number(0), us_number(1))  # dialed first, in CSV order
    overrides = engine_settings([*(rule(n, "answered", talk=4.0) for n in long_calls),
                                 rule("*", "failed")],
                                adapter_failure_seconds=0.3, adapter_failure_min_calls=5)
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        campaign_id = await create_campaign(api, contacts_csv(200), max_concurrent_calls=5)
        assert (await api.post(f"/api/v1/campaigns/{campaign_id}/start")).status_code == 200
        failed = await wait_status(api, campaign_id, "failed", "completed")
        await wait_for(api, campaign_id, lambda c: c["contact_counts"]["in_progress"] == 0)
    assert refused == ["failed", "failed"]
    assert failed["status"] == "failed" and "carrier" in failed["failure_reason"]
    history = await attempts(db, campaign_id)
    assert sorted(a["outcome"] for a in history if a["phone_number"] in long_calls) == \
        ["answered", "answered"]
    assert not [a for a in history if a["outcome"] == "interrupted"]
