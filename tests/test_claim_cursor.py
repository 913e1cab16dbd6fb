"""The claim cursor (gateway.store.dialing.ClaimCursor): where new contacts are looked for."""

from __future__ import annotations

import uuid

from conftest import contacts_csv

from gateway.store import dialing
from gateway.store.dialing import FRESH_WINDOW, CampaignRow, Claim, ClaimCursor


def _row(total: int) -> CampaignRow:
    return CampaignRow(id=uuid.uuid4(), account_id=uuid.uuid4(), status="running",
                       max_concurrent_calls=1, retries_per_contact=1, retry_delay_seconds=0,
                       contacts_total=total)


def _claim(seq: int, attempt: int) -> Claim:
    return Claim(attempt_id=uuid.uuid4(), contact_id=uuid.uuid4(), seq=seq, attempt=attempt,
                 phone_number="+12125550100", custom_fields={})


def test_only_new_contacts_move_the_cursor_and_never_back():
    cursor = ClaimCursor(_row(5000), from_seq=10)
    cursor.advance([_claim(900, 2)])  # a retry far ahead: not a new contact
    assert cursor.from_seq == 10
    cursor.advance([_claim(12, 1), _claim(15, 1), _claim(3, 2)])
    assert cursor.from_seq == 16
    cursor.advance([_claim(11, 1)])  # one found behind (after a rescan): no step back
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
    cursor.advance([_claim(3, 1)])
    assert cursor.from_seq is None


async def test_locate_starts_at_the_first_pending_contact(db, api, create_campaign):
    created = (await create_campaign(contacts_csv(30))).json()
    row = await dialing.campaign(db, uuid.UUID(created["id"]))
    cursor = ClaimCursor(row)
    assert await cursor.locate(db) == 0
    await db.execute("testing.set_contact_status", row.id, 0, 12, "completed")
    cursor.rescan()
    assert await cursor.locate(db) == 12
    await db.execute("testing.set_contact_status", row.id, 12, 30, "skipped")
    cursor.rescan()
    assert await cursor.locate(db) == 30  # none left: contacts_total
