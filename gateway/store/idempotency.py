"""Idempotency keys: claims of an account's keys, and the responses stored under them.

A key is claimed by the one request that acts under it (a token of its own proves it); the
others read the row until the claim has a response to replay, or has gone stale and may
be taken over. See gateway/http/idempotency.py for the rules and sql/migrations/
0010_idempotency.sql for the table.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import attrs

from gateway.db import Database


@attrs.frozen
class StoredResponse:
    status: int
    content_type: str | None
    body: bytes


@attrs.frozen
class KeyState:
    """A key's row: a claim in progress (``response`` None), or a stored response."""

    claim: uuid.UUID
    request_hash: bytes | None  # None while a streamed body is still being read
    created_at: datetime
    heartbeat_at: datetime
    response: StoredResponse | None


async def claim(db: Database, account_id: uuid.UUID, key: str, request_hash: bytes | None,
                now: datetime, *, ttl: timedelta, stale_after: timedelta) -> uuid.UUID | None:
    """Claim the key for a request about to act: its token, or None if the key is held
    (a claim with a recent heartbeat, or a response younger than ``ttl``)."""
    token = uuid.uuid4()
    return await db.fetchval("idempotency.claim", account_id, key, token, request_hash, now,
                             now - ttl, now - stale_after)


async def get(db: Database, account_id: uuid.UUID, key: str) -> KeyState | None:
    row = await db.fetchrow("idempotency.get", account_id, key)
    if row is None:
        return None
    response = None
    if row["completed_at"] is not None:
        response = StoredResponse(row["status"], row["content_type"], bytes(row["body"]))
    return KeyState(claim=row["claim"], request_hash=row["request_hash"],
                    created_at=row["created_at"], heartbeat_at=row["heartbeat_at"],
                    response=response)


async def heartbeat(db: Database, account_id: uuid.UUID, key: str, token: uuid.UUID,
                    now: datetime) -> bool:
    """Keep the claim alive; False if it is no longer this request's."""
    return await db.fetchval("idempotency.heartbeat", account_id, key, token, now) is not None


async def complete(db: Database, account_id: uuid.UUID, key: str, token: uuid.UUID,
                   request_hash: bytes, response: StoredResponse, now: datetime) -> bool:
    """Store the claim's response; False if the claim was taken over meanwhile."""
    return await db.fetchval("idempotency.complete", account_id, key, token, request_hash,
                             response.status, response.content_type, response.body,
                             now) is not None


async def release(db: Database, account_id: uuid.UUID, key: str, token: uuid.UUID) -> None:
    """Give the key up without a response: the next request with it acts."""
    await db.execute("idempotency.release", account_id, key, token)


async def sweep(db: Database, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` rows created before ``before``; how many were deleted."""
    status = await db.execute("idempotency.sweep", before, limit)
    return int(status.split()[-1])
