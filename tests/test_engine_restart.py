"""Restart safety with real processes: `gateway serve` killed with SIGKILL mid-call, and
stopped with SIGTERM while calls are live, then started again on the same database.

The first process talks for 1 s per call so that calls are surely live when it dies; the
second one uses short calls so the rest of the campaign finishes quickly. Every process is
killed in ``finally``; every wait is bounded (the test's fail_after, plus bounded waits on
the processes themselves).
"""

from __future__ import annotations

import signal
from collections import defaultdict
from pathlib import Path

import pytest
import trio
from conftest import API_KEY, contacts_csv, multipart
from engine_helpers import check_attempt_invariants
from gateway_process import GRACE_SECONDS, GatewayProcess, clean_env
from ports import free_tcp_port

LIVE_CALLS = 5
CONTACTS = 30
SLOW_RULES = '[{pattern="*", outcome="answered", ring_seconds=0.05, talk_seconds=1.0}]'
FAST_RULES = '[{pattern="*", outcome="answered", ring_seconds=0.01, talk_seconds=0.02}]'


def _gateway(workdir: Path, database_url: str, name: str, rules: str) -> GatewayProcess:
    """`gateway serve` on the test's database; logs go to files in ``workdir``."""
    return GatewayProcess(workdir, clean_env(
        GATEWAY_DATABASE_URL=database_url, GATEWAY_HTTP_PORT=str(free_tcp_port()),
        GATEWAY_BOOTSTRAP_API_KEY=API_KEY, GATEWAY_LIMITS_MIN_RETRY_DELAY_SECONDS="0",
        GATEWAY_ENGINE_SCHEDULER_POLL_SECONDS="0.05",
        # A process killed is taken over once its leases expire: 2 s, not 15.
        GATEWAY_ENGINE_LEASE_SECONDS="2",
        GATEWAY_ACCOUNTS_DEFAULT_CALLS_PER_MINUTE="1000000",
        GATEWAY_HTTP_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        GATEWAY_TELEPHONY_SIM_RULES=rules), name)


async def _started(gateway: GatewayProcess) -> None:
    await gateway.start()
    await gateway.wait_healthy(30)


async def _create_and_start(gw: GatewayProcess, *, retries: int) -> str:
    async with gw.client(API_KEY) as api:
        agent = await api.post("/api/v1/agents", json={"name": "Ava", "greeting": "Hi"})
        assert agent.status_code == 201, agent.text
        number = await api.post("/api/v1/phone-numbers", json={"number": "+14155550100"})
        assert number.status_code == 201, number.text
        body, content_type = multipart(
            {"name": "restart", "agent_id": agent.json()["id"],
             "phone_number_id": number.json()["id"], "max_concurrent_calls": str(LIVE_CALLS),
             "retries_per_contact": str(retries), "retry_delay_seconds": "0"},
            {"contacts": contacts_csv(CONTACTS)})
        created = await api.post("/api/v1/campaigns", content=body,
                                 headers={"Content-Type": content_type})
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        started = await api.post(f"/api/v1/campaigns/{campaign_id}/start")
        assert started.status_code == 200, started.text
    return campaign_id


async def _until(check, *, poll: float = 0.02):
    """Poll the database until ``check()`` is truthy (the test's fail_after bounds it)."""
    while not (value := await check()):
        await trio.sleep(poll)
    return value


async def _wait_live_calls(db, campaign_id: str) -> None:
    await _until(lambda: _open_at_least(db, campaign_id, LIVE_CALLS))


async def _open_at_least(db, campaign_id, count) -> bool:
    return await db.fetchval("testing.engine_open_attempts", campaign_id) >= count


async def _wait_finished(db, campaign_id: str) -> dict:
    async def finished():
        row = await db.fetchrow("testing.engine_campaign", campaign_id)
        return dict(row) if row["status"] in ("completed", "failed") else None

    return await _until(finished, poll=0.05)


async def _restart_to_completion(second: GatewayProcess, db, campaign_id: str) -> None:
    """Start ``second`` on the same database and let it finish the campaign."""
    try:
        await _started(second)
        done = await _wait_finished(db, campaign_id)
    finally:
        await second.kill()
    assert done["status"] == "completed", done


async def _history(db, campaign_id):
    attempts = [dict(row) for row in await db.fetch("testing.attempts", campaign_id)]
    contacts = [dict(row) for row in await db.fetch("testing.contacts", campaign_id)]
    by_contact = defaultdict(list)
    for attempt in attempts:
        by_contact[attempt["contact_id"]].append(attempt)
    return attempts, contacts, by_contact


async def _crash_mid_call(tmp_path, database_url, db, retries: int):
    """Start a campaign, SIGKILL the gateway while LIVE_CALLS calls are live, and return
    (campaign id, contact ids whose calls were live, a fresh gateway process to restart)."""
    first = _gateway(tmp_path, database_url, "first", SLOW_RULES)
    try:
        await _started(first)
        campaign_id = await _create_and_start(first, retries=retries)
        await _wait_live_calls(db, campaign_id)
        first.proc.kill()  # SIGKILL: no clean-up of any kind
        with trio.fail_after(10):
            assert await first.proc.wait() == -signal.SIGKILL
    finally:
        await first.kill()
    live = [a for a in await db.fetch("testing.attempts", campaign_id) if a["outcome"] is None]
    assert len(live) >= LIVE_CALLS
    assert all(a["attempt"] == 1 for a in live)
    return campaign_id, {a["contact_id"] for a in live}, \
        _gateway(tmp_path, database_url, "second", FAST_RULES)


@pytest.mark.timeout(60)
async def test_sigkill_mid_call_recovers_interrupted_calls_and_retries_them(
        tmp_path, database_url, db):
    campaign_id, interrupted, second = await _crash_mid_call(tmp_path, database_url, db,
                                                             retries=1)
    await _restart_to_completion(second, db, campaign_id)
    attempts, contacts, by_contact = await _history(db, campaign_id)
    assert all(a["outcome"] is not None for a in attempts)
    assert all(c["status"] == "completed" and c["last_outcome"] == "answered" for c in contacts)
    assert len(contacts) == CONTACTS
    check_attempt_invariants(attempts, retries_per_contact=1)
    for contact in contacts:
        mine = by_contact[contact["id"]]
        if contact["id"] in interrupted:
            assert [(a["attempt"], a["outcome"]) for a in mine] == \
                [(1, "interrupted"), (2, "answered")]
            assert contact["attempts"] == 2
        else:
            assert [(a["attempt"], a["outcome"]) for a in mine] == [(1, "answered")]
    assert len(attempts) == CONTACTS + len(interrupted)
    recovered = second.named("supervisor.recovered_interrupted_calls")
    assert [e["attempts"] for e in recovered] == [len(interrupted)]


@pytest.mark.timeout(60)
async def test_sigkill_without_retries_left_fails_interrupted_contacts(tmp_path, database_url,
                                                                       db):
    campaign_id, interrupted, second = await _crash_mid_call(tmp_path, database_url, db,
                                                             retries=0)
    await _restart_to_completion(second, db, campaign_id)
    attempts, contacts, by_contact = await _history(db, campaign_id)
    check_attempt_invariants(attempts, retries_per_contact=0)
    assert len(attempts) == CONTACTS  # the interrupted contacts were never dialed again
    for contact in contacts:
        mine = [(a["attempt"], a["outcome"]) for a in by_contact[contact["id"]]]
        if contact["id"] in interrupted:
            assert mine == [(1, "interrupted")]
            assert (contact["status"], contact["last_outcome"]) == ("failed", "interrupted")
        else:
            assert mine == [(1, "answered")]
            assert contact["status"] == "completed"


@pytest.mark.timeout(60)
async def test_sigterm_lets_live_calls_finish_then_a_restart_resumes(tmp_path, database_url,
                                                                     db):
    first = _gateway(tmp_path, database_url, "first", SLOW_RULES)
    try:
        await _started(first)
        campaign_id = await _create_and_start(first, retries=1)
        await _wait_live_calls(db, campaign_id)
        signalled = trio.current_time()
        assert await first.stop(signal.SIGTERM) == 0
        took = trio.current_time() - signalled
    finally:
        await first.kill()

    # The live calls (1 s of talk) ended on their own, well within the grace period, and
    # were recorded; nothing new was dialed after the signal.
    assert took < GRACE_SECONDS
    attempts, contacts, _ = await _history(db, campaign_id)
    assert len(attempts) == LIVE_CALLS
    assert all(a["outcome"] == "answered" for a in attempts)
    # Each talked its full second: the calls were not cut short by the shutdown.
    assert all((a["ended_at"] - a["answered_at"]).total_seconds() >= 0.95 for a in attempts)
    assert (await db.fetchrow("testing.engine_campaign", campaign_id))["status"] == "running"
    assert first.named("gateway.stopped")

    second = _gateway(tmp_path, database_url, "second", FAST_RULES)
    await _restart_to_completion(second, db, campaign_id)
    attempts, contacts, _ = await _history(db, campaign_id)
    assert len(attempts) == CONTACTS and all(a["outcome"] == "answered" for a in attempts)
    assert all(c["status"] == "completed" for c in contacts)
    check_attempt_invariants(attempts, retries_per_contact=0)  # nobody dialed twice
    assert second.named("supervisor.recovered_interrupted_calls") == []


@pytest.mark.timeout(60)
async def test_sigterm_past_the_grace_period_records_live_calls_as_interrupted(
        tmp_path, database_url, db):
    """Calls outlive a 0.2 s grace period: the process cancels them, records them as
    interrupted itself (nothing left for a restart to guess), exits 0, and the restart
    retries them."""
    first = _gateway(tmp_path, database_url, "first", SLOW_RULES)
    first.env["GATEWAY_HTTP_SHUTDOWN_GRACE_SECONDS"] = "0.2"
    try:
        await _started(first)
        campaign_id = await _create_and_start(first, retries=1)
        await _wait_live_calls(db, campaign_id)
        assert await first.stop(signal.SIGTERM, 10) == 0
    finally:
        await first.kill()
    attempts, contacts, _ = await _history(db, campaign_id)
    assert len(attempts) == LIVE_CALLS
    assert [a["outcome"] for a in attempts] == ["interrupted"] * LIVE_CALLS
    assert all(a["ended_at"] is not None for a in attempts)
    cut = {a["contact_id"] for a in attempts}
    assert all(c["status"] == "retry_pending" for c in contacts if c["id"] in cut)
    assert (await db.fetchrow("testing.engine_campaign", campaign_id))["status"] == "running"

    second = _gateway(tmp_path, database_url, "second", FAST_RULES)
    await _restart_to_completion(second, db, campaign_id)
    assert second.named("supervisor.recovered_interrupted_calls") == []
    attempts, contacts, by_contact = await _history(db, campaign_id)
    check_attempt_invariants(attempts, retries_per_contact=1)
    assert all(c["status"] == "completed" for c in contacts)
    for contact_id in cut:
        assert [a["outcome"] for a in by_contact[contact_id]] == ["interrupted", "answered"]
    assert len(attempts) == CONTACTS + LIVE_CALLS
