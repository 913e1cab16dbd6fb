"""A campaign's call history: one row per dial attempt."""

from __future__ import annotations

import uuid
from datetime import datetime

import attrs

from gateway.db import Database
from gateway.store.pages import PAGE_SIZE, Page, offset
from gateway.store.records import from_row


@attrs.frozen
class Call:
    id: uuid.UUID
    contact_id: uuid.UUID
    phone_number: str
    attempt: int
    outcome: str | None
    dialed_at: datetime
    answered_at: datetime | None
    connected_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    hangup_by: str | None
    sip_call_id: str | None
    sip_status: int | None
    agent_sip_status: int | None
    agent_sip_call_id: str | None


async def page(db: Database, campaign_id: uuid.UUID, number: int) -> Page[Call]:
    rows = await db.fetch("calls.page", campaign_id, PAGE_SIZE, offset(number))
    total = await db.fetchval("calls.count", campaign_id)
    return Page([from_row(Call, row) for row in rows], number, total)
