"""Several real `gateway serve` processes on one database: accounts spread over them,
control through any of them, takeovers after kill -9 and SIGTERM, every promise checked
from the attempt history (:func:`lease_cluster.check_promises`).

Leases are short (``LEASE_SECONDS``) so that takeovers fit the tests' bounds. Every
process is killed in ``finally``; every wait is bounded.
"""

from __future__ import annotations

import json
import signal
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import trio
from gateway_process import GATEWAY, clean_env
from lease_cluster import (
    LEASE_SECONDS,
    by_pid,
    check_promises,
    finished,
    gateway,
    history,
    kill_all,
    make_tenant,
    owners,
    pid_of,
    read_events,
    start_all,
)
from tcp_proxy import TcpProxy
from test_engine_faults import most_in_a_window, until

TALK = '[{pattern="*", outcome="answered", ring_seconds=0.05, talk_seconds=%s}]'


@pytest.mark.timeout(120)
async def test_accounts_spread_over_the_processes_and_any_process_controls_them(
        tmp_path, database_url, db):
    gateways = [gateway(tmp_path, database_url, f"gw{i}", TALK % 0.3) for i in range(3)]
    try:
        await start_all(gateways)
        tenants = [await make_tenant(db, gateways[i % 3], f"t{i}", contacts=40, retries=0)
                   for i in range(6)]
        accounts = {t.account_id for t in tenants}

        async def spread() -> dict[str, str] | None:
            held = await owners(db)
            counts = [list(held.values()).count(name) for name in set(held.values())]
            return held if set(held) >= accounts and counts == [2, 2, 2] else None

        with trio.fail_after(20):
            held = await until(spread)  # ceil(6 / 3) each: evened out, not first come
        pids = by_pid(gateways)
        # `gateway status` shows the same: three live processes, two accounts each.
        done = await trio.run_process([GATEWAY, "status"], capture_stdout=True,
                                      env=clean_env(GATEWAY_DATABASE_URL=database_url))
        listed = [json.loads(line) for line in done.stdout.decode().splitlines()]
        assert sorted(p["name"] for p in listed if p["state"] == "live") == sorted(
            set(held.values()))
        assert {p["name"]: set(p["accounts"]) for p in listed} == {
            name: {a for a, n in held.items() if n == name} for name in held.values()}

        # A pause sent to a process that does not dial the account: nothing is dialed
        # there a second after it (calls of 0.3 s would have been replaced meanwhile).
        tenant = tenants[0]
        owner = pids[pid_of(held[tenant.account_id])]
        other = next(gw for gw in gateways if gw is not owner)
        async with other.client(tenant.api_key) as api:
            paused = await api.post(f"/api/v1/campaigns/{tenant.campaign_id}/pause")
            assert paused.status_code == 200, paused.text
            paused_at = datetime.now(UTC)
            await trio.sleep(1.5)
            late = [a for a in await history(db, tenant)
                    if a["dialed_at"] > paused_at + timedelta(seconds=1)]
            assert late == []
            # And a resume through it dials again within a second.
            before = len(await history(db, tenant))
            resumed = await api.post(f"/api/v1/campaigns/{tenant.campaign_id}/resume")
            assert resumed.status_code == 200, resumed.text
            with trio.fail_after(1.0):
                await until(lambda: _more_than(db, tenant, before), poll=0.02)
            # Reads are served by any process.
            read = await api.get(f"/api/v1/campaigns/{tenant.campaign_id}")
            assert read.status_code == 200 and read.json()["status"] == "running"

        with trio.fail_after(60):
            await until(lambda: finished(db, tenants), poll=0.2)
    finally:
        await kill_all(gateways)
    for tenant in tenants:
        attempts = await history(db, tenant)
        assert len({a["contact_id"] for a in attempts}) == 40
        assert all(a["outcome"] == "answered" for a in attempts)
        check_promises(attempts, tenant, retries=0)
    for tenant in tenants[1:]:
        # Dialed by one owner only, one epoch: no process gave an account up or had it
        # taken. (The paused account was released while it had nothing to dial, and taken
        # again, by any process, at the resume.)
        assert len({a["lease_epoch"] for a in await history(db, tenant)}) == 1


async def _more_than(db, tenant, count: int) -> bool:
    return len(await history(db, tenant)) > count


@pytest.mark.timeout(180)
async def test_repeated_kill_9_of_owners_loses_no_contact_and_breaks_no_cap(
        tmp_path, database_url, db):
    """Three processes, four accounts; twice, the owner of the first account is killed
    mid-call (SIGKILL) and a fresh process started. Its accounts are taken over within
    the lease + 5 s, its open attempts (only its own) finished as interrupted and retried,
    every campaign completes and every promise holds across the takeovers."""
    rules = TALK % 0.5
    gateways = [gateway(tmp_path, database_url, f"gw{i}", rules) for i in range(3)]
    killed: list[tuple[str, datetime]] = []
    try:
        await start_all(gateways)
        tenants = [await make_tenant(db, gateways[i % 3], f"k{i}", contacts=60,
                                     concurrent_max=3, calls_per_minute=200, retries=2)
                   for i in range(4)]
        for round_ in range(2):
            with trio.fail_after(20):
                held = await until(lambda: _all_held(db, tenants))
                await until(lambda: _live(db, tenants[0]))
            victim = by_pid(gateways)[pid_of(held[tenants[0].account_id])]
            victim.proc.kill()
            killed.append((held[tenants[0].account_id], datetime.now(UTC)))
            with trio.fail_after(10):
                assert await victim.proc.wait() == -signal.SIGKILL
            replacement = gateway(tmp_path, database_url, f"gw-new{round_}", rules)
            gateways.append(replacement)
            await replacement.start()
            await replacement.wait_healthy(30)
        with trio.fail_after(90):
            await until(lambda: finished(db, tenants), poll=0.2)
    finally:
        await kill_all(gateways)
    interrupted = 0
    for tenant in tenants:
        attempts = await history(db, tenant)
        status = (await db.fetchrow("testing.engine_campaign", tenant.campaign_id))["status"]
        assert status == "completed", tenant
        assert len({a["contact_id"] for a in attempts}) == 60
        check_promises(attempts, tenant, retries=2)
        interrupted += sum(a["outcome"] == "interrupted" for a in attempts)
        # Only a killed process's calls were interrupted.
        dead = {name for name, _ in killed}
        assert all(a["owner_name"] in dead for a in attempts if a["outcome"] == "interrupted")
    assert interrupted > 0  # calls were live at each kill
    # Each victim's first account was dialed again, by another process, within the lease
    # plus 5 s of the kill.
    first = await history(db, tenants[0])
    for name, at in killed:
        after = [a["dialed_at"] for a in first if a["dialed_at"] > at and a["owner_name"] != name]
        assert after and min(after) - at <= timedelta(seconds=LEASE_SECONDS + 5), (name, at)


async def _all_held(db, tenants) -> dict[str, str] | None:
    held = await owners(db)
    return held if all(t.account_id in held for t in tenants) else None


async def _live(db, tenant) -> bool:
    return await db.fetchval("testing.engine_open_attempts", tenant.campaign_id) > 0


@pytest.mark.timeout(120)
async def test_a_rolling_restart_loses_no_call(tmp_path, database_url, db):
    """Two processes; each in turn is stopped with SIGTERM (and started again): its calls
    end within the grace period, its accounts go to the other process as they do, no
    call is interrupted and no contact is dialed twice."""
    rules = TALK % 0.3
    gateways = [gateway(tmp_path, database_url, f"gw{i}", rules) for i in range(2)]
    try:
        await start_all(gateways)
        tenants = [await make_tenant(db, gateways[i % 2], f"r{i}", contacts=80, retries=0)
                   for i in range(4)]
        for round_ in range(2):
            leaving = gateways[round_]

            async def placed(leaving=leaving):  # every account held, some by the leaving one
                held = await _all_held(db, tenants)
                pids = {pid_of(name) for name in (held or {}).values()}
                return held if leaving.proc.pid in pids else None

            with trio.fail_after(20):
                await until(placed)
            assert await leaving.stop(signal.SIGTERM) == 0
            assert leaving.named("lease.released")
            fresh = gateway(tmp_path, database_url, f"gw-next{round_}", rules)
            gateways[round_] = fresh
            await fresh.start()
            await fresh.wait_healthy(30)
        with trio.fail_after(60):
            await until(lambda: finished(db, tenants), poll=0.2)
    finally:
        await kill_all(gateways)
    for tenant in tenants:
        attempts = await history(db, tenant)
        assert len(attempts) == 80 and all(a["outcome"] == "answered" for a in attempts)
        check_promises(attempts, tenant, retries=0)


@pytest.mark.timeout(120)
async def test_a_process_cut_off_from_the_database_stops_dialing_before_another_takes_over(
        tmp_path, database_url, db):
    """The owner's database traffic goes through a TCP proxy that starts dropping every
    packet (a partition, no connection closed). The owner gives its lease up and hangs its
    calls up before the lease expires; only then does the other process take the account
    over (a new epoch), finish the cut-off calls as interrupted and finish the campaign."""
    rules = TALK % 30  # calls that would outlive the partition
    target = urlsplit(database_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(proxy.run)
        via_proxy = target._replace(netloc=f"{target.username}@127.0.0.1:{port}").geturl()
        cut_off = gateway(tmp_path, via_proxy, "cut_off", rules)
        other = gateway(tmp_path, database_url, "other", TALK % 0.05)
        try:
            await start_all([cut_off])
            tenant = await make_tenant(db, cut_off, "p", contacts=6, concurrent_max=3,
                                       retries=1)
            with trio.fail_after(20):
                await until(lambda: _open_at_least(db, tenant, 3))
            await start_all([other])
            lease = await db.fetchrow("testing_engine.lease", uuid.UUID(tenant.account_id))
            assert lease["owner"] is not None and lease["live"]
            proxy.blackhole()
            with trio.fail_after(LEASE_SECONDS + 10):
                await until(lambda: _taken_from(db, tenant, lease["owner"]))
            with trio.fail_after(30):
                await until(lambda: finished(db, [tenant]), poll=0.2)
                # Its hung-up calls are logged once their results could not be written.
                await until(lambda: _logged(cut_off, "call.ended", 3), poll=0.2)
        finally:
            await cut_off.kill()
            await other.kill()
            nursery.cancel_scope.cancel()
    lost = cut_off.named("lease.lost")
    assert lost, cut_off.stderr[-3000:]
    took = [e for e in other.named("lease.acquired") if tenant.account_id in e["accounts"]]
    lost_at = datetime.fromisoformat(lost[0]["timestamp"])
    took_at = datetime.fromisoformat(took[0]["timestamp"])
    # The cut-off process gave the lease up, hanging its calls up at once (their results
    # could not be written), a third of a lease before the other one could take it.
    assert took_at - lost_at >= timedelta(seconds=LEASE_SECONDS / 3 - 0.2)
    hung_up = cut_off.named("call.ended")
    assert len(hung_up) >= 3
    assert all(e["outcome"] == "interrupted" and not e["recorded"] for e in hung_up)
    attempts = await history(db, tenant)
    first = [a for a in attempts if a["lease_epoch"] == lease["epoch"]]
    assert len(first) >= 3 and all(a["outcome"] == "interrupted" for a in first)
    assert all(a["ended_at"] <= took_at for a in first)
    check_promises(attempts, tenant, retries=1)
    assert (await db.fetchrow("testing.engine_campaign", tenant.campaign_id))["status"] == \
        "completed"


async def _open_at_least(db, tenant, count: int) -> bool:
    return await db.fetchval("testing.engine_open_attempts", tenant.campaign_id) >= count


async def _taken_from(db, tenant, owner) -> bool:
    lease = await db.fetchrow("testing_engine.lease", uuid.UUID(tenant.account_id))
    return lease["live"] and lease["owner"] != owner


async def _logged(gw, event: str, count: int) -> bool:
    return len(gw.named(event)) >= count


@pytest.mark.timeout(90)
async def test_a_stream_served_by_a_process_that_does_not_dial_shows_the_live_calls(
        tmp_path, database_url, db):
    """Live metrics from a process that does not hold the account: the phases of the
    calls (ringing, then connected to the agent) published by the one that dials them,
    the counts from the database, to the end of the campaign."""
    dialer = gateway(tmp_path, database_url, "dialer", TALK % 1.5,
                     GATEWAY_SSE_TICK_SECONDS="0.2")
    server = gateway(tmp_path, database_url, "server", TALK % 1.5,
                     GATEWAY_SSE_TICK_SECONDS="0.2")
    try:
        await start_all([dialer])
        tenant = await make_tenant(db, dialer, "s", contacts=6, concurrent_max=3, retries=0)
        await start_all([server])
        held = await owners(db)
        assert pid_of(held[tenant.account_id]) == dialer.proc.pid
        async with server.client(tenant.api_key) as api:
            with trio.fail_after(30):
                events = await read_events(api, tenant.campaign_id)
    finally:
        await dialer.kill()
        await server.kill()
    snapshots = [data for kind, data in events if kind == "message"]
    assert events[-1][0] == "end"
    assert any(s["connected"] == 3 and s["in_flight"] == 3 for s in snapshots), snapshots
    assert all(s["ringing"] + s["connected"] <= s["in_flight"] for s in snapshots)
    final = snapshots[-1]
    assert final["status"] == "completed" and final["outcomes"]["answered"] == 6
    assert (final["ringing"], final["connected"], final["in_flight"]) == (0, 0, 0)


@pytest.mark.timeout(90)
async def test_calls_per_minute_holds_across_a_takeover(tmp_path, database_url, db):
    """The owner dials the account's whole minute of dials (8) and is killed with those
    calls live. The process that takes the account over starts its rate window with them,
    whoever dialed them: it dials the interrupted contacts' retries only as the window
    allows, 8 dials in any 60 s in all."""
    rules = TALK % 3
    first = gateway(tmp_path, database_url, "first", rules)
    second = gateway(tmp_path, database_url, "second", rules)
    try:
        await start_all([first])
        tenant = await make_tenant(db, first, "rate", contacts=30, concurrent_max=8,
                                   calls_per_minute=8, retries=1)
        with trio.fail_after(20):
            await until(lambda: _open_at_least(db, tenant, 8))
        await start_all([second])
        lease = await db.fetchrow("testing_engine.lease", uuid.UUID(tenant.account_id))
        first.proc.kill()
        with trio.fail_after(LEASE_SECONDS + 10):
            await until(lambda: _taken_from(db, tenant, lease["owner"]))
        # Long enough for a window not rebuilt to dial again (at once, 3 s calls).
        await trio.sleep(4)
    finally:
        await first.kill()
        await second.kill()
    attempts = await history(db, tenant)
    assert len(attempts) == 8, attempts  # the minute's 8, none more within the minute
    assert {a["outcome"] for a in attempts} == {"interrupted"}
    assert most_in_a_window(attempts) <= 8
