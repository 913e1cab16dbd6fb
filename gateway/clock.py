"""Wall-clock time derived from trio's clock.

Timestamps written to the database (dialed_at, next_attempt_at...) come from here, not from
``datetime.now()``: they advance with ``trio.current_time()``, so a test that drives trio's
clock (MockClock) drives the timestamps too, and "sleep until this retry is due" is one
conversion away from ``trio.sleep_until``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import trio

_ANCHOR: trio.lowlevel.RunVar[tuple[float, float]] = trio.lowlevel.RunVar("wall_anchor")


def _anchor() -> tuple[float, float]:
    try:
        return _ANCHOR.get()
    except LookupError:
        anchor = (trio.current_time(), time.time())
        _ANCHOR.set(anchor)
        return anchor


def utcnow() -> datetime:
    """The current UTC time, as trio's clock sees it."""
    trio_base, wall_base = _anchor()
    seconds = wall_base + (trio.current_time() - trio_base)
    return datetime.fromtimestamp(seconds, tz=UTC)


def trio_deadline(when: datetime) -> float:
    """The ``trio.current_time()`` value at which wall time ``when`` arrives."""
    return trio.current_time() + (when - utcnow()).total_seconds()


def after(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)
