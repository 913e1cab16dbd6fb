"""A campaign's contacts and call attempts for the exports: every row, a chunk at a time.

Each chunk is one query (exports.sql) starting where the chunk before ended on the rows'
order key, so an export of any size holds one chunk in memory and no database connection
between chunks, and a slow client only leaves its export waiting. Rows written while an
export is read may or may not be in it; each row is as it was when its chunk was read.

A chunk holds about `CHUNK_CELLS` fields (at most `MAX_CHUNK_ROWS` rows), so it costs
about the same to encode however many custom fields the contacts have.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs

from gateway.db import Database
from gateway.vocabulary import ContactStatus

# The fields of the pages' objects (ContactOut, CallOut), in their order; the queries
# return them in this order, then the keyset cursor.
CONTACT_FIELDS: tuple[str, ...] = (
    "id", "row_number", "phone_number", "custom_fields", "status", "attempts",
    "last_outcome", "last_attempt_at", "next_attempt_at", "disposition")
CALL_FIELDS: tuple[str, ...] = (
    "id", "contact_id", "phone_number", "attempt", "outcome", "dialed_at", "answered_at",
    "connected_at", "ended_at", "duration_seconds", "hangup_by", "sip_call_id", "sip_status",
    "agent_sip_status", "agent_sip_call_id", "disposition", "callback_at",
    "disposition_notes")
CUSTOM_FIELDS = CONTACT_FIELDS.index("custom_fields")
# ~5-10 ms to encode on the event loop (tests/bench/export.py times it).
CHUNK_CELLS = 60_000
MAX_CHUNK_ROWS = 5_000
MIN_CHUNK_ROWS = 100


class CampaignGone(Exception):
    """The campaign was deleted (a draft) while its export was read."""


@attrs.frozen
class ContactsSource:
    """The account's campaign whose contacts are exported."""

    campaign_id: uuid.UUID
    custom_field_names: tuple[str, ...]  # the campaign's, in header order
    contacts_total: int


@attrs.frozen
class Chunk:
    """Rows of an export, in order. ``rows``: each row's fields in the order of
    `CONTACT_FIELDS` or `CALL_FIELDS` (ids and times as the API's JSON text; a contact's
    custom_fields as the JSON text of its values), then the cursor. ``custom_values``
    (contacts): each row's custom field values, in the order of the campaign's names."""

    rows: list[Any]
    custom_values: list[list[str]] = attrs.field(factory=list)


def chunk_rows(fields: int) -> int:
    """Rows per chunk for rows of ``fields`` fields."""
    return max(MIN_CHUNK_ROWS, min(MAX_CHUNK_ROWS, CHUNK_CELLS // max(1, fields)))


async def contacts_source(db: Database, account_id: uuid.UUID,
                          campaign_id: uuid.UUID) -> ContactsSource | None:
    """The campaign if the account owns it."""
    row = await db.fetchrow("exports.campaign", campaign_id, account_id)
    if row is None:
        return None
    return ContactsSource(campaign_id, tuple(row["custom_field_names"]), row["contacts_total"])


async def campaign_owned(db: Database, account_id: uuid.UUID, campaign_id: uuid.UUID) -> bool:
    return await db.fetchrow("exports.campaign", campaign_id, account_id) is not None


async def contact_chunks(db: Database, source: ContactsSource,
                         status: str | None = None) -> AsyncIterator[Chunk]:
    """Every contact of the campaign (of ``status`` only, if given), in seq order, a chunk
    at a time; :class:`CampaignGone` after the last chunk if the campaign was deleted
    meanwhile."""
    size = chunk_rows(len(CONTACT_FIELDS) - 1 + len(source.custom_field_names))
    campaign_id = source.campaign_id
    if status is None or status == ContactStatus.PENDING:
        # seq is dense: windows of the key, each read once (exports.sql).
        name = "exports.contacts" if status is None else "exports.pending_contacts"
        for start in range(0, source.contacts_total, size):
            rows = await db.fetch(name, campaign_id, start, start + size)
            if rows:
                yield contacts_chunk(rows)
            del rows  # not held while the next chunk is read: one chunk in memory
    else:
        after, more = -1, True
        while more:
            rows = await db.fetch("exports.contacts_by_status", campaign_id, status, after,
                                  size)
            if rows:
                yield contacts_chunk(rows)
                after = rows[-1]["seq"]
            more = len(rows) == size
            del rows
    await _check_exists(db, campaign_id)


async def call_chunks(db: Database, campaign_id: uuid.UUID,
                      outcome: str | None = None) -> AsyncIterator[Chunk]:
    """Every call attempt of the campaign (of ``outcome`` only, if given) in the page's
    order, a chunk at a time; :class:`CampaignGone` as for contacts."""
    size = chunk_rows(len(CALL_FIELDS))
    after_at, after_id, more = None, None, True
    while more:
        rows = await db.fetch("exports.calls", campaign_id, after_at, after_id, size, outcome)
        if rows:
            yield Chunk(rows)
            after_at, after_id = rows[-1]["after_dialed_at"], rows[-1]["after_id"]
        more = len(rows) == size
        del rows
    await _check_exists(db, campaign_id)


def contacts_chunk(rows: list[Any]) -> Chunk:
    """The chunk of rows of contacts (each row's values are a JSON array: the chunk's
    arrays are decoded in one call)."""
    values = json.loads("[" + ",".join(row[CUSTOM_FIELDS] for row in rows) + "]")
    return Chunk(rows, values)


async def _check_exists(db: Database, campaign_id: uuid.UUID) -> None:
    if not await db.fetchval("exports.campaign_exists", campaign_id):
        raise CampaignGone(str(campaign_id))
