"""The claim cursor (gateway.store.dialing.ClaimCursor): where new contacts are looked for."""

from __future__ import annotations

import io
import uuid

from conftest import contacts_csv

from gateway.clock import utcnow
from gateway.contacts_csv import ContactsImport
from gateway.ids import uuid7
from gateway.store import accounts, agents, campaigns, dialing, leases, lifecycle, phone_numbers
from gateway.store.dialing import FRESH_WINDOW, CampaignRow, ClaimCursor, LeaseRef


def _row(total: int) -> CampaignRow:
    return CampaignRow(id=uuid.uuid4(), account_id=uuid.uuid4(), status="running",
                       max_concurrent_calls=1, retries_per_contact=1, retry_delay_seconds=0,
                       contacts_total=total, custom_field_names=[], agent_id=uuid.uuid4(),
                       agent_max_concurrent_calls=None)


def test_only_new_contacts_move_the_cursor_and_never_back():
    cursor = ClaimCursor(_row(5000), from_seq=10)
    cursor.advance([])  # only retries claimed (a retry's seq may lie far ahead)
    assert cursor.from_seq == 10
    cursor.advance([12, 15])
    assert cursor.from_seq == 16
    cursor.advance([11])  # one found behind (after a rescan): no step back
    assert cursor.from_seq == 16


def test_empty_windows_move_it_a_window_at_a_time_up_to_the_last():
    total = 2 * FRESH_WINDOW + 10
    cursor = ClaimCursor(_row(total), from_seq=0)
    assert cursor.next_window() and cursor.from_seq == FRESH_WINDOW
    assert cursor.next_window() and cursor.from_seq == 2 * FRESH_WINDOW
    assert not cursor.next_window() and cursor.from_seq == 2 * FRESH_WINDOW  # the last one


def test_a_rescan_is_located_again_before_the_next_claim():
    cursor = ClaimCursor(_row(10), from_seq=7)
    cursor.rescan()
    assert cursor.from_seq is None
    assert not cursor.next_window()  # nothing to move until it is located
    cursor.advance([3])
    assert cursor.from_seq is None


async def test_locate_starts_at_the_first_pending_contact(db, api, create_campaign):
    created = (await create_campaign(contacts_csv(30))).json()
    row = await dialing.campaign(db, uuid.UUID(created["id"]))
    cursor = ClaimCursor(row)
    assert await cursor.locate(db, utcnow()) == 0
    await db.execute("testing.set_contact_status", row.id, 0, 12, "completed")
    cursor.rescan()
    assert await cursor.locate(db, utcnow()) == 12
    await db.execute("testing.set_contact_status", row.id, 12, 30, "skipped")
    cursor.rescan()
    assert await cursor.locate(db, utcnow()) == 30  # none left: contacts_total


async def test_a_claim_names_its_contacts_and_their_fields(db, database_url):
    """A claim (no engine running: the test holds the account's lease) returns each
    contact with the id the API shows and its custom fields named by the CSV header, in
    order; under a stale lease it claims nothing."""
    new = await accounts.create_account(db, name="claims", concurrent_max=5, calls_per_minute=60)
    account = new.account.id
    agent = await agents.create(db, account, name="A", status="active", greeting="",
                                sip_uri=None)
    number = await phone_numbers.create(db, account, number="+14155550100",
                                        outbound_enabled=True, label="")
    principal = await accounts.authenticate(db, new.api_key)
    data = ('city,phone_number,first_name\n"Köln, Mitte",+12125550100,Ann\n'
            "Paris,+12125550101,\n").encode()
    campaign_id = uuid7()
    settings = campaigns.CampaignSettings(
        name="c", agent_id=agent.id, phone_number_id=number.id, max_concurrent_calls=5,
        retries_per_contact=0, retry_delay_seconds=60, scheduled_at=None)
    await campaigns.create(db, campaign_id=campaign_id, account_id=account,
                           api_key_id=principal.api_key_id, settings=settings,
                           contacts=ContactsImport(io.BytesIO(data), campaign_id=campaign_id,
                                                   default_region="US"))
    assert await lifecycle.start(db, account, campaign_id, utcnow())
    shown = await campaigns.contacts_page(db, await campaigns.get(db, account, campaign_id), 0)
    peer = uuid7()
    epochs = await leases.acquire(db, peer, [account], 30)
    row = await dialing.campaign(db, campaign_id)
    assert row.custom_field_names == ["city", "first_name"]
    assert (row.agent_id, row.agent_max_concurrent_calls) == (agent.id, None)
    # Under another epoch (a lease taken since) or another owner, nothing is claimed.
    for stale in (LeaseRef(peer, epochs[account] + 1), LeaseRef(uuid7(), epochs[account])):
        assert (await dialing.claim(db, utcnow(), 5, ClaimCursor(row), stale)).found == 0
    claims = (await dialing.claim(db, utcnow(), 5, ClaimCursor(row),
                                  LeaseRef(peer, epochs[account]))).claims
    assert [c.custom_fields for c in claims] == [{"city": "Köln, Mitte", "first_name": "Ann"},
                                                 {"city": "Paris", "first_name": ""}]
    assert [list(c.custom_fields) for c in claims] == [["city", "first_name"]] * 2
    assert [c.contact_id for c in claims] == [c.id for c in shown.items]
    assert [c.phone_number for c in claims] == ["+12125550100", "+12125550101"]
