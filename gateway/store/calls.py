"""A campaign's call history: one row per dial attempt, and the agent's disposition of a
call (given through the API)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import attrs

from gateway.db import Database, Tx
from gateway.store.pages import PAGE_SIZE, Page, offset
from gateway.store.records import from_row
from gateway.vocabulary import MAX_ATTEMPTS, Disposition, DncSource, Outcome

# How long after a call ended the agent may still say how it went.
DISPOSITION_WINDOW = timedelta(hours=24)


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
    disposition: str | None
    callback_at: datetime | None
    disposition_notes: str | None


@attrs.frozen
class DispositionRefused(Exception):
    """The call cannot take a disposition (any more): the message says why."""

    message: str

    def __str__(self) -> str:
        return self.message


@attrs.frozen
class Disposed:
    """A call given a disposition, and what became of its contact (None: the call is
    live, its result applies the disposition; or it is not the contact's latest)."""

    call: Call
    campaign_id: uuid.UUID
    contact_status: str | None


async def page(db: Database, campaign_id: uuid.UUID, number: int) -> Page[Call]:
    rows = await db.fetch("calls.page", campaign_id, PAGE_SIZE, offset(number))
    total = await db.fetchval("calls.count", campaign_id)
    return Page([from_row(Call, row) for row in rows], number, total)


async def set_disposition(db: Database, account_id: uuid.UUID, call_id: uuid.UUID,
                          disposition: Disposition, callback_at: datetime | None,
                          notes: str | None, now: datetime) -> Disposed | None:
    """Give the account's call ``call_id`` its disposition, in one transaction: the
    attempt keeps it; ``do_not_call`` lists the number; a call whose result is recorded
    has its contact decided again (and the dialing process told). None if the account
    has no such call; :class:`DispositionRefused` (nothing written) when the call ended
    unanswered, more than 24 hours ago, or already has a disposition.

    The attempt row is locked first, so the recorder writing the same call at the same
    moment is serialised with this: a live call only keeps the disposition (the
    recorder applies it when the call ends), an ended one is decided here."""

    async def run(tx: Tx) -> Disposed | None:
        row = await tx.fetchrow("calls.lock_for_disposition", call_id, account_id)
        if row is None:
            return None
        _check_open(row["outcome"], row["ended_at"], row["disposition"], now)
        call = from_row(Call, await tx.fetchone("calls.set_disposition", call_id,
                                                disposition, callback_at, notes, now))
        if disposition == Disposition.DO_NOT_CALL:
            # The list's own insert (dnc.sql), one number: no lock order to keep.
            await tx.fetchval("dnc.add", account_id, [row["phone_number"]],
                              DncSource.DISPOSITION, now)
        status = None
        if row["outcome"] is not None:
            status = await tx.fetchval("calls.decide_contact", call_id, MAX_ATTEMPTS)
            await tx.execute("calls.notify", row["campaign_id"])
        return Disposed(call, row["campaign_id"], status)

    return await db.transaction(run)


def _check_open(outcome: str | None, ended_at: datetime | None, given: str | None,
                now: datetime) -> None:
    if given is not None:
        raise DispositionRefused(f"the call already has a disposition ({given})")
    if outcome is None:  # live: it may still be answered
        return
    if outcome != Outcome.ANSWERED:
        raise DispositionRefused(
            f"the call ended without being answered (outcome {outcome}): only an "
            "answered call takes a disposition")
    if ended_at is not None and now - ended_at > DISPOSITION_WINDOW:
        raise DispositionRefused(
            "the call ended more than 24 hours ago: a disposition is accepted while the "
            "call is live and until 24 hours after it ended")
