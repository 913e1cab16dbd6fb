"""Campaign transitions (start, pause, resume, stop, fail) as single transactions, each
with its webhook event.

The allowed transitions are those of docs/api.md; anything else raises :class:`WrongStatus`
(the HTTP edge answers 409 naming the current status). Start and resume check the
concurrency budget while holding the account row, so simultaneous starts are serialised.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import attrs

from gateway.db import Database, Tx
from gateway.store.campaigns import NO_SIP_URI, InvalidReference, WrongStatus
from gateway.store.records import Row
from gateway.vocabulary import CampaignStatus, WebhookEvent

START_FROM = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.PAUSED)
STOP_FROM = (CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED)


@attrs.frozen
class BudgetExceeded(Exception):
    """Starting would reserve more concurrency than the account has."""

    needed: int
    reserved: int
    concurrent_max: int

    @property
    def free(self) -> int:
        return max(0, self.concurrent_max - self.reserved)

    def __str__(self) -> str:
        if self.concurrent_max == 0:
            return ("the account's concurrent_max is 0: dialing is blocked by the operator "
                    "(ask them to raise it with `gateway accounts limits`)")
        advice = "pause or stop another running campaign"
        if self.free > 0:
            advice += f", or lower this campaign's max_concurrent_calls to {self.free} or less"
        return (f"starting this campaign needs {self.needed} concurrent calls, but running "
                f"campaigns already reserve {self.reserved} of the account's "
                f"{self.concurrent_max} ({self.free} free): {advice}")


async def _locked(tx: Tx, account_id: uuid.UUID, campaign_id: uuid.UUID,
                  allowed: tuple[str, ...]) -> Row | None:
    row = await tx.fetchrow("lifecycle.lock_campaign", campaign_id, account_id)
    if row is None:
        return None
    if row["status"] not in allowed:
        raise WrongStatus(row["status"])
    return row


async def start(db: Database, account_id: uuid.UUID, campaign_id: uuid.UUID, now: datetime,
                *, allowed: tuple[str, ...] = START_FROM,
                agent_sip_uri_required: bool = False) -> bool:
    """Move the campaign to running. False if there is no such campaign.

    Raises WrongStatus, InvalidReference (agent inactive, number disabled; the agent
    without a sip_uri when ``agent_sip_uri_required``: the SIP adapter dials) or
    BudgetExceeded; nothing changes when it does."""

    async def run(tx: Tx) -> bool:
        concurrent_max = await tx.fetchval("lifecycle.lock_account", account_id)
        row = await _locked(tx, account_id, campaign_id, allowed)
        if row is None:
            return False
        refs = await tx.fetchone("dialing.references", campaign_id)
        if not refs["agent_ok"]:
            raise InvalidReference("agent_id", "the campaign's agent is inactive or deleted")
        if agent_sip_uri_required and refs["agent_sip_uri"] is None:
            raise InvalidReference("agent_id", NO_SIP_URI)
        if not refs["number_ok"]:
            raise InvalidReference("phone_number_id", "the campaign's phone number is "
                                   "disabled for outbound calls or deleted")
        reserved = await tx.fetchval("lifecycle.reserved", account_id, campaign_id)
        if reserved + row["max_concurrent_calls"] > concurrent_max:
            raise BudgetExceeded(row["max_concurrent_calls"], reserved, concurrent_max)
        await tx.execute("lifecycle.set_running", campaign_id, now)
        resumed = row["status"] == CampaignStatus.PAUSED
        await tx.execute("webhooks.emit_campaign", campaign_id,
                         WebhookEvent.CAMPAIGN_RESUMED if resumed
                         else WebhookEvent.CAMPAIGN_STARTED)
        return True

    return await db.transaction(run)


async def pause(db: Database, account_id: uuid.UUID, campaign_id: uuid.UUID) -> bool:
    async def run(tx: Tx) -> bool:
        if await _locked(tx, account_id, campaign_id, (CampaignStatus.RUNNING,)) is None:
            return False
        await tx.execute("lifecycle.set_paused", campaign_id)
        await tx.execute("webhooks.emit_campaign", campaign_id, WebhookEvent.CAMPAIGN_PAUSED)
        return True

    return await db.transaction(run)


async def finish(db: Database, account_id: uuid.UUID, campaign_id: uuid.UUID, now: datetime,
                 *, status: CampaignStatus = CampaignStatus.COMPLETED, reason: str | None = None,
                 allowed: tuple[str, ...] = STOP_FROM) -> bool:
    """Stop (``completed``) or fail (``failed`` with ``reason``) the campaign."""

    async def run(tx: Tx) -> bool:
        if await _locked(tx, account_id, campaign_id, allowed) is None:
            return False
        await tx.execute("lifecycle.set_finished", campaign_id, status, now, reason,
                         account_id)
        await tx.execute("webhooks.emit_campaign", campaign_id,
                         WebhookEvent.CAMPAIGN_FAILED if status == CampaignStatus.FAILED
                         else WebhookEvent.CAMPAIGN_COMPLETED)
        return True

    return await db.transaction(run)
