"""Whether dialing runs flat out: the signal background work (webhook delivery) yields to.

Dialing at full speed is a pipeline of round trips between this process and PostgreSQL:
it leaves the CPUs partly idle (two thirds busy on two cores), and anything that runs in
that idle time, even at the lowest CPU priority, delays the pipeline's wake-ups and costs
dialing far more than its own CPU (measured: delivering 150 events a second took 15% of
the dialing rate; a busy loop in the idle scheduling class, a quarter). So background work
does not run beside it: it asks :class:`DialingLoad` and waits while dialing is saturated.

Saturated means the result recorder, which writes every call's result, spent at least
``SATURATED_SHARE`` of the last ``WINDOW_SECONDS`` in its statements: results arrive as
fast as the database takes them. A real campaign's calls ring and talk for seconds each,
and its recorder is busy a few percent of the time; the state changes only on a flat-out
burst (a campaign of instant calls, a carrier failing every call at once).
"""

from __future__ import annotations

from typing import Protocol

import attrs
import trio

WINDOW_SECONDS = 0.25
SATURATED_SHARE = 0.5


class BusyClock(Protocol):
    def busy_seconds(self) -> float:
        """The time spent working so far (trio's clock), the current piece of work included."""
        ...


@attrs.define(eq=False)
class DialingLoad:
    """Saturated or not, with a way to wait for the change. The state is set by
    :func:`watch` in the dialing process, or by the parent's messages in the delivery
    worker's."""

    saturated: bool = False
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def set(self, saturated: bool) -> None:
        if saturated != self.saturated:
            self.saturated = saturated
            self._changed.set()
            self._changed = trio.Event()

    async def changed(self) -> None:
        """Return at the next change of state."""
        await self._changed.wait()


async def watch(load: DialingLoad, recorder: BusyClock, *,
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Keep ``load`` up to date from the recorder's busy time, every ``WINDOW_SECONDS``."""
    task_status.started()
    before, at = recorder.busy_seconds(), trio.current_time()
    while True:
        await trio.sleep(WINDOW_SECONDS)
        busy, now = recorder.busy_seconds(), trio.current_time()
        load.set(busy - before >= SATURATED_SHARE * (now - at))
        before, at = busy, now
