"""Webhook endpoints and the outbox of their deliveries.

The events themselves are written by the statements that make the changes they report
(``sql/queries/dialing.sql``, ``lifecycle.sql``, ``webhooks.emit_campaign``); this module
reads and manages the endpoints, and gives the delivery actor its claims and results.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

import attrs

from gateway.db import Database, Tx
from gateway.ids import uuid7
from gateway.store.pages import PAGE_SIZE, Page, offset
from gateway.store.records import from_row

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes one: ``whsec_`` + base64 of the key."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@attrs.frozen
class Endpoint:
    id: uuid.UUID
    url: str
    description: str | None
    events: list[str]
    created_at: datetime
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None


@attrs.frozen
class Delivery:
    id: int
    event_id: uuid.UUID
    campaign_id: uuid.UUID
    type: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None


async def create(db: Database, account_id: uuid.UUID, *, url: str, description: str | None,
                 events: Sequence[str]) -> tuple[Endpoint, str]:
    """The new endpoint and its secret (the only time the secret is read out)."""
    secret = new_secret()
    row = await db.fetchone("webhooks.insert_endpoint", uuid7(), account_id, url,
                            description, list(events), secret)
    return from_row(Endpoint, row), secret


async def get(db: Database, account_id: uuid.UUID, endpoint_id: uuid.UUID) -> Endpoint | None:
    row = await db.fetchrow("webhooks.endpoint", account_id, endpoint_id)
    return None if row is None else from_row(Endpoint, row)


async def page(db: Database, account_id: uuid.UUID, number: int) -> Page[Endpoint]:
    rows = await db.fetch("webhooks.endpoints_page", account_id, PAGE_SIZE, offset(number))
    total = await db.fetchval("webhooks.count_endpoints", account_id)
    return Page([from_row(Endpoint, row) for row in rows], number, total)


async def delete(db: Database, account_id: uuid.UUID, endpoint_id: uuid.UUID) -> bool:
    return await db.fetchval("webhooks.delete_endpoint", account_id, endpoint_id) is not None


async def enable(db: Database, account_id: uuid.UUID, endpoint_id: uuid.UUID) -> bool:
    return await db.fetchval("webhooks.enable_endpoint", account_id, endpoint_id) is not None


async def deliveries(db: Database, endpoint_id: uuid.UUID, number: int,
                     status: str | None) -> Page[Delivery]:
    rows = await db.fetch("webhooks.deliveries_page", endpoint_id, PAGE_SIZE, offset(number),
                          status)
    total = await db.fetchval("webhooks.count_deliveries", endpoint_id, status)
    return Page([from_row(Delivery, row) for row in rows], number, total)


async def resend(db: Database, endpoint_id: uuid.UUID, event_id: uuid.UUID) -> Delivery | None:
    row = await db.fetchrow("webhooks.resend", endpoint_id, event_id)
    return None if row is None else from_row(Delivery, row)


# The delivery actor's side.

@attrs.frozen
class Queue:
    """One endpoint's deliveries of one campaign: sent one at a time, in order."""

    endpoint_id: uuid.UUID
    campaign_id: uuid.UUID


@attrs.frozen
class Claimed:
    id: int
    event_id: uuid.UUID
    type: str
    payload: str  # the JSON body, as stored
    attempts: int
    created_at: datetime


@attrs.frozen
class Target:
    id: uuid.UUID
    url: str
    secret: str = attrs.field(repr=False)
    disabled: bool


async def due_queues(db: Database, limit: int) -> list[Queue]:
    rows = await db.fetch("webhooks.streams", limit)
    return [Queue(row["endpoint_id"], row["campaign_id"]) for row in rows]


async def claim(db: Database, queue: Queue, *, owner: uuid.UUID, count: int,
                seconds: float) -> tuple[datetime | None, list[Claimed]]:
    """The queue claimed by ``owner`` for ``seconds`` and its next ``count`` deliveries
    (the claim's end, by the database's clock, and them); none when its head is not due
    or is someone else's now."""

    async def run(tx: Tx) -> tuple[datetime | None, list[Claimed]]:
        if not await tx.fetchval("webhooks.lock_queue", queue.endpoint_id, queue.campaign_id):
            return None, []
        until = await tx.fetchval("webhooks.claim_head", queue.endpoint_id,
                                  queue.campaign_id, owner, seconds)
        if until is None:
            return None, []
        rows = await tx.fetch("webhooks.batch", queue.endpoint_id, queue.campaign_id, count)
        return until, [from_row(Claimed, row) for row in rows]

    return await db.transaction(run)


async def target(db: Database, endpoint_id: uuid.UUID) -> Target | None:
    row = await db.fetchrow("webhooks.endpoint_for_sending", endpoint_id)
    if row is None:
        return None
    return Target(row["id"], row["url"], row["secret"], row["disabled_at"] is not None)


async def delivered(db: Database, endpoint_id: uuid.UUID, ids: Sequence[int],
                    at: Sequence[datetime], codes: Sequence[int], *, next_head: int | None,
                    owner: uuid.UUID, until: datetime) -> None:
    """Deliveries of the endpoint done; the queue's claim (``owner``'s, until ``until``)
    moves on to ``next_head``, the next one it will send."""
    await db.execute("webhooks.delivered", list(ids), list(at), list(codes), next_head, owner,
                     until, endpoint_id)


async def failed(db: Database, endpoint_id: uuid.UUID, delivery_id: int, *, at: datetime,
                 status_code: int | None, error: str | None, retry_at: datetime,
                 give_up_after_seconds: float) -> bool:
    """Record a failed try of a queue's head (its claim let go with it); True when its
    endpoint is now disabled (failing for longer than ``give_up_after_seconds``)."""
    reason = (f"every delivery failed for {give_up_after_seconds / 3600:g} h; last: "
              + (f"HTTP {status_code}" if status_code is not None else (error or "error")))

    async def run(tx: Tx) -> bool:
        disabled = bool(await tx.fetchval("webhooks.failed", delivery_id, at, status_code,
                                          error, retry_at, give_up_after_seconds, reason,
                                          endpoint_id))
        if disabled:
            await tx.execute("webhooks.abandon", endpoint_id)
        return disabled

    return await db.transaction(run)


async def release(db: Database, endpoint_id: uuid.UUID, ids: Sequence[int],
                  owner: uuid.UUID) -> None:
    """``owner``'s claim, on whichever of the endpoint's ``ids`` carries it, let go."""
    if ids:
        await db.execute("webhooks.release", list(ids), owner, endpoint_id)


async def forget_delivered(db: Database, older_than_seconds: float) -> None:
    await db.execute("webhooks.forget_delivered", older_than_seconds)
