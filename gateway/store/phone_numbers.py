"""Caller-ID numbers a campaign dials from."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import attrs

from gateway.db import Database
from gateway.store.pages import PAGE_SIZE, Page, offset
from gateway.store.records import from_row


@attrs.frozen
class PhoneNumber:
    id: uuid.UUID
    number: str
    outbound_enabled: bool
    label: str
    created_at: datetime
    updated_at: datetime


async def create(db: Database, account_id: uuid.UUID, *, number: str, outbound_enabled: bool,
                 label: str) -> PhoneNumber:
    """Raises :class:`gateway.db.UniqueViolation` if the account has the number already."""
    row = await db.fetchone("phone_numbers.insert", account_id, number, outbound_enabled, label)
    return from_row(PhoneNumber, row)


async def get(db: Database, account_id: uuid.UUID, number_id: uuid.UUID) -> PhoneNumber | None:
    row = await db.fetchrow("phone_numbers.get", number_id, account_id)
    return None if row is None else from_row(PhoneNumber, row)


async def page(db: Database, account_id: uuid.UUID, number: int) -> Page[PhoneNumber]:
    rows = await db.fetch("phone_numbers.page", account_id, PAGE_SIZE, offset(number))
    total = await db.fetchval("phone_numbers.count", account_id)
    return Page([from_row(PhoneNumber, row) for row in rows], number, total)


async def update(db: Database, account_id: uuid.UUID, number_id: uuid.UUID,
                 changes: dict[str, Any]) -> PhoneNumber | None:
    fields = ("outbound_enabled", "label")
    row = await db.fetchrow("phone_numbers.update", number_id, account_id,
                            *(changes.get(f) for f in fields), *(f in changes for f in fields))
    return None if row is None else from_row(PhoneNumber, row)


async def delete(db: Database, account_id: uuid.UUID, number_id: uuid.UUID) -> bool:
    return await db.fetchval("phone_numbers.delete", number_id, account_id) is not None
