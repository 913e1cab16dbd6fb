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
