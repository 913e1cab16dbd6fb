"""Several real ``gateway serve`` processes on one database, and the checks every promise
of several processes must pass, read from the attempt history.

Each process is a :class:`~gateway_process.GatewayProcess` with short leases, so that
takeovers happen within the tests' bounds. Accounts are made in the database (each with
its own API key); their agents, numbers and campaigns through the API of any process.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import attrs
from conftest import contacts_csv, multipart
from engine_helpers import check_attempt_invariants, max_overlap
from gateway_process import GatewayProcess, clean_env
from ports import free_tcp_port
from test_engine_faults import most_in_a_window
from test_events import _read

from gateway.store import accounts

LEASE_SECONDS = 2.0


def gateway(workdir: Path, database_url: str, name: str, rules: str, **env: str
            ) -> GatewayProcess:
    """`gateway serve` on the test's database with ``LEASE_SECONDS`` leases."""
    return GatewayProcess(workdir, clean_env(
        GATEWAY_DATABASE_URL=database_url, GATEWAY_HTTP_PORT=str(free_tcp_port()),
        GATEWAY_LIMITS_MIN_RETRY_DELAY_SECONDS="0",
        GATEWAY_ENGINE_SCHEDULER_POLL_SECONDS="0.2",
        GATEWAY_ENGINE_LEASE_SECONDS=str(LEASE_SECONDS),
        GATEWAY_HTTP_SHUTDOWN_GRACE_SECONDS="5",
        GATEWAY_TELEPHONY_SIM_RULES=rules, **env), name)


async def start_all(gateways: list[GatewayProcess]) -> None:
    """Start them together, then wait until each serves."""
    for gw in gateways:
        await gw.start()
    for gw in gateways:
        await gw.wait_healthy(30)


@attrs.define
class Tenant:
    """An account with an agent, a number and one running campaign."""

    account_id: str
    api_key: str
    concurrent_max: int
    calls_per_minute: int
    campaign_id: str = ""


async def make_tenant(db, gw: GatewayProcess, name: str, *, contacts: int,
                      concurrent_max: int = 3, calls_per_minute: int = 1_000_000,
                      retries: int = 2, start: bool = True) -> Tenant:
    new = await accounts.create_account(db, name=name, concurrent_max=concurrent_max,
                                        calls_per_minute=calls_per_minute)
    tenant = Tenant(str(new.account.id), new.api_key, concurrent_max, calls_per_minute)
    async with gw.client(tenant.api_key) as api:
        agent = await api.post("/api/v1/agents", json={"name": "Ava", "greeting": "Hi"})
        assert agent.status_code == 201, agent.text
        number = await api.post("/api/v1/phone-numbers", json={"number": "+14155550100"})
        assert number.status_code == 201, number.text
        body, content_type = multipart(
            {"name": name, "agent_id": agent.json()["id"],
             "phone_number_id": number.json()["id"],
             "max_concurrent_calls": str(concurrent_max),
             "retries_per_contact": str(retries), "retry_delay_seconds": "0"},
            {"contacts": contacts_csv(contacts)})
        created = await api.post("/api/v1/campaigns", content=body,
                                 headers={"Content-Type": content_type})
        assert created.status_code == 201, created.text
        tenant.campaign_id = created.json()["id"]
        if start:
            started = await api.post(f"/api/v1/campaigns/{tenant.campaign_id}/start")
            assert started.status_code == 200, started.text
    return tenant


async def owners(db) -> dict[str, str]:
    """account id → the live owner's process name (host:pid)."""
    rows = await db.fetch("testing_engine.live_leases")
    return {str(row["account_id"]): row["name"] for row in rows}


def pid_of(name: str) -> int:
    return int(name.rsplit(":", 1)[1])


def by_pid(gateways: list[GatewayProcess]) -> dict[int, GatewayProcess]:
    return {gw.proc.pid: gw for gw in gateways if gw.proc is not None}


async def kill_all(gateways: list[GatewayProcess]) -> None:
    """Safety net for ``finally``: no gateway left behind."""
    for gw in gateways:
        await gw.kill()


async def finished(db, tenants: list[Tenant]) -> bool:
    for tenant in tenants:
        row = await db.fetchrow("testing.engine_campaign", tenant.campaign_id)
        if row["status"] not in ("completed", "failed", "stopped"):
            return False
    return True


async def history(db, tenant: Tenant) -> list[dict]:
    return [dict(a) for a in await db.fetch("testing_engine.lease_attempts", tenant.campaign_id)]


def check_promises(attempts: list[dict], tenant: Tenant, *, retries: int) -> None:
    """Every promise of several processes, from the attempt history of one account's
    campaign: no contact dialed twice at once or beyond its limit, attempts numbered in
    order, ``concurrent_max`` held at every instant (recovered attempts end no later than
    their account was taken over), ``calls_per_minute`` held in every 60 s window, every
    attempt dialed under a lease (owner and epoch recorded), one owner per epoch, and no
    call of an epoch still live at the first dial of a later one."""
    check_attempt_invariants(attempts, retries_per_contact=retries)
    assert all(a["ended_at"] is not None for a in attempts)
    assert max_overlap(attempts) <= tenant.concurrent_max, tenant
    assert most_in_a_window(attempts) <= tenant.calls_per_minute
    assert all(a["owner"] is not None and a["lease_epoch"] is not None for a in attempts)
    # One epoch, one owner; and every call of an epoch ended before the first dial of a
    # later one: one process at a time.
    owner_of: dict[int, object] = {}
    by_epoch: dict[int, list[dict]] = defaultdict(list)
    for a in attempts:
        assert owner_of.setdefault(a["lease_epoch"], a["owner"]) == a["owner"], a
        by_epoch[a["lease_epoch"]].append(a)
    epochs = sorted(by_epoch)
    for earlier, later in pairwise(epochs):
        last_end = max(a["ended_at"] for a in by_epoch[earlier])
        first_dial = min(a["dialed_at"] for a in by_epoch[later])
        assert last_end <= first_dial, (earlier, later, last_end, first_dial)



async def read_events(api, campaign_id: str) -> list[tuple[str, dict]]:
    """(event type, data) of a campaign's SSE stream, until its ``end`` event."""
    return [(kind, data) for _, kind, _, data in await _read(api, campaign_id)]
