"""The dial loop's reads and writes: claim due contacts, record results, progress."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import attrs

from gateway.db import Database, Tx
from gateway.telephony.base import CallResult
from gateway.vocabulary import RETRYABLE, WebhookEvent

_RETRYABLE = sorted(RETRYABLE)


@attrs.frozen
class LeaseRef:
    """What a claim is fenced by: the claiming process and its lease epoch on the
    campaign's account."""

    owner: uuid.UUID
    epoch: int


@attrs.frozen
class Claim:
    """A contact taken for one dial, its attempt row already written."""

    attempt_id: uuid.UUID
    contact_id: uuid.UUID
    seq: int  # the contact's position in its import
    attempt: int
    phone_number: str
    custom_fields: dict[str, Any]


@attrs.frozen
class CampaignRow:
    id: uuid.UUID
    account_id: uuid.UUID
    status: str
    max_concurrent_calls: int
    retries_per_contact: int
    retry_delay_seconds: int
    contacts_total: int  # its contacts' seqs are 0 .. contacts_total - 1
    custom_field_names: list[str]  # its contacts' custom_fields are values in this order
    agent_id: uuid.UUID
    agent_max_concurrent_calls: int | None  # the agent's cap, shared by its campaigns


@attrs.frozen
class References:
    agent_id: uuid.UUID
    agent_ok: bool
    agent_name: str
    agent_sip_uri: str | None
    from_number: str
    number_ok: bool
    windowed: bool  # a calling window applies (the campaign's or its account's)


@attrs.frozen
class Progress:
    status: str
    pending: int
    retry_pending: int
    in_progress: int
    next_retry_at: datetime | None  # the first retry still to come
    next_window_at: datetime | None  # the first opening of a closed zone with contacts
    waiting_pending: int  # new contacts outside their window now

    @property
    def finished(self) -> bool:
        return self.pending == self.retry_pending == self.in_progress == 0

    @property
    def claimable_pending(self) -> int:
        """New contacts inside their window now."""
        return self.pending - self.waiting_pending


@attrs.frozen
class Caps:
    account_id: uuid.UUID
    concurrent_max: int
    calls_per_minute: int
    dials_left_today: int | None


# How many seqs past its cursor one claim looks for new contacts (see ``claim``).
FRESH_WINDOW = 1000


@attrs.define
class ClaimCursor:
    """Where a campaign actor's next claim looks for new contacts (dialing.sql: ``claim``).

    New contacts are claimed in seq order, so a claim starts past the last new contact the
    actor took (:meth:`advance`) and looks at most `FRESH_WINDOW` seqs further: the scan
    skips what was already taken, whatever the campaign's size. A window without a
    claimable new contact moves the cursor a window on (:meth:`next_window`). A start, a
    resume or a rescan (:meth:`rescan`: a contact that was locked when the cursor passed it)
    begins at the first pending contact (:meth:`locate`), so a resume late in a big
    campaign does not walk it window by window.
    """

    campaign: CampaignRow
    from_seq: int | None = None  # None: locate before the next claim

    async def locate(self, db: Database, now: datetime) -> int:
        """The seq the next claim starts from (after a rescan, that of the first new
        contact inside its calling window at ``now``; ``contacts_total`` when none is)."""
        if self.from_seq is None:
            self.from_seq = await db.fetchval("dialing.first_pending_seq", self.campaign.id,
                                              self.campaign.contacts_total, now)
        return self.from_seq

    def advance(self, fresh: list[int]) -> None:
        """Past the new contacts at seqs ``fresh`` (claimed, or skipped as on the
        do-not-call list). Only new contacts move the cursor: a retry's seq may lie past
        new contacts the cursor has yet to reach."""
        if fresh and self.from_seq is not None:
            self.from_seq = max(self.from_seq, max(fresh) + 1)

    def next_window(self) -> bool:
        """The claim found no new contact in the window: move to the next one, if the
        campaign has contacts past it (False: the cursor is at the last window)."""
        last = self.campaign.contacts_total
        if self.from_seq is None or self.from_seq + FRESH_WINDOW >= last:
            return False
        self.from_seq += FRESH_WINDOW
        return True

    def rescan(self) -> None:
        self.from_seq = None


@attrs.frozen
class Claimed:
    """What one claim took: the contacts to dial, and how many due contacts it skipped
    instead because their number is on the do-not-call list."""

    claims: list[Claim]
    skipped: int = 0

    @property
    def found(self) -> int:
        """Due contacts the claim decided (dialed or skipped)."""
        return len(self.claims) + self.skipped


async def claim(db: Database, now: datetime, limit: int, cursor: ClaimCursor,
                lease: LeaseRef | None) -> Claimed:
    """Claim up to ``limit`` due contacts of the cursor's campaign that are inside their
    calling window: retries first, then new contacts in the cursor's window (located
    first if need be), and advance the cursor past them; contacts on the do-not-call list
    among them are skipped, not dialed. Nothing is claimed unless ``lease`` is the live
    lease on the campaign's account (None: this process holds none, so nothing is)."""
    if lease is None:
        return Claimed([])
    campaign = cursor.campaign
    from_seq = await cursor.locate(db, now)
    rows = await db.fetch("dialing.claim", campaign.id, now, limit, from_seq, FRESH_WINDOW,
                          lease.owner, lease.epoch)
    names = campaign.custom_field_names
    claims = [Claim(attempt_id=row["attempt_id"], contact_id=row["contact_id"],
                    seq=row["seq"], attempt=row["attempt"], phone_number=row["phone_number"],
                    custom_fields=dict(zip(names, row["custom_fields"], strict=True)))
              for row in rows if row["attempt_id"] is not None]
    # New contacts: a first attempt claimed, or a contact never dialed skipped.
    cursor.advance([row["seq"] for row in rows
                    if row["attempt"] == (1 if row["attempt_id"] is not None else 0)])
    return Claimed(claims, len(rows) - len(claims))


async def recent_dials(db: Database, account_ids: list[uuid.UUID], now: datetime,
                       window_seconds: float) -> dict[uuid.UUID, list[datetime]]:
    """The accounts' dials in the ``window_seconds`` before ``now``, oldest first."""
    found: dict[uuid.UUID, list[datetime]] = {account_id: [] for account_id in account_ids}
    for row in await db.fetch("dialing.recent_dials", account_ids, now, window_seconds):
        found[row["account_id"]].append(row["dialed_at"])
    return found


async def sweep_orphans(db: Database, now: datetime, dialed_before: datetime,
                        live: set[uuid.UUID], owner: uuid.UUID) -> list[uuid.UUID]:
    """Finish the open attempts of process ``owner`` dialed before ``dialed_before`` that
    are not ``live``, and those of processes that are gone (as interrupted, their contacts
    retried or failed); return the campaign of each contact decided."""
    rows = await db.fetch("dialing.sweep_orphans", now, dialed_before, list(live), owner)
    return [row["campaign_id"] for row in rows]


async def record_many(db: Database, results: list[tuple[uuid.UUID, CallResult]]
                      ) -> dict[uuid.UUID, str]:
    """Write many results in one statement; return each attempt's contact status (attempts
    already recorded are absent)."""
    columns = list(zip(*[(attempt_id, r.outcome, r.answered_at, r.ended_at,
                          r.duration_seconds, r.sip_call_id, r.sip_status, r.connected_at,
                          r.hangup_by, r.agent_sip_status, r.agent_sip_call_id,
                          r.disposition, r.callback_at, r.disposition_notes)
                         for attempt_id, r in results], strict=True))
    rows = await db.fetch("dialing.record_results", *columns, _RETRYABLE)
    return {row["attempt_id"]: row["status"] for row in rows}


async def progress(db: Database, campaign_id: uuid.UUID, now: datetime) -> Progress | None:
    row = await db.fetchrow("dialing.progress", campaign_id, now)
    return None if row is None else Progress(**dict(row))


async def complete(db: Database, campaign_id: uuid.UUID, now: datetime) -> bool:
    """Complete the running campaign if nothing is left to dial, with its webhook event."""

    async def run(tx: Tx) -> bool:
        if await tx.fetchval("dialing.complete", campaign_id, now) is None:
            return False
        await tx.execute("webhooks.emit_campaign", campaign_id,
                         WebhookEvent.CAMPAIGN_COMPLETED)
        return True

    return await db.transaction(run)


async def campaign(db: Database, campaign_id: uuid.UUID) -> CampaignRow | None:
    row = await db.fetchrow("dialing.campaign", campaign_id)
    return None if row is None else CampaignRow(**dict(row))


async def references(db: Database, campaign_id: uuid.UUID) -> References:
    return References(**dict(await db.fetchone("dialing.references", campaign_id)))


async def running(db: Database, account_ids: list[uuid.UUID]
                  ) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(campaign, account) of the running campaigns of ``account_ids``."""
    return [(row["id"], row["account_id"])
            for row in await db.fetch("dialing.running", account_ids)]


async def due_scheduled(db: Database, now: datetime, account_ids: list[uuid.UUID]
                        ) -> list[tuple[uuid.UUID, uuid.UUID]]:
    return [(row["id"], row["account_id"])
            for row in await db.fetch("dialing.due_scheduled", now, account_ids)]


async def agent_caps(db: Database, campaign_ids: list[uuid.UUID]) -> dict[uuid.UUID, int | None]:
    """The ``max_concurrent_calls`` of the agents of these campaigns, by agent id."""
    rows = await db.fetch("dialing.agent_caps", campaign_ids)
    return {row["id"]: row["max_concurrent_calls"] for row in rows}


async def caps(db: Database, account_ids: list[uuid.UUID], now: datetime) -> list[Caps]:
    found = []
    for row in await db.fetch("dialing.caps", account_ids, now):
        left = None
        if row["daily_calls_max"] is not None:
            left = max(0, row["daily_calls_max"] - row["dials_today"])
        if row["daily_minutes_max"] is not None and \
                row["talk_seconds_today"] >= row["daily_minutes_max"] * 60:
            left = 0
        found.append(Caps(row["id"], row["concurrent_max"], row["calls_per_minute"], left))
    return found
