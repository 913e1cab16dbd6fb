"""Messages between the processes on one database: LISTEN on the ``gateway`` channel.

A process that changes a campaign whose account another process dials (a start, pause,
resume or stop sent to it) tells the others with ``NOTIFY gateway, 'campaign <id>'``; one
that releases a lease says ``'lease <account id>'`` so the others look for it at once.
The poll loops are the fallback: a lost message (the listening connection dropped, a
process starting) is caught up within ``engine.scheduler_poll_seconds`` (campaigns) and a
lease renewal period (leases).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import trio

from gateway.db import Database, DatabaseUnavailable, SessionConnection
from gateway.logs import get_logger

log = get_logger(__name__)
CHANNEL = "gateway"
RECONNECT_SECONDS = 1.0  # between tries to open the listening connection


async def listen(db: Database, on_campaign: Callable[[uuid.UUID], None],
                 on_lease: Callable[[uuid.UUID], None], *,
                 task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Deliver the channel's messages until cancelled; reports started at once (the
    first connection may wait for the database)."""
    task_status.started()

    def on_message(payload: str) -> None:
        kind, _, value = payload.partition(" ")
        try:
            target = uuid.UUID(value)
        except ValueError:
            log.debug("control.unknown_message", payload=payload[:100])
            return
        if kind == "campaign":
            on_campaign(target)
        elif kind == "lease":
            on_lease(target)

    while True:
        session: SessionConnection | None = None
        closed = trio.Event()
        try:
            session = await db.connect_session()
            await session.listen(CHANNEL, on_message, closed.set)
            await closed.wait()
            log.warning("control.listener_reconnecting")
        except DatabaseUnavailable:
            pass
        finally:
            if session is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await session.close()
        await trio.sleep(RECONNECT_SECONDS)
