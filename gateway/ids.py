"""Time-ordered UUIDs (the UUIDv7 layout of RFC 9562).

Campaign ids lead every index on contacts and attempts. Random (v4) ids put each new
campaign's hundred thousand index entries at a random place among the older campaigns';
time-ordered ids put them at the right edge of those indexes, where inserts are cheapest
and the pages stay hot.
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7_fields() -> tuple[int, int]:
    """(the 64 high bits, the 64 low bits) of a fresh UUIDv7: 48 bits of Unix milliseconds,
    version 7, 12 random bits | variant 10, 62 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 used
    high = (millis << 16) | 0x7000 | (rand >> 68)
    low = (0b10 << 62) | (rand & ((1 << 62) - 1))
    return high, low


def uuid7() -> uuid.UUID:
    high, low = uuid7_fields()
    return uuid.UUID(int=(high << 64) | low)


def contact_id_prefix() -> uuid.UUID:
    """The ids of one import's contacts: a fresh UUIDv7 whose last 32 random bits are left
    zero for the contact's seq (a counter, as RFC 9562 allows). The database stores the
    prefix once per campaign and computes each contact's id from it (``contact_id()``);
    two imports in the same millisecond share a prefix with probability 2^-42."""
    high, low = uuid7_fields()
    return uuid.UUID(int=(high << 64) | (low & ~0xFFFF_FFFF))
