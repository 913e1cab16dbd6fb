"""Account leases: which accounts this process dials, among the processes on one database.

Every process registers itself in ``gateway_peers`` and, every ``lease_seconds / 5``,
renews its row and its leases in one statement (sql/queries/leases.sql). Each look also
reads which accounts need a dialer (a campaign running, or scheduled and due) and how many
processes are live, and evens them out: a process takes free leases (released, or expired
because their owner is gone) up to its share, ``ceil(accounts / processes)``, and hands
over what it holds beyond it once another process can take it. A hand-over never cuts a
call: the account stops dialing here, its live calls end, then its lease is released
(:class:`LeaseListener` does the middle part).

Fencing: a lease is good until ``expires_at``, which the database sets to its ``now()`` +
``lease_seconds`` at each renewal. The database's ``now()`` is never earlier than when
this process sent the statement, so ``sent + lease_seconds`` (local, monotonic) is a time
before which the lease cannot have expired. If no renewal has succeeded by
``sent + FENCE_FRACTION * lease_seconds``, every lease is given up here: the listener
hangs up the calls at once, leaving the rest of the lease (a third) for them to end
before another process can take the account. The claim statement refuses an expired
lease or another epoch, so not even a claim already sent can dial under a lost lease.
"""

from __future__ import annotations

import math
import os
import random
import socket
import typing
import uuid

import attrs
import trio

from gateway.clock import utcnow
from gateway.db import Database, DatabaseUnavailable
from gateway.ids import uuid7
from gateway.logs import get_logger
from gateway.store import leases
from gateway.store.dialing import LeaseRef

log = get_logger(__name__)
RENEWALS_PER_LEASE = 5  # a renewal every lease_seconds / 5
FENCE_FRACTION = 2 / 3  # give everything up this far into a lease not renewed
DEAD_PEER_SECONDS = 3600.0  # rows of processes gone this long are deleted


class LeaseListener(typing.Protocol):
    """What the supervisor does when this process's leases change."""

    def accounts_acquired(self, account_ids: set[uuid.UUID]) -> None:
        """Now held: recover what their previous owners left, then dial them."""

    def accounts_lost(self, account_ids: set[uuid.UUID]) -> None:
        """No longer held (not renewed in time): hang their calls up now."""

    def hand_over(self, account_ids: set[uuid.UUID]) -> None:
        """Stop dialing them; once their calls have ended, :meth:`Leases.release` them."""

    def busy(self, account_id: uuid.UUID) -> bool:
        """The account still has campaign actors here (its lease is kept meanwhile)."""


@attrs.define
class Fence:
    """The leases this process holds now (account → epoch), which every claim is made
    under, and the process's id in ``gateway_peers`` (every attempt records it)."""

    peer_id: uuid.UUID = attrs.field(factory=uuid7)
    epochs: dict[uuid.UUID, int] = attrs.field(factory=dict)

    def lease(self, account_id: uuid.UUID) -> LeaseRef | None:
        """The lease a claim for the account is made under (None: not held here)."""
        epoch = self.epochs.get(account_id)
        return None if epoch is None else LeaseRef(self.peer_id, epoch)


def default_peer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leases:
    def __init__(self, db: Database, fence: Fence, lease_seconds: float,
                 listener: LeaseListener, *, name: str | None = None) -> None:
        self.peer_id = fence.peer_id
        self.name = name or default_peer_name()
        self._db, self._seconds, self._listener = db, lease_seconds, listener
        self._held = fence.epochs  # shared with the claims: a change fences them at once
        self._handing_over: set[uuid.UUID] = set()
        self._stopping = False
        self._renewed_at = -math.inf  # trio time when the last good renewal was sent
        self._renewed = trio.Event()
        self._wakeup = trio.Event()

    @property
    def period(self) -> float:
        return self._seconds / RENEWALS_PER_LEASE

    def holds(self, account_id: uuid.UUID) -> bool:
        return account_id in self._held and account_id not in self._handing_over

    @property
    def held(self) -> set[uuid.UUID]:
        """The accounts held and dialed here (not those being handed over)."""
        return set(self._held) - self._handing_over

    def wake(self) -> None:
        """Look now (a campaign started, a lease was released elsewhere)."""
        self._wakeup.set()

    def stop_taking(self) -> None:
        """Shutdown: take no account and hand none over; what is held is released as its
        calls end (:meth:`release`), and the rest by :meth:`retire`."""
        self._stopping = True
        self.wake()

    async def run(self, *, task_status: trio.TaskStatus[Leases] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Renew, even out and fence until cancelled. Reports started once this process
        is registered (waiting for the database as long as it takes)."""
        delay = 0.5
        while not await self._look():
            await trio.sleep(delay)
            delay = min(delay * 2, self.period)
        task_status.started(self)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._fence)
            while True:
                with trio.move_on_after(self.period):
                    await self._wakeup.wait()
                self._wakeup = trio.Event()
                await self._look()

    async def release(self, account_ids: set[uuid.UUID]) -> None:
        """The accounts' calls here have ended: give their leases up, so another process
        takes them at once (should the database not answer, they expire)."""
        account_ids = account_ids & set(self._held)
        if not account_ids:
            return
        for account_id in account_ids:  # not renewed from now on, whatever happens below
            del self._held[account_id]
            self._handing_over.discard(account_id)
        try:
            with trio.move_on_after(self.period):
                await leases.release(self._db, self.peer_id, sorted(account_ids))
        except DatabaseUnavailable:
            pass
        log.info("lease.released", accounts=sorted(str(a) for a in account_ids))

    async def retire(self) -> None:
        """A clean stop, once every call has ended: release everything, leave the list of
        processes. Bounded: what the database does not take in time expires."""
        held = sorted(str(a) for a in self._held)
        self._held.clear()
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await leases.release(self._db, self.peer_id, None)
                if held:  # the ones not released already as their calls ended
                    log.info("lease.released", accounts=held)
                await leases.retire(self._db, self.peer_id)
            except DatabaseUnavailable:
                log.warning("lease.retire_failed", message="the database did not answer: "
                            "this process's leases expire in engine.lease_seconds")

    # -- the look ------------------------------------------------------------------------

    async def _look(self) -> bool:
        """Renew, then even out. False when the renewal failed."""
        sent = trio.current_time()
        renewed: dict[uuid.UUID, int] | None = None
        try:
            # On a connection that drops its packets a statement hangs: never past the
            # next look (the fence does not wait for it either).
            with trio.move_on_after(self.period):
                renewed = await leases.renew(self._db, self.peer_id, self.name, self._seconds,
                                             dict(self._held), stopping=self._stopping)
        except DatabaseUnavailable:
            pass
        if renewed is None:
            log.warning("lease.renewal_failed", accounts=len(self._held))
            return False
        lost = {a for a, epoch in self._held.items() if renewed.get(a) != epoch}
        if lost:
            self._lose(lost, "the lease expired or was taken before it could be renewed")
        self._renewed_at = sent
        self._renewed.set()
        self._renewed = trio.Event()
        if not self._stopping:
            try:
                await self._even_out()
            except DatabaseUnavailable:
                log.warning("lease.waiting_for_database")
        return True

    async def _even_out(self) -> None:
        demand, peers = await leases.demand(self._db, utcnow())
        wanted = {d.account_id for d in demand}
        for account_id in list(self._held):
            if account_id not in wanted and not self._listener.busy(account_id):
                await self.release({account_id})  # nothing left to dial there
        share = math.ceil(len(wanted) / max(peers, 1))
        mine = [a for a in self._held if a in wanted and a not in self._handing_over]
        free = [d.account_id for d in demand if not d.owned]
        if len(mine) < share and free:
            random.shuffle(free)  # processes looking at once mostly pick different ones
            took = await leases.acquire(self._db, self.peer_id, free[:share - len(mine)],
                                        self._seconds)
            if took:
                self._held.update(took)
                log.info("lease.acquired", accounts=sorted(str(a) for a in took),
                         epochs=sorted(took.values()))
                self._listener.accounts_acquired(set(took))
        elif len(mine) > share and not free:
            # Beyond the share while every wanted account has a dialer: another process
            # (one that just started) is short of its share, and takes these once their
            # calls here have ended.
            excess = set(sorted(mine)[share:])
            self._handing_over |= excess
            log.info("lease.handing_over", accounts=sorted(str(a) for a in excess))
            self._listener.hand_over(excess)
        if random.random() < 0.01:  # now and then, by whichever process
            await leases.forget_dead(self._db, DEAD_PEER_SECONDS)

    def _lose(self, account_ids: set[uuid.UUID], why: str) -> None:
        for account_id in account_ids:
            self._held.pop(account_id, None)
            self._handing_over.discard(account_id)
        log.error("lease.lost", accounts=sorted(str(a) for a in account_ids), reason=why)
        self._listener.accounts_lost(account_ids)

    async def _fence(self) -> None:
        """Give every lease up when no renewal has succeeded for FENCE_FRACTION of a lease."""
        while True:
            deadline = self._renewed_at + FENCE_FRACTION * self._seconds
            renewed = self._renewed
            with trio.move_on_at(deadline):
                await renewed.wait()
            if not renewed.is_set() and self._held:
                self._lose(set(self._held), "no renewal reached the database in time: "
                           "calls are hung up before another process can take the accounts")
            if not renewed.is_set():
                await renewed.wait()
