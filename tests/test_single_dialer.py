"""One dialer per database: two real `gateway serve` processes on one database.

The first one dials; the second one (started while the first has live calls) stands by:
it logs ``engine.standby`` once, serves the API (its lifecycle changes reach the dialer
through the database), touches none of the first one's live calls and dials nothing. Once
the first one is killed (SIGKILL), the second one takes the dialer lock, recovers the dead
one's open attempts and finishes the campaign. Every process is killed in ``finally``;
every wait is bounded (the test's limit, plus bounded waits on the processes).
"""

from __future__ import annotations

import signal
from collections import defaultdict
from pathlib import Path

import pytest
import trio
from conftest import API_KEY
from engine_helpers import check_attempt_invariants, engine_settings, rule
from gateway_process import GRACE_SECONDS, GatewayProcess, clean_env
from ports import free_tcp_port
from test_engine_faults import create_campaign, serving, start, until
from test_engine_restart import (
    CONTACTS,
    LIVE_CALLS,
    SLOW_RULES,
    _create_and_start,
    _until,
    _wait_finished,
    _wait_live_calls,
)


def _gateway(workdir: Path, database_url: str, name: str) -> GatewayProcess:
    return GatewayProcess(workdir, clean_env(
        GATEWAY_DATABASE_URL=database_url, GATEWAY_HTTP_PORT=str(free_tcp_port()),
        GATEWAY_BOOTSTRAP_API_KEY=API_KEY, GATEWAY_LIMITS_MIN_RETRY_DELAY_SECONDS="0",
        GATEWAY_ENGINE_SCHEDULER_POLL_SECONDS="0.05",
        GATEWAY_ENGINE_STANDBY_RETRY_SECONDS="0.2",
        GATEWAY_ACCOUNTS_DEFAULT_CALLS_PER_MINUTE="1000000",
        GATEWAY_HTTP_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        GATEWAY_TELEPHONY_SIM_RULES=SLOW_RULES), name)


async def _open_attempts(db, campaign_id) -> dict:
    return {a["id"]: a for a in await db.fetch("testing.attempts", campaign_id)
            if a["outcome"] is None}


@pytest.mark.timeout(90)
async def test_a_second_process_stands_by_then_takes_over(tmp_path, database_url, db):
    first = _gateway(tmp_path, database_url, "first")
    second = _gateway(tmp_path, database_url, "second")
    try:
        await first.start()
        await first.wait_healthy(30)
        campaign_id = await _create_and_start(first, retries=1)
        await _wait_live_calls(db, campaign_id)
        live_before = await _open_attempts(db, campaign_id)

        await second.start()
        await second.wait_healthy(30)
        await _until(lambda: _logged(second, "engine.standby"))
        # The second one serves the API, and what it changes reaches the dialer: a pause
        # there stops the first one's dialing (within its poll period).
        async with second.client(API_KEY) as api:
            read = await api.get(f"/api/v1/campaigns/{campaign_id}")
            assert read.status_code == 200 and read.json()["status"] == "running"
            paused = await api.post(f"/api/v1/campaigns/{campaign_id}/pause")
            assert paused.status_code == 200, paused.text
        at_pause = {a["id"]: a for a in await db.fetch("testing.attempts", campaign_id)}
        # The live calls of the first one were not touched: they end with their real
        # outcomes (answered after 1 s of talk), recorded by the first process.
        await _until(lambda: _none_open(db, at_pause))
        history = [dict(a) for a in await db.fetch("testing.attempts", campaign_id)]
        # And the pause reached the dialer: nothing was dialed after it (calls of 1 s
        # would have been replaced as they ended).
        assert {a["id"] for a in history} == set(at_pause)
        for attempt_id in live_before:
            mine = next(a for a in history if a["id"] == attempt_id)
            assert mine["outcome"] == "answered", mine
        assert not second.named("supervisor.recovered_interrupted_calls")
        assert all(a["outcome"] == "answered" for a in history)

        async with second.client(API_KEY) as api:
            resumed = await api.post(f"/api/v1/campaigns/{campaign_id}/resume")
            assert resumed.status_code == 200, resumed.text
        dialing_again = await _until(lambda: _new_open(db, campaign_id, history))
        assert not second.named("call.ended")  # no call was run by the standby
        first.proc.kill()  # SIGKILL mid-call: the dialer is gone, its calls are open
        with trio.fail_after(10):
            assert await first.proc.wait() == -signal.SIGKILL
        done = await _wait_finished(db, campaign_id)
        assert done["status"] == "completed", done
    finally:
        await first.kill()
        await second.kill()

    assert len(second.named("engine.standby")) == 1
    assert second.named("engine.took_over")
    history = [dict(a) for a in await db.fetch("testing.attempts", campaign_id)]
    cut = {a["id"] for a in history if a["outcome"] == "interrupted"}
    assert dialing_again <= cut  # the dead one's live calls, recovered by the second
    recovered = second.named("supervisor.recovered_interrupted_calls")
    assert [e["attempts"] for e in recovered] == [len(cut)]
    check_attempt_invariants(history, retries_per_contact=1)
    by_contact = defaultdict(list)
    for a in history:
        by_contact[a["contact_id"]].append(a["outcome"])
    interrupted = {a["contact_id"] for a in history if a["id"] in cut}
    for contact_id, outcomes in by_contact.items():
        expected = ["interrupted", "answered"] if contact_id in interrupted else ["answered"]
        assert outcomes == expected
    assert len(by_contact) == CONTACTS
    assert not first.named("engine.standby")


async def _logged(gateway: GatewayProcess, event: str) -> bool:
    return bool(gateway.named(event))


async def _none_open(db, attempts: dict) -> bool:
    rows = await db.fetch("testing.attempts", next(iter(attempts.values()))["campaign_id"])
    return all(row["outcome"] is not None for row in rows if row["id"] in attempts)


async def _new_open(db, campaign_id, history) -> set | None:
    seen = {a["id"] for a in history}
    fresh = {a_id for a_id in await _open_attempts(db, campaign_id) if a_id not in seen}
    return fresh if len(fresh) >= LIVE_CALLS else None


@pytest.mark.timeout(60)
async def test_a_lost_lock_connection_hangs_up_and_stands_by_until_it_is_back(
        database_url, tmp_path, db):
    """The dialer lock's connection is terminated under a dialing process: it claims
    nothing more (the claim checks the lock), hangs its live calls up (recorded as
    interrupted, so no one else's dial can overlap them), takes the lock again, and
    finishes the campaign with those contacts retried."""
    overrides = engine_settings([rule("*", "answered", ring=0.05, talk=30)],
                                standby_retry_seconds=0.2, lock_check_seconds=0.1)
    overrides["http"] = {"shutdown_grace_seconds": 0.2}  # the 30 s calls are cut at the end
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        campaign_id = await create_campaign(api, b"phone_number\n+12025550143\n"
                                            b"+12025550144\n", retries_per_contact=1)
        await start(api, campaign_id)
        await _until(lambda: _open_count(db, campaign_id, 2))
        pid = await db.fetchval("testing_engine.dialer_pid")
        await db.fetchval("testing_engine.terminate", pid)
        cut = await until(lambda: _interrupted(db, campaign_id, 2))
        # The retries (30 s calls) run under the lock taken again by a new connection.
        await until(lambda: _new_pid(db, pid))
        await until(lambda: _open_count(db, campaign_id, 2))
        stop = await api.post(f"/api/v1/campaigns/{campaign_id}/stop")
        assert stop.status_code == 200
    history = [dict(a) for a in await db.fetch("testing.attempts", campaign_id)]
    check_attempt_invariants(history, retries_per_contact=1)
    assert [a["outcome"] for a in history[:2]] == ["interrupted", "interrupted"]
    assert {a["id"] for a in history[:2]} == cut
    assert [a["attempt"] for a in history[2:]] == [2, 2]


async def _open_count(db, campaign_id, count) -> bool:
    return await db.fetchval("testing.engine_open_attempts", campaign_id) >= count


async def _interrupted(db, campaign_id, count) -> set | None:
    cut = {a["id"] for a in await db.fetch("testing.attempts", campaign_id)
           if a["outcome"] == "interrupted"}
    return cut if len(cut) >= count else None


async def _new_pid(db, old) -> bool:
    pid = await db.fetchval("testing_engine.dialer_pid")
    return pid is not None and pid != old
