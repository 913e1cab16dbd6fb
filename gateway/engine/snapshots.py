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

import attrs
import trio

from gateway.clock import utcnow
from gateway.db import Database, DatabaseUnavailable
from gateway.logs import get_logger

log = get_logger(__name__)
TERMINAL = frozenset({"completed", "failed"})
DELETED = "deleted"  # the status published when a watched campaign's row is gone
CONTACT_STATUSES = ("pending", "in_progress", "retry_pending", "completed", "failed", "skipped")
OUTCOMES = ("answered", "busy", "no_answer", "failed", "invalid_number", "interrupted")


def snapshot_from_row(row) -> dict:
    contacts, outcomes = row["contacts"], row["outcomes"]
    live = outcomes.get("live", 0)
    return {
        "campaign_id": str(row["campaign_id"]),
        "status": row["status"],
        "total": row["total"],
        **{status: contacts.get(status, 0) for status in CONTACT_STATUSES},
        "in_flight": live,
        "attempts": sum(outcomes.values()),
        "outcomes": {outcome: outcomes.get(outcome, 0) for outcome in OUTCOMES},
        "max_concurrent_calls": row["max_concurrent_calls"],
        "started_at": _iso(row["started_at"]),
        "completed_at": _iso(row["completed_at"]),
        "updated_at": _iso(utcnow()),
    }


def encode(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"))


def _iso(value) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


@attrs.define(eq=False)
class _Cell:
    value: dict | None = None
    encoded: str = ""  # value as compact JSON, made once per publish for every stream
    version: int = 0
    watchers: int = 0
    changed: trio.Event = attrs.field(factory=trio.Event)


class Snapshots:
    def __init__(self, db: Database, tick_seconds: float) -> None:
        self._db = db
        self._tick = tick_seconds
        self._cells: dict[uuid.UUID, _Cell] = {}
        self.closing = trio.Event()

    async def load(self, campaign_id: uuid.UUID) -> dict | None:
        """A fresh snapshot from the database (None if the campaign does not exist)."""
        row = await self._db.fetchrow("snapshots.snapshot", campaign_id)
        return None if row is None else snapshot_from_row(row)

    def publish(self, campaign_id: uuid.UUID, snapshot: dict) -> None:
        cell = self._cells.get(campaign_id)
        if cell is None:
            return
        cell.value, cell.version = snapshot, cell.version + 1
        cell.encoded = encode(snapshot)
        cell.changed.set()
        cell.changed = trio.Event()

    @contextlib.contextmanager
    def watch(self, campaign_id: uuid.UUID):
        """Register interest: while any stream watches, the actor refreshes the campaign."""
        cell = self._cells.setdefault(campaign_id, _Cell())
        cell.watchers += 1
        try:
            yield cell
        finally:
            cell.watchers -= 1
            if cell.watchers == 0:
                del self._cells[campaign_id]

    async def newer(self, cell: _Cell, seen: int, deadline: float) -> bool:
        """Wait until the cell holds a version after ``seen`` (True) or until ``deadline``
        or shutdown (False: check :attr:`closing`)."""
        if cell.version <= seen and not self.closing.is_set():
            with trio.move_on_at(deadline):
                await cell.changed.wait()
        return cell.version > seen

    def close(self) -> None:
        """Shutdown: every stream wakes and ends."""
        self.closing.set()
        for cell in self._cells.values():
            cell.changed.set()

    async def run(self, *, task_status: trio.TaskStatus[Snapshots] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Every tick, refresh each watched campaign. Runs until cancelled."""
        task_status.started(self)
        next_tick = trio.current_time()
        while True:
            next_tick += self._tick
            for campaign_id in list(self._cells):
                try:
                    snapshot = await self.load(campaign_id)
                except DatabaseUnavailable:
                    log.warning("snapshots.waiting_for_database", campaign_id=str(campaign_id))
                    break
                except Exception as exc:  # metrics must never take the process down
                    log.error("snapshots.refresh_failed", campaign_id=str(campaign_id),
                              exc_info=exc)
                    continue
                self.publish(campaign_id, snapshot or {"campaign_id": str(campaign_id),
                                                       "status": DELETED})
            await trio.sleep_until(max(next_tick, trio.current_time()))


