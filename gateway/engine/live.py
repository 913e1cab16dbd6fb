"""The attempts this process has live, so that its orphans can be told from its calls.

An attempt row is written by a claim, before its call. It is *live* from the moment the
claim's answer reaches the actor until its result is written. An attempt that is open in
the database (no outcome) but not live here is an orphan: a claim whose answer was lost
(the connection dropped after the commit) or a result whose write failed. Every attempt
records the process that dialed it, so every open attempt of this process's older than
the oldest claim still in flight here and not live here is one; the orphan sweep
finishes them.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Iterator
from datetime import datetime

import trio


class LiveAttempts:
    def __init__(self) -> None:
        self.ids: set[uuid.UUID] = set()
        self._claims: dict[int, datetime] = {}
        self._serials = itertools.count()
        self.sweep_wanted = trio.Event()

    @contextlib.contextmanager
    def claiming(self, dialed_at: datetime) -> Iterator[None]:
        """Around a claim whose attempts get ``dialed_at``: until it has returned (and
        its attempts were added), no sweep touches attempts dialed at or after it."""
        serial = next(self._serials)
        self._claims[serial] = dialed_at
        try:
            yield
        finally:
            del self._claims[serial]

    def cutoff(self, older_than: datetime) -> datetime:
        """Open attempts dialed before this instant and not live are orphans."""
        return min([older_than, *self._claims.values()])

    def want_sweep(self) -> None:
        """Something may have left an orphan (a lost claim, a failed write)."""
        self.sweep_wanted.set()
