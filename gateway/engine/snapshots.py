"""Live metrics: a latest-value cell per campaign, written by one actor, read by SSE streams.

A trio memory channel gives each item to one receiver, so it cannot fan out. Here the
snapshot actor publishes into a cell (value + version + an Event replaced on each publish)
and every stream reads at its own pace: a slow client skips values, it never blocks the
actor, and a thousand subscribers cost one database query per campaign per tick.

The actor refreshes only campaigns somebody watches, every ``sse.tick_seconds``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import attrs
import trio

from gateway.clock import utcnow
from gateway.db import Database, DatabaseUnavailable
from gateway.engine.handle import CampaignHandle
from gateway.logs import get_logger
from gateway.vocabulary import TERMINAL, ContactStatus, Disposition, Outcome

log = get_logger(__name__)
DELETED = "deleted"  # the status published when a watched campaign's row is gone


# The campaign actor's handle of a campaign, if it runs in this process (Supervisor.handle).
Handles = Callable[[uuid.UUID], CampaignHandle | None]


def _no_handles(campaign_id: uuid.UUID) -> CampaignHandle | None:
    return None


def snapshot_from_row(row: Mapping[str, Any], handle: CampaignHandle | None = None) -> dict:
    """The snapshot of a ``snapshots.snapshot`` row. The live phases of the calls
    (``ringing``, ``connected``) come from the campaign's ``handle`` when it runs here,
    else from what the process that dials it published (:mod:`gateway.engine.phases`)."""
    contacts, outcomes = row["contacts"], row["outcomes"]
    live = outcomes.get("live", 0)
    if handle is None:
        # Published up to half a second ago: never more than the live calls counted now
        # (calls that ended since are not ringing or connected any more).
        ringing = min(row["ringing"], live)
        connected = min(row["connected"], live - ringing)
    else:
        ringing, connected = handle.ringing, handle.connected
    return {
        "campaign_id": str(row["campaign_id"]),
        "status": row["status"],
        "total": row["total"],
        **{status: contacts.get(status, 0) for status in ContactStatus},
        "in_flight": live,
        "ringing": ringing,
        "connected": connected,
        "attempts": sum(outcomes.values()),
        "outcomes": {outcome: outcomes.get(outcome, 0) for outcome in Outcome},
        # Contacts due but outside their calling window now.
        "waiting_for_window": row["waiting_for_window"],
        "dispositions": {name: row["dispositions"].get(name, 0) for name in Disposition},
        "max_concurrent_calls": row["max_concurrent_calls"],
        "started_at": _iso(row["started_at"]),
        "completed_at": _iso(row["completed_at"]),
        "updated_at": _iso(utcnow()),
    }


def encode(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


# Watchers of a cell are woken in lanes of this many, one scheduler pass apart: a thousand
# streams woken at once would run as one long batch of sends (~0.1 ms each) during which the
# dial loop's tasks get a single step; lanes let them step between every ~50 sends
# (`python -m tests.bench --only sse`: dialing throughput with and without subscribers).
LANE_SIZE = 50


@attrs.define(eq=False)
class _Cell:
    value: dict | None = None
    encoded: str = ""  # value as compact JSON, made once per publish for every stream
    version: int = 0
    # Lane i: the Event its streams wait on (replaced when it is set) and how many they are.
    lanes: list[trio.Event] = attrs.field(factory=list)
    seated: list[int] = attrs.field(factory=list)


@attrs.frozen(eq=False)
class Watch:
    """One stream's seat at a cell: the cell, and the lane it is woken in."""

    cell: _Cell
    lane: int

    @property
    def value(self) -> dict | None:
        return self.cell.value

    @property
    def encoded(self) -> str:
        return self.cell.encoded

    @property
    def version(self) -> int:
        return self.cell.version


@attrs.frozen
class Snapshot:
    """A new value of the campaign's metrics; ``encoded`` is it as compact JSON (made once
    per tick for every stream)."""

    value: dict
    encoded: str


@attrs.frozen
class Heartbeat:
    """Nothing new for ``sse.heartbeat_seconds``: a sign of life for the client."""


@attrs.frozen
class End:
    """The campaign reached ``status`` (terminal, or DELETED): nothing will follow."""

    status: str


Update = Snapshot | Heartbeat | End


class Snapshots:
    """Live metrics of watched campaigns: one cell per campaign, refreshed every tick
    while anybody subscribes, read by every subscriber at its own pace."""

    def __init__(self, db: Database, tick_seconds: float,
                 heartbeat_seconds: float | None = None, *,
                 handles: Handles = _no_handles) -> None:
        self._db = db
        self._handles = handles
        self._tick = tick_seconds
        # Streams are woken every tick (with or without a new value), which is their clock
        # for heartbeats too, unless heartbeats are due more often than ticks.
        self._timed_waits = heartbeat_seconds is not None and heartbeat_seconds < tick_seconds
        self._cells: dict[uuid.UUID, _Cell] = {}
        self.closing = trio.Event()

    @property
    def subscribers(self) -> int:
        """The streams watching a campaign now (for /metrics)."""
        return sum(sum(cell.seated) for cell in self._cells.values())

    async def load(self, campaign_id: uuid.UUID) -> dict | None:
        """A fresh snapshot from the database (None if the campaign does not exist)."""
        row = await self._db.fetchrow("snapshots.snapshot", campaign_id, utcnow())
        return None if row is None else snapshot_from_row(row, self._handles(campaign_id))

    async def publish(self, campaign_id: uuid.UUID, snapshot: dict | None) -> None:
        """Store a new value (None: no new value, only wake the streams) and wake every
        stream of the campaign, lane by lane."""
        cell = self._cells.get(campaign_id)
        if cell is None:
            return
        if snapshot is not None:
            cell.value, cell.version = snapshot, cell.version + 1
            cell.encoded = encode(snapshot)
        lanes, woken = cell.lanes, 0
        for index in range(len(lanes)):
            if not cell.seated[index]:
                continue
            if woken:
                await trio.lowlevel.checkpoint()  # the previous lane's streams run now
            event, lanes[index] = lanes[index], trio.Event()
            event.set()
            woken += 1

    @contextlib.contextmanager
    def watch(self, campaign_id: uuid.UUID) -> Iterator[Watch]:
        """Register interest: while any stream watches, the actor refreshes the campaign."""
        cell = self._cells.setdefault(campaign_id, _Cell())
        # The first lane with a free seat (one a stream that ended left, or a new lane), so
        # streams that come and go do not grow the lanes a tick walks.
        lane = next((i for i, n in enumerate(cell.seated) if n < LANE_SIZE), len(cell.seated))
        if lane == len(cell.seated):
            cell.lanes.append(trio.Event())
            cell.seated.append(0)
        cell.seated[lane] += 1
        try:
            yield Watch(cell, lane)
        finally:
            cell.seated[lane] -= 1
            if not any(cell.seated):
                del self._cells[campaign_id]

    async def newer(self, watch: Watch, seen: int, deadline: float) -> bool:
        """Wait for the next wake-up of the stream's lane (every tick, on a new value, at
        shutdown; or at ``deadline`` when heartbeats are due more often than ticks); True
        if the cell holds a version after ``seen``. On False, check :attr:`closing`."""
        cell = watch.cell
        if cell.version <= seen and not self.closing.is_set():
            if self._timed_waits:
                with trio.move_on_at(deadline):
                    await cell.lanes[watch.lane].wait()
            else:
                await cell.lanes[watch.lane].wait()
        return cell.version > seen

    @contextlib.asynccontextmanager
    async def subscribe(self, campaign_id: uuid.UUID, heartbeat_seconds: float
                        ) -> AsyncIterator[AsyncIterator[Update]]:
        """Watch a campaign: ``async with snapshots.subscribe(id, hb) as updates: async for
        update in updates`` yields a :class:`Snapshot` at once (unless the campaign is gone),
        one per new value, a :class:`Heartbeat` when ``heartbeat_seconds`` pass without one,
        and finally :class:`End` once the campaign is terminal or deleted (its last snapshot
        first). At shutdown (:meth:`close`) the updates stop without an End: the client
        reconnects to the next process."""
        with self.watch(campaign_id) as watch:
            updates = self._updates(campaign_id, watch, heartbeat_seconds)
            try:
                yield updates
            finally:
                await updates.aclose()

    async def _updates(self, campaign_id: uuid.UUID, watch: Watch, heartbeat_seconds: float
                       ) -> AsyncGenerator[Update, None]:
        if watch.value is not None:  # another subscriber watches: its latest value will do
            snapshot: dict | None = watch.value
            encoded = watch.encoded
        else:
            snapshot = await self.load(campaign_id)
            encoded = "" if snapshot is None else encode(snapshot)
        seen = watch.version
        status = DELETED if snapshot is None else snapshot["status"]
        if snapshot is not None:
            yield Snapshot(snapshot, encoded)
        next_heartbeat = trio.current_time() + heartbeat_seconds
        while status not in TERMINAL and status != DELETED:
            if await self.newer(watch, seen, next_heartbeat):
                seen, snapshot = watch.version, watch.value
                assert snapshot is not None  # a version after 0 has a value
                status = snapshot["status"]
                if status != DELETED:  # a deleted campaign has no snapshot left to show
                    yield Snapshot(snapshot, watch.encoded)
            elif self.closing.is_set():
                return
            if trio.current_time() >= next_heartbeat:
                next_heartbeat = trio.current_time() + heartbeat_seconds
                yield Heartbeat()
        yield End(status)

    def close(self) -> None:
        """Shutdown: every stream wakes and ends."""
        self.closing.set()
        for cell in self._cells.values():
            for event in cell.lanes:
                event.set()

    async def run(self, *, task_status: trio.TaskStatus[Snapshots] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Every tick, refresh each watched campaign and wake its streams. Runs until
        cancelled."""
        task_status.started(self)
        next_tick = trio.current_time()
        while True:
            next_tick += self._tick
            reachable = True
            for campaign_id in list(self._cells):
                snapshot = None
                if reachable:
                    try:
                        snapshot = await self.load(campaign_id) or {
                            "campaign_id": str(campaign_id), "status": DELETED}
                    except DatabaseUnavailable:
                        log.warning("snapshots.waiting_for_database",
                                    campaign_id=str(campaign_id))
                        reachable = False  # the others wait for the next tick too
                    except Exception as exc:  # metrics must never take the process down
                        log.error("snapshots.refresh_failed", campaign_id=str(campaign_id),
                                  exc_info=exc)
                # Woken either way: streams keep their heartbeats while values are stale.
                await self.publish(campaign_id, snapshot)
            await trio.sleep_until(max(next_tick, trio.current_time()))
