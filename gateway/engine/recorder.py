"""The result recorder: attempt results written in batches, one statement per flush.

Calls hand their result to :meth:`Recorder.record` and wait until it is durable. The
recorder flushes whatever has accumulated while the previous flush ran, so a quiet
campaign writes each result at once and a busy one writes hundreds per round trip (the
trio-asyncio hop and the commit are paid once per batch, not per call).

A database outage holds the batch and retries it: no result is lost, and the calls wait
(their slots stay taken, so nothing new is dialed meanwhile). A result whose call was
cancelled while waiting is still written. A batch refused for another reason is written
again one result at a time, so only a result that cannot be written fails (its call
reports it; the orphan sweep then finishes the attempt as interrupted).
"""

from __future__ import annotations

import uuid

import attrs
import trio

from gateway.db import Database, DatabaseUnavailable
from gateway.logs import get_logger
from gateway.metrics import Metrics
from gateway.store import dialing
from gateway.telephony.base import CallResult

log = get_logger(__name__)
MAX_BATCH = 500


@attrs.define(eq=False)
class _Entry:
    attempt_id: uuid.UUID
    result: CallResult
    done: trio.Event = attrs.field(factory=trio.Event)
    status: str | None = None
    error: BaseException | None = None


class Recorder:
    def __init__(self, db: Database, metrics: Metrics | None = None) -> None:
        self._db = db
        self._metrics = Metrics.create() if metrics is None else metrics
        self._pending: list[_Entry] = []
        self._wakeup = trio.Event()
        self._busy = 0.0  # seconds spent in statements, the current one not included
        self._began: float | None = None  # when the current statement began

    def busy_seconds(self) -> float:
        """The time spent writing results so far (trio's clock), the statement running
        now included: how busy dialing is (:mod:`gateway.engine.load`)."""
        now = trio.current_time()
        return self._busy + (now - self._began if self._began is not None else 0.0)

    async def record(self, attempt_id: uuid.UUID, result: CallResult) -> str | None:
        """Write the result (batched); return the contact's new status, None if the attempt
        had been recorded already."""
        entry = _Entry(attempt_id, result)
        self._pending.append(entry)
        self._wakeup.set()
        await entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return entry.status

    async def run(self, *, task_status: trio.TaskStatus[Recorder] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        task_status.started(self)
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._flush(batch)

    async def _flush(self, batch: list[_Entry]) -> None:
        delay = 0.5
        while True:
            try:
                self._began = began = trio.current_time()
                try:
                    statuses = await dialing.record_many(
                        self._db, [(entry.attempt_id, entry.result) for entry in batch])
                finally:
                    self._began, took = None, trio.current_time() - began
                    self._busy += took
                self._metrics.record_seconds.observe(took)
                self._metrics.record_batch.observe(len(batch))
                break
            except DatabaseUnavailable:
                log.warning("recorder.waiting_for_database", results=len(batch),
                            retry_in_seconds=delay)
                await trio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:  # a bad batch must not stall every call
                if len(batch) > 1:  # one bad result must not cost the others theirs
                    log.warning("recorder.batch_failed_writing_one_by_one", results=len(batch),
                                error=repr(exc))
                    for entry in batch:
                        await self._flush([entry])
                    return
                log.error("recorder.write_failed", attempt_id=str(batch[0].attempt_id),
                          exc_info=exc)
                batch[0].error = exc
                batch[0].done.set()
                return
        for entry in batch:
            entry.status = statuses.get(entry.attempt_id)
            entry.done.set()
