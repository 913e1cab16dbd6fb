"""The orphan sweep: open attempts with no call behind them, finished while the process runs.

An attempt is an orphan when its claim committed but the answer never reached the actor
(the connection dropped mid-statement), when its result could not be written, or when the
process that dialed it is gone (killed, or cut off from the database: it ended its calls
before its leases could be taken). Its contact would stay ``in_progress`` and its campaign
unfinished. The sweep runs every ``orphan_sweep_seconds``, sooner after a failure of this
process's, and when an account is taken over; it finishes as ``interrupted`` this
process's open attempts that are not live here (:class:`~gateway.engine.live.LiveAttempts`)
and older than that, and the open attempts of processes that are gone (those of live
processes are theirs), deciding their contacts as a takeover does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import trio

from gateway.clock import utcnow
from gateway.db import DatabaseUnavailable
from gateway.engine.deps import EngineDeps
from gateway.logs import get_logger
from gateway.store import dialing

log = get_logger(__name__)


async def sweep_once(deps: EngineDeps, age_seconds: float) -> list[uuid.UUID]:
    """One sweep; the campaigns of the contacts it decided (one entry per contact)."""
    now = utcnow()
    cutoff = deps.live.cutoff(now - timedelta(seconds=age_seconds))
    campaigns = await dialing.sweep_orphans(deps.db, now, cutoff, set(deps.live.ids),
                                            deps.fence.peer_id)
    if campaigns:
        log.warning("engine.orphans_recovered", contacts=len(campaigns),
                    campaigns=sorted({str(c) for c in campaigns}))
    return campaigns


async def run_sweeps(deps: EngineDeps, on_swept: Callable[[set[uuid.UUID]], None], *,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Sweep every ``orphan_sweep_seconds``, and that long after a failure that may have
    left an orphan (an orphan is not touched before it is that old). Runs until
    cancelled; an outage is waited out."""
    period = deps.settings.orphan_sweep_seconds
    task_status.started()
    due = trio.current_time() + period
    while True:
        wanted = deps.live.sweep_wanted
        with trio.move_on_at(due):
            await wanted.wait()
        if wanted.is_set():
            deps.live.sweep_wanted = trio.Event()
            due = min(due, trio.current_time() + period)
            continue
        try:
            swept = await sweep_once(deps, period)
        except DatabaseUnavailable:
            log.warning("engine.sweep_waiting_for_database")
        except Exception as exc:  # logged, tried again next period: never fatal
            log.error("engine.sweep_failed", exc_info=exc)
        else:
            if swept:
                on_swept(set(swept))
        due = trio.current_time() + period
