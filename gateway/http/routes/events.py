"""``GET /api/v1/campaigns/{id}/events``: live metrics as Server-Sent Events.

A snapshot at once, then one per ``sse.tick_seconds`` from the shared snapshot cell; a
``: heartbeat`` comment every ``sse.heartbeat_seconds``; when the campaign reaches a
terminal status, a last snapshot and ``event: end``, then the stream closes (a campaign
deleted while watched ends with ``event: end`` and status ``deleted``). Every event has an
``id:``. Each stream reads the cell at its own pace, so a slow or vanished client
only ever delays itself.

Event ids are monotonic per campaign, across reconnects, processes and restarts: an id is
the wall-clock millisecond of the event, raised to one above the stream's previous id and
above the client's ``Last-Event-ID`` (so a clock step back never repeats or lowers an id).
A reconnecting client gets the current snapshot at once: ticks it missed are not replayed
(each snapshot holds the whole state, so a stale one is worth nothing).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from quart import Blueprint, Response, make_response, request

from gateway.clock import utcnow
from gateway.engine.snapshots import End, Heartbeat, Snapshot, encode
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


# Above this a client's Last-Event-ID is not one of ours (ids are milliseconds since 1970):
# it is ignored rather than pinning the stream's ids near the int64 limit.
MAX_EVENT_ID = 2**53


def last_event_id(header: str | None) -> int:
    """The client's ``Last-Event-ID`` as a floor for the next id; 0 when absent or not one
    of ours (any text: a header is the client's to send, never a reason to refuse)."""
    text = (header or "").strip()
    if not (0 < len(text) <= 16 and text.isascii() and text.isdigit()):
        return 0
    value = int(text)
    return value if value <= MAX_EVENT_ID else 0


class EventIds:
    """Monotonic ids: the event's wall-clock millisecond, or one above the last id."""

    def __init__(self, floor: int) -> None:
        self.last = floor

    def next(self) -> int:
        self.last = max(self.last + 1, int(utcnow().timestamp() * 1000))
        return self.last


def _event(event_id: int, data: str, kind: str | None = None) -> bytes:
    head = f"event: {kind}\n" if kind else ""
    return f"{head}id: {event_id}\ndata: {data}\n\n".encode()


@bp.get("/campaigns/<uuid:campaign_id>/events")
@raw_response(200, "Server-Sent Events: a snapshot at once, then one per tick, "
              "heartbeat comments, and `event: end` when the campaign is done.",
              "text/event-stream")
@errors(404, *API)
async def campaign_events(campaign_id: uuid.UUID) -> Response:
    await owned_campaign(campaign_id, counts=False)  # 404 for another tenant's campaign
    svc = services()
    snapshots, heartbeat = svc.snapshots, svc.settings.sse.heartbeat_seconds
    ids = EventIds(last_event_id(request.headers.get("Last-Event-ID")))

    async def stream() -> AsyncIterator[bytes]:
        async with snapshots.subscribe(campaign_id, heartbeat) as updates:
            yield f"retry: {RECONNECT_MILLISECONDS}\n".encode()
            async for update in updates:
                match update:
                    case Snapshot(encoded=data):
                        yield _event(ids.next(), data)
                    case Heartbeat():
                        yield b": heartbeat\n\n"
                    case End(status=status):
                        yield _event(ids.next(), encode(
                            {"campaign_id": str(campaign_id), "status": status}), "end")

    response = await make_response(stream(), 200, SSE_HEADERS)
    assert isinstance(response, Response)  # a body iterator makes the app's response class
    response.timeout = None  # Quart's RESPONSE_TIMEOUT would silently end the stream
    return response
