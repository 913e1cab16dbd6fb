"""A table with a hard size bound and a lifetime per entry, for state keyed by what peers
send (Call-IDs, branches): however many distinct keys arrive, it holds at most
``max_size`` entries, and none is returned after it expires.

Entries are kept in insertion order; a table's entries have (about) one lifetime, so the
oldest entry is also the first to expire: expired entries are dropped from the front as
new ones arrive, and when the table is full the oldest live one is evicted. Every
operation is O(1) amortised. Time is trio's clock, passed in by the caller.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ExpiringTable(Generic[K, V]):
    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._entries: dict[K, tuple[V, float]] = {}
        self.evicted = 0  # live entries pushed out by the size bound

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: K, value: V, expires_at: float, now: float) -> None:
        self._entries.pop(key, None)  # a refreshed entry moves to the back
        self._entries[key] = (value, expires_at)
        self._expire(now)
        while len(self._entries) > self.max_size:
            del self._entries[next(iter(self._entries))]
            self.evicted += 1

    def get(self, key: K, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        return entry[0]

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key = next(iter(entries))
            if entries[key][1] > now:
                return
            del entries[key]
