"""A running campaign actor, as the supervisor and the actor's calls see it."""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator

import attrs
import trio


@attrs.define(eq=False)
class CampaignHandle:
    """Shared state of one campaign actor.

    ``dialing`` False means: claim nothing new, let in-flight calls finish, then end (or
    go on dialing if it turns True again before then). Only :meth:`stop_dialing` and
    :meth:`resume_dialing` change it, and every change pokes the actor.

    ``ringing`` and ``connected`` are the live phases of the campaign's calls, known only
    here (the database knows a call is live, not how far it got): calls dialed and not yet
    answered, and calls whose agent leg is up. Each call counts itself in and out of them
    (:func:`gateway.engine.call.run_call`); live-metrics snapshots show them.
    """

    campaign_id: uuid.UUID
    account_id: uuid.UUID
    _dialing: bool = True
    in_flight: int = 0
    ringing: int = 0
    connected: int = 0
    failure_reason: str | None = None
    _wakeup: trio.Event = attrs.field(factory=trio.Event)
    _waits: set[trio.CancelScope] = attrs.field(factory=set)

    @property
    def dialing(self) -> bool:
        return self._dialing

    def poke(self) -> None:
        self._wakeup.set()

    def stop_dialing(self) -> None:
        self._dialing = False
        for scope in self._waits:
            scope.cancel()
        self.poke()

    def resume_dialing(self) -> None:
        self._dialing = True
        self.poke()

    def fail(self, reason: str) -> None:
        """Ask the actor to fail the campaign (a call task saw a terminal error); it stops
        waiting for slots at once, so no further batch is dialed first."""
        if self.failure_reason is None:
            self.failure_reason = reason
        for scope in self._waits:
            scope.cancel()
        self.poke()

    async def wait(self, deadline: float = math.inf) -> None:
        """Sleep until poked (or ``deadline``); a poke since the last wait returns at once."""
        wakeup = self._wakeup
        with trio.move_on_at(deadline):
            await wakeup.wait()
        if wakeup is self._wakeup:
            self._wakeup = trio.Event()

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[trio.CancelScope]:
        """A cancel scope that :meth:`stop_dialing` cancels (for waits on the budget)."""
        with trio.CancelScope() as scope:
            if not self._dialing:
                scope.cancel()
            self._waits.add(scope)
            try:
                yield scope
            finally:
                self._waits.discard(scope)
