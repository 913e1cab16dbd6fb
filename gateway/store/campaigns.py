"""Campaigns and their contacts: creation from a parsed CSV, reads, pages, deletion."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

import attrs

from gateway import timezones
from gateway.clock import utcnow
from gateway.contacts_csv import COPY_COLUMNS, ContactsImport
from gateway.db import Database, Tx
from gateway.ids import contact_id_prefix
from gateway.store.pages import PAGE_SIZE, Page, offset
from gateway.store.records import Row, from_row
from gateway.vocabulary import AgentStatus, CampaignStatus, ContactStatus


class InvalidReference(Exception):
    """A campaign field names something unusable (an inactive agent, a disabled number);
    ``message`` reads well after ``"<field>: "``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class WrongStatus(Exception):
    """The campaign's status does not allow the operation."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@attrs.frozen
class CampaignSettings:
    """What the creator chose, already validated at the edge."""

    name: str
    agent_id: uuid.UUID
    phone_number_id: uuid.UUID
    max_concurrent_calls: int
    retries_per_contact: int
    retry_delay_seconds: int
    scheduled_at: datetime | None
    # Canonical JSON, validated at the edge: {"days", "start", "end"}, or None (the
    # account's applies); and {outcome: {"delay_seconds"?, "max_attempts"?}}.
    calling_window: dict[str, Any] | None = None
    retry_policy: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Campaign:
    id: uuid.UUID
    name: str
    agent_id: uuid.UUID
    phone_number_id: uuid.UUID
    status: str
    max_concurrent_calls: int
    retries_per_contact: int
    retry_delay_seconds: int
    scheduled_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    failure_reason: str | None
    contacts_total: int
    created_at: datetime
    updated_at: datetime
    created_by: uuid.UUID | None
    calling_window: dict[str, Any] | None
    retry_policy: dict[str, Any]
    contact_counts: dict[str, int] = attrs.field(factory=dict)
    # Read with the counts (it costs as much); 0 when they are not read.
    waiting_for_window: int = 0


@attrs.frozen
class Contact:
    id: uuid.UUID
    row_number: int
    phone_number: str
    custom_fields: dict[str, Any]  # the CSV's other columns, by header name
    status: str
    attempts: int
    last_outcome: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    disposition: str | None  # how the agent said its last answered call went


# The agent's sip_uri is where the SIP adapter connects the contacts who answer.
NO_SIP_URI = ("the agent has no sip_uri, which this gateway needs to connect the calls to it "
              "(it dials over SIP): set the agent's sip_uri first")


async def check_references(tx: Tx, account_id: uuid.UUID, settings: CampaignSettings, *,
                           agent_sip_uri_required: bool = False) -> str:
    """Lock and check the agent and number; return the agent's greeting.
    ``agent_sip_uri_required``: the agent must have a sip_uri (the SIP adapter dials)."""
    agent = await tx.fetchrow("campaigns.lock_agent", settings.agent_id, account_id)
    if agent is None:
        raise InvalidReference("agent_id", "no agent with this id in your account")
    if agent["status"] != AgentStatus.ACTIVE:
        raise InvalidReference("agent_id", "the agent is inactive; activate it first")
    if agent_sip_uri_required and agent["sip_uri"] is None:
        raise InvalidReference("agent_id", NO_SIP_URI)
    number = await tx.fetchrow("campaigns.lock_phone_number", settings.phone_number_id,
                               account_id)
    if number is None:
        raise InvalidReference("phone_number_id",
                               "no phone number with this id in your account")
    if not number["outbound_enabled"]:
        raise InvalidReference("phone_number_id",
                               "the number is not enabled for outbound calls")
    return agent["greeting"]


async def create(db: Database, *, campaign_id: uuid.UUID, account_id: uuid.UUID,
                 api_key_id: uuid.UUID, settings: CampaignSettings,
                 contacts: ContactsImport,
                 agent_sip_uri_required: bool = False) -> tuple[Campaign, str]:
    """Insert the campaign and COPY its contacts in one transaction: all or nothing; return
    it and its agent's greeting.

    The agent and number are checked first (:class:`InvalidReference`), before the file
    is read. The CSV is parsed (in a thread) while it is copied; a ``ContactsFileError``
    from the parse rolls everything back and propagates. After it returns, ``contacts``
    holds the import report."""
    status = (CampaignStatus.SCHEDULED if settings.scheduled_at is not None
              else CampaignStatus.DRAFT)

    zone_names = await timezones.known_zones(db)  # read once per process

    async def insert(tx: Tx) -> tuple[Row, str]:
        greeting = await check_references(tx, account_id, settings,
                                          agent_sip_uri_required=agent_sip_uri_required)
        await tx.execute(
            "campaigns.insert", campaign_id, account_id, settings.name, settings.agent_id,
            settings.phone_number_id, status, settings.max_concurrent_calls,
            settings.retries_per_contact, settings.retry_delay_seconds, settings.scheduled_at,
            0, 0, api_key_id, contact_id_prefix(), settings.calling_window,
            settings.retry_policy)
        # The list as it is now: a number added later is skipped when its turn comes.
        contacts.dnc_keys = frozenset(await tx.fetchval("campaigns.import_dnc_keys",
                                                        account_id))
        contacts.known_zones = zone_names
        chunks = contacts.chunks()
        copied = await tx.copy_chunks("contacts", COPY_COLUMNS,
                                      functools.partial(next, chunks, None))
        if copied != contacts.accepted:  # a broken payload must not leave a short campaign
            raise RuntimeError(f"copied {copied} contacts, expected {contacts.accepted}")
        return await _store_zones(tx, campaign_id, contacts), greeting

    # Not re-run on a deadlock: the upload is parsed once, as it is copied.
    row, greeting = await db.transaction(insert, rerun=False)
    return _campaign(row, {ContactStatus.PENDING: contacts.accepted}), greeting


async def _store_zones(tx: Tx, campaign_id: uuid.UUID, contacts: ContactsImport) -> Row:
    """After the COPY: the campaign's sets of zones (the import's numbering), its totals,
    and its pending contacts counted by zone."""
    zones = list(range(len(contacts.zone_sets)))
    await tx.execute("campaigns.insert_zones", campaign_id, zones,
                     [",".join(names) for names in contacts.zone_sets])
    return await tx.fetchone("campaigns.set_totals", campaign_id, contacts.accepted,
                             contacts.rows_rejected, contacts.columns, zones,
                             contacts.zone_counts)


def _campaign(row: Row, counts: dict[str, int]) -> Campaign:
    full = {status: counts.get(status, 0) for status in ContactStatus}
    return from_row(Campaign, {"waiting_for_window": 0, **row, "contact_counts": full})


async def get(db: Database, account_id: uuid.UUID, campaign_id: uuid.UUID, *,
              counts: bool = True) -> Campaign | None:
    """The campaign if the account owns it, with its contacts by status unless
    ``counts=False``."""
    if counts:
        row = await db.fetchrow("campaigns.get_with_counts", campaign_id, account_id,
                                utcnow())
    else:
        row = await db.fetchrow("campaigns.get", campaign_id, account_id)
    if row is None:
        return None
    return _campaign(row, row["contact_counts"] if counts else {})


async def waiting_for_window(db: Database, campaign_id: uuid.UUID) -> int:
    """The campaign's contacts due now but outside their calling window now."""
    return await db.fetchval("campaigns.waiting_for_window", campaign_id, utcnow())


async def page(db: Database, account_id: uuid.UUID, number: int,
               status: str | None = None) -> Page[Campaign]:
    rows = await db.fetch("campaigns.page", account_id, status, PAGE_SIZE, offset(number),
                          utcnow())
    total = await db.fetchval("campaigns.count", account_id, status)
    return Page([_campaign(row, row["contact_counts"]) for row in rows], number, total)


async def delete(db: Database, account_id: uuid.UUID, campaign_id: uuid.UUID) -> bool:
    """Delete a draft campaign and its contacts. False if there is no such campaign;
    :class:`WrongStatus` if it is not a draft."""

    async def remove(tx: Tx) -> bool:
        status = await tx.fetchval("campaigns.status_for_update", campaign_id, account_id)
        if status is None:
            return False
        if status != CampaignStatus.DRAFT:
            raise WrongStatus(status)
        await tx.execute("campaigns.delete", campaign_id)
        return True

    return await db.transaction(remove)


async def contacts_page(db: Database, campaign: Campaign, number: int,
                        status: str | None = None) -> Page[Contact]:
    if status is None:
        start = offset(number)
        rows = await db.fetch("campaigns.contacts_range", campaign.id, start, start + PAGE_SIZE)
        total = campaign.contacts_total
    else:
        if status == ContactStatus.PENDING:  # not in the status index: see its query
            rows = await db.fetch("campaigns.pending_contacts", campaign.id, PAGE_SIZE,
                                  offset(number))
        else:
            rows = await db.fetch("campaigns.contacts_by_status", campaign.id, status,
                                  PAGE_SIZE, offset(number))
        total = await db.fetchval("campaigns.count_contacts_by_status", campaign.id, status)
    return Page([from_row(Contact, row) for row in rows], number, total)
