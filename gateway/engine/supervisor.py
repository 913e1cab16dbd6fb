"""The supervisor: one actor per running campaign of the accounts this process holds.

It owns actor lifetimes. API handlers change rows, then :meth:`Supervisor.notify` it; the
supervisor reads the campaign's status from PostgreSQL and starts, resumes or winds down
its actor accordingly, or, when another process dials the campaign's account, tells that
one (:mod:`gateway.engine.control`). A poll loop starts scheduled campaigns when their
time comes (and the budget allows), adopts running campaigns that have no actor (a lost
message, a crashed actor) and re-reads account caps, and the caps of the running
campaigns' agents, so an operator's or an API client's change applies without a restart.

Which accounts it dials is the lease actor's (:mod:`gateway.engine.leases`) to say; the
supervisor is its :class:`~gateway.engine.leases.LeaseListener`. An account taken over
first has the open attempts of processes that are gone finished (``interrupted``, retried
within the limit), then its rate window rebuilt from the dials of its last 60 s, then its
running campaigns started. An account lost (a renewal that did not reach the database in
time) has its actors cancelled at once: calls hang up before another process can take it.
An account handed over stops dialing; its lease is released once its calls have ended.

Two nurseries: one for the service tasks (the lease actor, the control listener, the
poll loop, the inbox, the orphan sweep, the publication of the calls' live phases
(:mod:`gateway.engine.phases`)), and nested in it one for the campaign actors.
:meth:`Supervisor.drain` (shutdown) tells every actor to dial nothing new and gives the
actors' nursery a deadline, the grace period: the actors end as their calls end (each
account's lease released as its last call ends, so another process takes it over), and
the calls still live at the deadline are cancelled (recorded as interrupted). The service
tasks are cancelled after the last actor has ended, so the leases are renewed until then.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import trio

from gateway.db import DatabaseUnavailable
from gateway.engine import control
from gateway.engine.campaign import run_campaign
from gateway.engine.caps import refresh_agent_caps, refresh_caps, start_due_campaigns
from gateway.engine.deps import EngineDeps
from gateway.engine.handle import CampaignHandle
from gateway.engine.leases import Leases
from gateway.engine.orphans import run_sweeps, sweep_once
from gateway.engine.phases import publish_phases
from gateway.logs import get_logger
from gateway.store import dialing, leases
from gateway.vocabulary import CampaignStatus

log = get_logger(__name__)
T = TypeVar("T")
INBOX_SIZE = 10_000
CRASH_RESTART_SECONDS = 1.0


@attrs.frozen
class _Look:
    """A message for the inbox: look at a campaign. ``here``: the change was made by this
    process (if another one dials the account, tell it)."""

    campaign_id: uuid.UUID
    here: bool


class Supervisor:
    def __init__(self, deps: EngineDeps) -> None:
        self._deps = deps
        self._handles: dict[uuid.UUID, CampaignHandle] = {}
        self._scopes: dict[uuid.UUID, set[trio.CancelScope]] = {}  # each account's actors
        self._send, self._inbox = trio.open_memory_channel[_Look](INBOX_SIZE)
        self._services: trio.Nursery | None = None
        self._actors: trio.Nursery | None = None
        self._draining = False
        self._drain_requested = trio.Event()
        self._drain_deadline = math.inf  # trio time: the actors' nursery's, once draining
        self._stopped = trio.Event()  # set when run has ended
        self._waiting_for_budget: set[uuid.UUID] = set()
        self.leases = Leases(deps.db, deps.fence, deps.settings.lease_seconds, self,
                             name=deps.peer_name)

    # -- the API side --------------------------------------------------------------------

    def notify(self, campaign_id: uuid.UUID) -> None:
        """A campaign's row changed (here): look at it. Never blocks; a message dropped
        because the inbox is full is caught up by the poll loop."""
        self._post(_Look(campaign_id, here=True))

    def handle(self, campaign_id: uuid.UUID) -> CampaignHandle | None:
        return self._handles.get(campaign_id)

    def live_calls(self) -> dict[uuid.UUID, int]:
        """Calls in flight here, by account (for /metrics): one pass over the actors."""
        live: dict[uuid.UUID, int] = {}
        for handle in self._handles.values():
            live[handle.account_id] = live.get(handle.account_id, 0) + handle.in_flight
        return live

    def running_campaigns(self) -> dict[uuid.UUID, int]:
        """Campaign actors here, by account (for /metrics)."""
        running: dict[uuid.UUID, int] = {}
        for handle in self._handles.values():
            running[handle.account_id] = running.get(handle.account_id, 0) + 1
        return running

    async def drain(self, grace_seconds: float) -> None:
        """Shutdown: dial nothing new, give in-flight calls ``grace_seconds`` to end, then
        cancel the rest (recorded as interrupted). Returns once every actor has ended and
        the leases are released. Campaign statuses are left as they are, so another
        process (or the next start) resumes them."""
        self._draining = True
        self.leases.stop_taking()
        for handle in list(self._handles.values()):
            handle.stop_dialing()
        self._release_idle(self.leases.held)  # nothing to wait for: another may take them
        self._drain_deadline = trio.current_time() + grace_seconds
        self._drain_requested.set()
        await self._stopped.wait()

    # -- the lease listener --------------------------------------------------------------

    def accounts_acquired(self, account_ids: set[uuid.UUID]) -> None:
        if self._services is not None:
            self._services.start_soon(self._take_over, account_ids)

    def accounts_lost(self, account_ids: set[uuid.UUID]) -> None:
        for account_id in account_ids:
            for scope in self._scopes.get(account_id, ()):
                scope.cancel()  # calls hang up now, recorded as interrupted

    def hand_over(self, account_ids: set[uuid.UUID]) -> None:
        for handle in list(self._handles.values()):
            if handle.account_id in account_ids:
                handle.stop_dialing()
        self._release_idle(account_ids)

    def _release_idle(self, account_ids: set[uuid.UUID]) -> None:
        """Release those of the accounts that have no actor here (the others are released
        as their last actor ends: :meth:`_account_idle`)."""
        idle = {a for a in account_ids if not self.busy(a)}
        if idle and self._services is not None:
            self._services.start_soon(self.leases.release, idle)

    def busy(self, account_id: uuid.UUID) -> bool:
        return bool(self._scopes.get(account_id))

    # -- the actor -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Dial the accounts this process holds until drained (or cancelled). Reports
        started once this process is registered among the database's processes."""
        try:
            async with trio.open_nursery() as services:
                self._services = services
                await services.start(self.leases.run)
                await services.start(control.listen, self._deps.db, self._on_campaign_message,
                                     self._on_lease_message)
                async with trio.open_nursery() as actors:
                    self._actors = actors
                    services.start_soon(self._poll_loop)
                    services.start_soon(self._read_inbox)
                    services.start_soon(publish_phases, self._deps.db, self._deps.fence.peer_id,
                                        self._handles.values)
                    await services.start(run_sweeps, self._deps, self._poke_campaigns)
                    task_status.started(self)
                    await self._drain_requested.wait()
                    # Leaving the block waits for the actors, which end as their calls
                    # end (drain stopped their dialing), but not past this deadline.
                    actors.cancel_scope.deadline = self._drain_deadline
                self._actors = None
                services.cancel_scope.cancel()  # the last actor has ended: nothing left to serve
        finally:
            self._actors = self._services = None
            await self.leases.retire()
            self._stopped.set()

    def _post(self, look: _Look) -> None:
        try:
            self._send.send_nowait(look)
        except trio.WouldBlock:
            log.warning("supervisor.inbox_full", campaign_id=str(look.campaign_id))

    def _on_campaign_message(self, campaign_id: uuid.UUID) -> None:
        self._post(_Look(campaign_id, here=False))

    def _on_lease_message(self, _account_id: uuid.UUID) -> None:
        if not self._draining:
            self.leases.wake()  # released elsewhere: maybe this process's to take

    async def _take_over(self, account_ids: set[uuid.UUID]) -> None:
        """Newly held accounts: finish what gone processes left open (before any dial, so
        their contacts are retried and the caps see only live calls), then dial them."""
        swept = await _until_reachable(sweep_once, self._deps,
                                       self._deps.settings.orphan_sweep_seconds)
        if swept:
            log.warning("supervisor.recovered_interrupted_calls", attempts=len(swept))
        held = [a for a in account_ids if self.leases.holds(a)]
        for account_id in held:
            self._deps.budget.forget_account(account_id)  # a fresh rate window, read below
        for campaign_id, _ in await _until_reachable(dialing.running, self._deps.db, held):
            self._post(_Look(campaign_id, here=False))

    def _poke_campaigns(self, campaign_ids: set[uuid.UUID]) -> None:
        for campaign_id in campaign_ids:
            if (handle := self._handles.get(campaign_id)) is not None:
                handle.poke()

    async def _read_inbox(self) -> None:
        async for look in self._inbox:
            try:
                await self._reconcile(look)
            except DatabaseUnavailable:
                log.warning("supervisor.waiting_for_database",
                            campaign_id=str(look.campaign_id))
            except Exception as exc:  # the poll loop retries; the process must stay up
                log.error("supervisor.reconcile_failed", campaign_id=str(look.campaign_id),
                          exc_info=exc)

    async def _reconcile(self, look: _Look) -> None:
        if self._draining:
            if look.here:  # another process dials it once this one has let it go
                await leases.notify_campaign(self._deps.db, look.campaign_id)
            return
        row = await dialing.campaign(self._deps.db, look.campaign_id)
        if row is None:
            return
        handle = self._handles.get(look.campaign_id)
        if not self.leases.holds(row.account_id):
            if handle is not None:
                handle.stop_dialing()  # being handed over
            if look.here:
                await leases.notify_campaign(self._deps.db, row.id)  # to whoever dials it
            self.leases.wake()  # or nobody does, and it may be this process's to take
            return
        if row.status == CampaignStatus.RUNNING:
            if handle is not None:
                handle.resume_dialing()
            else:
                await self._spawn(row.id, row.account_id)
        elif handle is not None:
            handle.stop_dialing()

    async def _spawn(self, campaign_id: uuid.UUID, account_id: uuid.UUID) -> None:
        await refresh_caps(self._deps, {account_id})
        actors = self._actors
        if actors is None or self._draining:
            return  # the dialing phase ended, or shutdown began, while the caps were read
        handle = CampaignHandle(campaign_id, account_id)
        self._handles[campaign_id] = handle
        await actors.start(self._supervise, handle)

    async def _supervise(self, handle: CampaignHandle, *,
                         task_status: trio.TaskStatus[CampaignHandle]) -> None:
        crashed = False
        account_id = handle.account_id
        scopes = self._scopes.setdefault(account_id, set())
        with trio.CancelScope() as scope:
            scopes.add(scope)
            try:
                await run_campaign(self._deps, handle, task_status=task_status)
            except Exception as exc:
                crashed = True
                log.error("campaign.actor_crashed", campaign_id=str(handle.campaign_id),
                          error=repr(exc), exc_info=exc)
            finally:
                del self._handles[handle.campaign_id]
                scopes.discard(scope)
                if not scopes:
                    del self._scopes[account_id]
                    self._account_idle(account_id)
        if scope.cancelled_caught:
            return  # the lease was lost
        if crashed and not self._draining:
            await trio.sleep(CRASH_RESTART_SECONDS)
        if handle.dialing or crashed:
            self._post(_Look(handle.campaign_id, here=False))  # resumed meanwhile, or crashed

    def _account_idle(self, account_id: uuid.UUID) -> None:
        """The account's last actor here has ended: a lease being handed over (or given up
        at shutdown) is released now; one lost is forgotten by the budget."""
        if not self.leases.holds(account_id) or self._draining:
            self._release_idle({account_id})  # a lease no longer held is left alone
            self._deps.budget.forget_account(account_id)

    async def _poll_loop(self) -> None:
        settings = self._deps.settings
        caps_due = trio.current_time() + settings.caps_refresh_seconds
        while True:
            if not self._draining:
                try:
                    # Holding nothing, there is nothing to look for (the lease actor
                    # looks for accounts to take): an idle process costs no queries here.
                    if held := sorted(self.leases.held):
                        for campaign_id in await start_due_campaigns(
                                self._deps, held, self._waiting_for_budget):
                            await self._reconcile(_Look(campaign_id, here=False))
                        for campaign_id, _ in await dialing.running(self._deps.db, held):
                            if campaign_id not in self._handles:
                                self._post(_Look(campaign_id, here=False))
                    if trio.current_time() >= caps_due:
                        await refresh_caps(self._deps,
                                           {h.account_id for h in self._handles.values()})
                        await refresh_agent_caps(self._deps, list(self._handles))
                        caps_due = trio.current_time() + settings.caps_refresh_seconds
                except DatabaseUnavailable:
                    log.warning("supervisor.waiting_for_database")
                except Exception as exc:  # logged and retried next poll: never fatal
                    log.error("supervisor.poll_failed", exc_info=exc)
            await trio.sleep(settings.scheduler_poll_seconds)


async def _until_reachable(fn: Callable[..., Awaitable[T]], *args: object) -> T:
    """Run ``fn`` until the database answers (start-up must not give up on it)."""
    delay = 0.5
    while True:
        try:
            return await fn(*args)
        except DatabaseUnavailable:
            log.warning("supervisor.waiting_for_database", retry_in_seconds=delay)
            await trio.sleep(delay)
            delay = min(delay * 2, 10.0)


