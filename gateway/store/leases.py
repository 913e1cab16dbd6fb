"""Account leases and the processes that hold them (sql/queries/leases.sql)."""

from __future__ import annotations

import uuid
from datetime import datetime

import attrs

from gateway.db import Database
from gateway.store.records import from_row


@attrs.frozen
class Demand:
    """An account that needs a dialer, and who dials it now."""

    account_id: uuid.UUID
    owner: uuid.UUID | None  # the lease's holder, live or not (None: never taken, released)
    owned: bool  # the lease is held and not expired


@attrs.frozen
class Peer:
    id: uuid.UUID
    name: str
    started_at: datetime
    renewed_at: datetime
    expires_at: datetime
    live: bool
    stopping: bool
    accounts: list[uuid.UUID]  # its live leases


async def renew(db: Database, peer_id: uuid.UUID, name: str, seconds: float,
                held: dict[uuid.UUID, int], *, stopping: bool) -> dict[uuid.UUID, int]:
    """Renew the process's row and its ``held`` leases (account → epoch) for ``seconds``;
    the leases renewed (one held and missing is lost)."""
    rows = await db.fetch("leases.renew", peer_id, name, seconds, list(held),
                          list(held.values()), stopping)
    return {row["account_id"]: row["epoch"] for row in rows}


async def demand(db: Database, now: datetime) -> tuple[list[Demand], int]:
    """The accounts that need a dialer (a campaign running, or scheduled and due by
    ``now``) and the number of live processes."""
    rows = await db.fetch("leases.demand", now)
    peers = rows[0]["peers"] if rows else 0
    return [from_row(Demand, row) for row in rows], peers


async def acquire(db: Database, peer_id: uuid.UUID, account_ids: list[uuid.UUID],
                  seconds: float) -> dict[uuid.UUID, int]:
    """Take the free leases among ``account_ids``; those taken, with their new epochs."""
    rows = await db.fetch("leases.acquire", peer_id, account_ids, seconds)
    return {row["account_id"]: row["epoch"] for row in rows}


async def release(db: Database, peer_id: uuid.UUID,
                  account_ids: list[uuid.UUID] | None) -> list[uuid.UUID]:
    """Give leases up (all of the process's when ``account_ids`` is None)."""
    rows = await db.fetch("leases.release", peer_id, account_ids)
    return [row["account_id"] for row in rows]


async def retire(db: Database, peer_id: uuid.UUID) -> None:
    await db.execute("leases.retire", peer_id)


async def forget_dead(db: Database, after_seconds: float) -> None:
    await db.execute("leases.forget_dead", after_seconds)


async def status(db: Database) -> list[Peer]:
    return [from_row(Peer, row) for row in await db.fetch("leases.status")]


async def notify_campaign(db: Database, campaign_id: uuid.UUID) -> None:
    """Tell every process that a campaign's row changed (its owner acts on it)."""
    await db.fetchval("leases.notify", campaign_id)
