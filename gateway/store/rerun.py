"""Reruns: a new draft campaign of some of a finished campaign's contacts.

The new campaign has the source's agent, number and settings (concurrency, retries,
retry policy, calling window, custom field names), none of its schedule, state or counts;
its contacts are the source's of the statuses asked for, as the import wrote them (pending,
never dialed), minus the numbers on the account's do-not-call list now: an import would
reject them. All of it in one transaction, the contacts copied by one statement
(rerun.sql: copy_contacts).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

import attrs

from gateway.db import Database, Tx
from gateway.ids import contact_id_prefix, uuid7
from gateway.store.campaigns import CampaignSettings, WrongStatus, check_references
from gateway.vocabulary import TERMINAL

NAME_MAX_CHARS = 200
NAME_SUFFIX = " (rerun)"


class NoContacts(Exception):
    """No contact of the source has those statuses (``matching`` 0), or all that do are on
    the do-not-call list now."""

    def __init__(self, matching: int) -> None:
        super().__init__(matching)
        self.matching = matching


@attrs.frozen
class Rerun:
    campaign_id: uuid.UUID
    contacts: int      # copied: the new campaign's contacts
    do_not_call: int   # of the source's contacts with those statuses, left out: listed


def default_name(source: str) -> str:
    """``<source> (rerun)``, the source's name shortened to fit the name's limit."""
    return source[:NAME_MAX_CHARS - len(NAME_SUFFIX)].rstrip() + NAME_SUFFIX


async def rerun(db: Database, *, account_id: uuid.UUID, source_id: uuid.UUID,
                api_key_id: uuid.UUID, statuses: Collection[str], name: str | None,
                agent_sip_uri_required: bool = False) -> Rerun | None:
    """The new draft's id and what was copied; None if the account has no such campaign.
    :class:`WrongStatus` unless the source is completed or failed,
    :class:`~gateway.store.campaigns.InvalidReference` if its agent or number cannot be
    used now, :class:`NoContacts` if no contact would be copied (nothing is created)."""
    campaign_id = uuid7()
    wanted = list(statuses)

    async def copy(tx: Tx) -> Rerun | None:
        source = await tx.fetchrow("rerun.lock_source", source_id, account_id)
        if source is None:
            return None
        if source["status"] not in TERMINAL:
            raise WrongStatus(source["status"])
        settings = CampaignSettings(
            name=source["name"], agent_id=source["agent_id"],
            phone_number_id=source["phone_number_id"],
            max_concurrent_calls=source["max_concurrent_calls"],
            retries_per_contact=source["retries_per_contact"],
            retry_delay_seconds=source["retry_delay_seconds"], scheduled_at=None,
            calling_window=source["calling_window"], retry_policy=source["retry_policy"])
        await check_references(tx, account_id, settings,
                               agent_sip_uri_required=agent_sip_uri_required)
        await tx.execute("rerun.insert_campaign", campaign_id, source_id,
                         name or default_name(source["name"]), api_key_id,
                         contact_id_prefix())
        await tx.execute("rerun.copy_zones", campaign_id, source_id)
        copied = sum(row["n"] for row in await tx.fetch(
            "rerun.copy_contacts", campaign_id, source_id, account_id, wanted))
        matching = await tx.fetchval("rerun.count_matching", source_id, wanted)
        if not copied:
            raise NoContacts(matching)  # rolls the new campaign back
        await tx.execute("rerun.set_total", campaign_id, copied)
        return Rerun(campaign_id, copied, matching - copied)

    return await db.transaction(copy)
