"""Drop cancelled asyncio timers from trio-asyncio's loop.

trio-asyncio keeps every ``call_later`` timer in a heap until its deadline, cancelled or
not (its ``_timer_handle_cancelled`` is a no-op; asyncio's own loop purges them). asyncpg
arms one timer per query (``command_timeout``, 60 s) and one per pool acquire (10 s), and
cancels it a millisecond later, so under full-speed dialing the heap held ~15,000 dead
timers, each with its callback and a copied context: the cyclic collector walked them all
on every full collection, pausing the event loop up to 100 ms
(``python -m tests.bench --only api``).

:func:`sweep_timers` runs beside the loop and, every ``interval`` seconds, rebuilds the
heap without the cancelled timers once they are the majority (the rule asyncio uses).
"""

from __future__ import annotations

import asyncio
import heapq

import trio

SWEEP_INTERVAL_SECONDS = 1.0
_MIN_TIMERS = 100  # below this a sweep is not worth its pass


def sweep(loop: asyncio.AbstractEventLoop) -> int:
    """Remove cancelled timers from ``loop``'s heap now; return how many were removed."""
    timers = getattr(loop, "_timers", None)
    if not isinstance(timers, list) or len(timers) < _MIN_TIMERS:
        return 0
    live = [timer for timer in timers if not timer.cancelled()]
    removed = len(timers) - len(live)
    if removed * 2 < len(timers):
        return 0
    heapq.heapify(live)
    timers[:] = live  # in place: the loop holds this very list
    return removed


async def sweep_timers(interval: float = SWEEP_INTERVAL_SECONDS, *,
                       task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Sweep the current trio-asyncio loop's timers every ``interval`` s until cancelled."""
    loop = asyncio.get_event_loop()
    task_status.started()
    while True:
        await trio.sleep(interval)
        sweep(loop)
