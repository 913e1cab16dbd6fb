"""A claim reads only the contacts it claims, whatever PostgreSQL's statistics say.

The regression: contacts analyzed before a campaign was imported (autovacuum does this
after any large import) made the planner estimate the new campaign at one row, and the
claim's update then read the whole campaign once per claim, for a nested loop over the
contacts claimed: 1.7 s a claim at 100k contacts, dialing at 83 calls/s instead of ~6,000.
The test makes that situation (a campaign imported after ANALYZE) and reads the claim's
plan as executed: no scan of contacts may return more rows than a claim's few.
"""

from __future__ import annotations

import io
import json
import uuid

from conftest import contacts_csv

from gateway.clock import utcnow
from gateway.contacts_csv import ContactsImport
from gateway.ids import uuid7
from gateway.sql import query
from gateway.store import accounts, agents, campaigns, dialing, leases, lifecycle, phone_numbers
from gateway.store.dialing import FRESH_WINDOW, ClaimCursor

CONTACTS = 3_000
LIMIT = 50


def _scans_of_contacts(plan: dict) -> list[tuple[str, int]]:
    """(node type, rows returned over all its loops) of every scan of contacts."""
    found = []
    if plan.get("Relation Name") == "contacts" and "Scan" in plan["Node Type"]:
        found.append((plan["Node Type"], plan["Actual Rows"] * plan["Actual Loops"]))
    for child in plan.get("Plans", []):
        found += _scans_of_contacts(child)
    return found


async def _campaign(db, account, principal, agent, number, name: str) -> uuid.UUID:
    campaign_id = uuid7()
    settings = campaigns.CampaignSettings(
        name=name, agent_id=agent, phone_number_id=number, max_concurrent_calls=100,
        retries_per_contact=0, retry_delay_seconds=60, scheduled_at=None)
    data = contacts_csv(CONTACTS)
    await campaigns.create(db, campaign_id=campaign_id, account_id=account,
                           api_key_id=principal.api_key_id, settings=settings,
                           contacts=ContactsImport(io.BytesIO(data), campaign_id=campaign_id,
                                                   default_region="US"))
    return campaign_id


async def test_a_claim_after_analyze_reads_only_the_contacts_it_claims(db, raw):
    new = await accounts.create_account(db, name="plan", concurrent_max=100,
                                        calls_per_minute=10_000)
    account = new.account.id
    principal = await accounts.authenticate(db, new.api_key)
    agent = (await agents.create(db, account, name="A", status="active", greeting="",
                                 sip_uri=None)).id
    number = (await phone_numbers.create(db, account, number="+14155550100",
                                         outbound_enabled=True, label="")).id
    await _campaign(db, account, principal, agent, number, "analyzed")
    await raw.execute("ANALYZE contacts")  # what autovacuum does after an import
    campaign_id = await _campaign(db, account, principal, agent, number, "new")
    assert await lifecycle.start(db, account, campaign_id, utcnow())
    peer = uuid7()
    epoch = (await leases.acquire(db, peer, [account], 30))[account]
    from_seq = await ClaimCursor(await dialing.campaign(db, campaign_id)).locate(db, utcnow())

    explain = "EXPLAIN (ANALYZE, FORMAT JSON) " + query("dialing.claim")
    await raw.execute("BEGIN")  # the claim runs for its plan only: rolled back
    try:
        text = await raw.fetchval(explain, campaign_id, utcnow(), LIMIT, from_seq,
                                  FRESH_WINDOW, peer, epoch)
    finally:
        await raw.execute("ROLLBACK")
    plan = json.loads(text)[0]["Plan"]
    assert plan["Actual Rows"] == LIMIT  # a real claim: 50 contacts claimed
    scans = _scans_of_contacts(plan)
    assert scans, plan
    # The window's scan reads the claimed contacts (and the update looks each one up);
    # reading the campaign whole shows as one scan of CONTACTS rows.
    assert max(rows for _, rows in scans) <= 2 * LIMIT, scans
