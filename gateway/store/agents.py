"""Voice agents: where a connected call is sent, what it says first, how many it takes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import attrs

from gateway.db import Database
from gateway.store.pages import PAGE_SIZE, Page, offset
from gateway.store.records import from_row


@attrs.frozen
class Agent:
    id: uuid.UUID
    name: str
    status: str
    greeting: str
    sip_uri: str | None
    max_concurrent_calls: int | None  # the calls it takes at once; None: no cap
    created_at: datetime
    updated_at: datetime


async def create(db: Database, account_id: uuid.UUID, *, name: str, status: str,
                 greeting: str, sip_uri: str | None,
                 max_concurrent_calls: int | None = None) -> Agent:
    row = await db.fetchone("agents.insert", account_id, name, status, greeting, sip_uri,
                            max_concurrent_calls)
    return from_row(Agent, row)


async def get(db: Database, account_id: uuid.UUID, agent_id: uuid.UUID) -> Agent | None:
    row = await db.fetchrow("agents.get", agent_id, account_id)
    return None if row is None else from_row(Agent, row)


async def page(db: Database, account_id: uuid.UUID, number: int) -> Page[Agent]:
    rows = await db.fetch("agents.page", account_id, PAGE_SIZE, offset(number))
    total = await db.fetchval("agents.count", account_id)
    return Page([from_row(Agent, row) for row in rows], number, total)


async def update(db: Database, account_id: uuid.UUID, agent_id: uuid.UUID,
                 changes: dict[str, Any]) -> Agent | None:
    """Apply the fields present in ``changes`` (name, status, greeting, sip_uri,
    max_concurrent_calls)."""
    fields = ("name", "status", "greeting", "sip_uri", "max_concurrent_calls")
    row = await db.fetchrow("agents.update", agent_id, account_id,
                            *(changes.get(f) for f in fields), *(f in changes for f in fields))
    return None if row is None else from_row(Agent, row)


async def delete(db: Database, account_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
    return await db.fetchval("agents.delete", agent_id, account_id) is not None
