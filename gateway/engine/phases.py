"""Publish the live phases of this process's calls, so any process can show them.

How many calls of a campaign are ringing and how many are connected to the agent is known
only here, to the campaign actor's handle (the database knows a call is live, not how far
it got). Every ``PUBLISH_SECONDS``, the campaigns whose figures changed since the last
publication are written in one statement (sql/queries/snapshots.sql ``publish_phases``),
and those whose actor has ended are removed; with nothing changed, nothing is written. A
live-metrics snapshot served by any process reads them from there
(:mod:`gateway.engine.snapshots`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

import trio

from gateway.db import Database, DatabaseUnavailable
from gateway.engine.handle import CampaignHandle
from gateway.logs import get_logger

log = get_logger(__name__)
PUBLISH_SECONDS = 0.5  # a quarter of the default SSE tick: a stream is at most this late


async def publish_phases(db: Database, peer_id: uuid.UUID,
                         handles: Callable[[], Iterable[CampaignHandle]], *,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                         ) -> None:
    """Publish until cancelled; an outage is waited out (the figures are sent again)."""
    published: dict[uuid.UUID, tuple[int, int]] = {}
    task_status.started()
    while True:
        await trio.sleep(PUBLISH_SECONDS)
        now = {h.campaign_id: (h.ringing, h.connected) for h in handles()}
        changed = {c: phases for c, phases in now.items() if published.get(c) != phases}
        gone = [c for c in published if c not in now]
        if not changed and not gone:
            continue
        try:
            with trio.move_on_after(PUBLISH_SECONDS * 4):
                await db.execute("snapshots.publish_phases", peer_id, list(changed),
                                 [p[0] for p in changed.values()],
                                 [p[1] for p in changed.values()], gone)
                published = now
        except DatabaseUnavailable:
            log.debug("phases.waiting_for_database")
