"""``GET /api/v1/campaigns/{id}/events``: live metrics as Server-Sent Events.

A snapshot at once, then one per ``sse.tick_seconds`` from the shared snapshot cell; a
``: heartbeat`` comment every ``sse.heartbeat_seconds``; when the campaign reaches a
terminal status, a last snapshot and ``event: end``, then the stream closes (a campaign
deleted while watched ends with ``event: end`` and status ``deleted``). Every event has an
``id:``. Each stream reads the cell at its own pace, so a slow or vanished client
only ever delays itself.
"""

from __future__ import annotations

import uuid

import trio
from quart import Blueprint, make_response

from gateway.engine.snapshots import DELETED, TERMINAL, encode
from gateway.http.context import services
from gateway.http.openapi import API, errors, raw_response
from gateway.http.routes.campaigns import owned_campaign

bp = Blueprint("events", __name__)
RECONNECT_MILLISECONDS = 2000
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
    "Connection": "keep-alive",
}


def _event(event_id: int, data: str, kind: str | None = None) -> bytes:
    head = f"event: {kind}\n" if kind else ""
    return f"{head}id: {event_id}\ndata: {data}\n\n".encode()


@bp.get("/campaigns/<uuid:campaign_id>/events")
@raw_response(200, "Server-Sent Events: a snapshot at once, then one per tick, "
              "heartbeat comments, and `event: end` when the campaign is done.",
              "text/event-stream")
@errors(404, *API)
async def campaign_events(campaign_id: uuid.UUID):
    await owned_campaign(campaign_id, counts=False)  # 404 for another tenant's campaign
    svc = services()
    snapshots, heartbeat = svc.snapshots, svc.settings.sse.heartbeat_seconds

    async def stream():
        with snapshots.watch(campaign_id) as cell:
            if cell.value is not None:  # another stream watches: its latest value will do
                snapshot, data = cell.value, cell.encoded
            else:
                snapshot = await snapshots.load(campaign_id)
                data = None if snapshot is None else encode(snapshot)
            seen, event_id = cell.version, 1
            status = DELETED if snapshot is None else snapshot["status"]
            yield f"retry: {RECONNECT_MILLISECONDS}\n".encode()
            if data is not None:
                yield _event(event_id, data)
            next_heartbeat = trio.current_time() + heartbeat
            while status not in TERMINAL and status != DELETED:
                if await snapshots.newer(cell, seen, next_heartbeat):
                    seen, snapshot, event_id = cell.version, cell.value, event_id + 1
                    status = snapshot["status"]
                    if status != DELETED:  # a deleted campaign has no snapshot left to show
                        yield _event(event_id, cell.encoded)
                elif snapshots.closing.is_set():
                    return  # shutdown: the client reconnects to the next process
                if trio.current_time() >= next_heartbeat:
                    next_heartbeat = trio.current_time() + heartbeat
                    yield b": heartbeat\n\n"
            yield _event(event_id + 1,
                         encode({"campaign_id": str(campaign_id), "status": status}), "end")

    response = await make_response(stream(), 200, SSE_HEADERS)
    response.timeout = None  # Quart's RESPONSE_TIMEOUT would silently end the stream
    return response
