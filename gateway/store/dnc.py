"""The account's do-not-call list: E.164 numbers that are never dialed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

import attrs

from gateway.clock import utcnow
from gateway.db import Database, Tx
from gateway.store.pages import PAGE_SIZE, Page, offset
from gateway.store.records import from_row
from gateway.vocabulary import DncSource

# Numbers per INSERT: a JSON request (at most this many) is one statement; an upload is
# as many statements as it needs, in one transaction.
CHUNK_NUMBERS = 10_000


@attrs.frozen
class DncEntry:
    number: str
    source: str  # a DncSource
    created_at: datetime


def in_lock_order(numbers: Iterable[str]) -> list[str]:
    """Distinct E.164 numbers in the order `add` takes them: ascending digits."""
    return sorted(set(numbers), key=lambda number: int(number[1:]))


async def add(db: Database, account_id: uuid.UUID, numbers: Sequence[str],
              source: DncSource) -> int:
    """List the numbers (distinct, E.164, in `in_lock_order`); returns how many were not
    listed yet. All or nothing: more than `CHUNK_NUMBERS` go in chunks of one
    transaction."""
    at = utcnow()
    if len(numbers) <= CHUNK_NUMBERS:
        return await db.fetchval("dnc.add", account_id, list(numbers), source, at)

    async def insert(tx: Tx) -> int:
        added = 0
        for start in range(0, len(numbers), CHUNK_NUMBERS):
            chunk = list(numbers[start:start + CHUNK_NUMBERS])
            added += await tx.fetchval("dnc.add", account_id, chunk, source, at)
        return added

    # Re-run whole on a deadlock: the numbers are read again from the start.
    return await db.transaction(insert)


async def page(db: Database, account_id: uuid.UUID, number: int,
               only: str | None = None) -> Page[DncEntry]:
    """A page of the list in number order; `only`: that one number (E.164) or none."""
    rows = await db.fetch("dnc.page", account_id, only, PAGE_SIZE, offset(number))
    total = await db.fetchval("dnc.count", account_id, only)
    return Page([from_row(DncEntry, row) for row in rows], number, total)


async def listed(db: Database, account_id: uuid.UUID, numbers: Sequence[str]) -> set[str]:
    """Those of `numbers` that are on the account's list."""
    return {row["number"] for row in await db.fetch("dnc.listed", account_id, list(numbers))}


async def delete(db: Database, account_id: uuid.UUID, number: str) -> bool:
    """Take the number off the list; False if it was not on it."""
    return await db.fetchval("dnc.delete", account_id, number) is not None
