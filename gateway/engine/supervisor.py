"""The supervisor: one actor per running campaign, and the service tasks that manage them.

It owns actor lifetimes. API handlers change rows, then :meth:`Supervisor.notify` it; the
supervisor reads the campaign's status from PostgreSQL and starts, resumes or winds down
its actor accordingly. A poll loop starts scheduled campaigns when their time comes (and
the budget allows), adopts running campaigns that have no actor (a lost message, a crashed
actor) and re-reads account caps, and the caps of the running campaigns' agents, so an
operator's or an API client's change applies without a restart.

While it dials, two nurseries: one for the service tasks (the poll loop, the inbox, the
dialer lock's watch, the orphan sweep), and nested in it one for the campaign actors.
:meth:`Supervisor.drain` (shutdown) tells every actor to dial nothing new and gives the
actors' nursery a deadline, the grace period: the actors end as their calls end, and the
calls still live at the deadline are cancelled (recorded as interrupted). The service
tasks are cancelled after the last actor has ended, so the lock is watched until then.

It dials only while it holds the dialer lock (:mod:`gateway.engine.dialer_lock`): a
second process on the same database serves the API only (standby) and takes over when the
first one stops. Once the lock is held, attempts left without an outcome by the dead
dialer become ``interrupted``, running campaigns resume, and each account's rate window
starts with the dials of its last 60 s. While it holds the lock, the orphan sweep
(:mod:`gateway.engine.orphans`) finishes attempts that have no call behind them. If the
lock is lost, the actors are cancelled (calls hang up, recorded as interrupted) and the
process goes back to standby.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from gateway.clock import trio_deadline, utcnow
from gateway.db import DatabaseUnavailable
from gateway.engine.budget import RATE_WINDOW_SECONDS
from gateway.engine.campaign import run_campaign
from gateway.engine.deps import EngineDeps
from gateway.engine.dialer_lock import DialerLock
from gateway.engine.handle import CampaignHandle
from gateway.engine.orphans import run_sweeps
from gateway.logs import get_logger
from gateway.store import dialing, lifecycle
from gateway.store.campaigns import InvalidReference, WrongStatus
from gateway.store.lifecycle import BudgetExceeded
from gateway.vocabulary import CampaignStatus

log = get_logger(__name__)
T = TypeVar("T")
INBOX_SIZE = 10_000
CRASH_RESTART_SECONDS = 1.0


class Supervisor:
    def __init__(self, deps: EngineDeps) -> None:
        self._deps = deps
        self._handles: dict[uuid.UUID, CampaignHandle] = {}
        self._send, self._inbox = trio.open_memory_channel[uuid.UUID](INBOX_SIZE)
        self._actors: trio.Nursery | None = None  # while dialing (the lock held)
        self._draining = False
        self._drain_requested = trio.Event()
        self._drain_deadline = math.inf  # trio time: the actors' nursery's, once draining
        self._stopped = trio.Event()  # set when a dialing phase has ended
        self._waiting_for_budget: set[uuid.UUID] = set()
        settings = deps.settings
        self._lock = DialerLock(deps.db, deps.fence, retry_seconds=settings.standby_retry_seconds,
                                check_seconds=settings.lock_check_seconds)

    # -- the API side --------------------------------------------------------------------

    def notify(self, campaign_id: uuid.UUID) -> None:
        """A campaign's row changed: look at it. Never blocks; a message dropped because
        the inbox is full is caught up by the poll loop. A standby drops it: the dialing
        process's poll loop sees the change."""
        if self._actors is None:
            return
        try:
            self._send.send_nowait(campaign_id)
        except trio.WouldBlock:
            log.warning("supervisor.inbox_full", campaign_id=str(campaign_id))

    def handle(self, campaign_id: uuid.UUID) -> CampaignHandle | None:
        return self._handles.get(campaign_id)

    async def drain(self, grace_seconds: float) -> None:
        """Shutdown: dial nothing new, give in-flight calls ``grace_seconds`` to end, then
        cancel the rest (recorded as interrupted). Returns once the dialing phase is over
        (at once when standing by). Campaign statuses are left as they are, so the next
        start resumes them."""
        self._draining = True
        for handle in list(self._handles.values()):
            handle.stop_dialing()
        self._drain_deadline = trio.current_time() + grace_seconds
        self._drain_requested.set()
        if self._actors is not None:
            # Cancelled calls record themselves as interrupted (shielded, bounded): wait for
            # that, while the recorder still runs.
            await self._stopped.wait()

    # -- the actor -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Dial while holding the dialer lock; otherwise stand by. Reports started once
        dialing (or standing by) has begun. Runs until cancelled or drained."""
        try:
            if not await _until_reachable(self._lock.try_acquire):
                task_status.started(self)  # standby: the API is served meanwhile
                task_status = trio.TASK_STATUS_IGNORED
                await self._lock.acquire(lambda: self._draining)
            while True:
                await self._dial(task_status)
                task_status = trio.TASK_STATUS_IGNORED
                if self._draining:
                    return
                await self._lock.acquire(lambda: self._draining)
        finally:
            with trio.CancelScope(shield=True):
                await self._lock.release()

    async def _dial(self, task_status: trio.TaskStatus[Supervisor]) -> None:
        """One dialing phase: recover what the previous dialer left, then run the service
        tasks and the actors until drained or the lock is lost."""
        self._stopped = trio.Event()
        try:
            recovered = await _until_reachable(dialing.recover_interrupted, self._deps.db,
                                               utcnow())
            if recovered:
                log.warning("supervisor.recovered_interrupted_calls", attempts=recovered)
            async with trio.open_nursery() as services:
                # A lost lock cancels both nurseries at once: every call hangs up now.
                services.start_soon(self._fence_watch, services.cancel_scope)
                async with trio.open_nursery() as actors:
                    self._actors = actors
                    services.start_soon(self._poll_loop)
                    services.start_soon(self._read_inbox)
                    await services.start(run_sweeps, self._deps, self._poke_campaigns)
                    task_status.started(self)
                    await self._drain_requested.wait()
                    # Leaving the block waits for the actors, which end as their calls
                    # end (drain stopped their dialing), but not past this deadline.
                    actors.cancel_scope.deadline = self._drain_deadline
                self._actors = None
                services.cancel_scope.cancel()  # the last actor has ended: nothing left to serve
        finally:
            self._actors = None
            self._stopped.set()

    async def _fence_watch(self, dialing_scope: trio.CancelScope) -> None:
        await self._lock.wait_lost()
        if not self._draining:
            # Another process may take the lock now: hang up (calls record themselves as
            # interrupted), and dial again only once the lock is ours again.
            log.error("engine.lock_lost", message="the dialer lock's database connection was "
                      "lost: live calls are hung up and this process stands by")
        dialing_scope.cancel()

    def _poke_campaigns(self, campaign_ids: set[uuid.UUID]) -> None:
        for campaign_id in campaign_ids:
            if (handle := self._handles.get(campaign_id)) is not None:
                handle.poke()

    async def _read_inbox(self) -> None:
        async for campaign_id in self._inbox:
            try:
                await self._reconcile(campaign_id)
            except DatabaseUnavailable:
                log.warning("supervisor.waiting_for_database", campaign_id=str(campaign_id))
            except Exception as exc:  # the poll loop retries; the process must stay up
                log.error("supervisor.reconcile_failed", campaign_id=str(campaign_id),
                          exc_info=exc)

    async def _reconcile(self, campaign_id: uuid.UUID) -> None:
        if self._draining:
            return
        row = await dialing.campaign(self._deps.db, campaign_id)
        handle = self._handles.get(campaign_id)
        if row is not None and row.status == CampaignStatus.RUNNING:
            if handle is not None:
                handle.resume_dialing()
            else:
                await self._spawn(row.id, row.account_id)
        elif handle is not None:
            handle.stop_dialing()

    async def _spawn(self, campaign_id: uuid.UUID, account_id: uuid.UUID) -> None:
        await self._refresh_caps({account_id})
        actors = self._actors
        if actors is None or self._draining:
            return  # the dialing phase ended, or shutdown began, while the caps were read
        handle = CampaignHandle(campaign_id, account_id)
        self._handles[campaign_id] = handle
        await actors.start(self._supervise, handle)

    async def _supervise(self, handle: CampaignHandle, *,
                         task_status: trio.TaskStatus[CampaignHandle]) -> None:
        crashed = False
        try:
            await run_campaign(self._deps, handle, task_status=task_status)
        except Exception as exc:
            crashed = True
            log.error("campaign.actor_crashed", campaign_id=str(handle.campaign_id),
                      error=repr(exc), exc_info=exc)
        finally:
            del self._handles[handle.campaign_id]
        if crashed and not self._draining:
            await trio.sleep(CRASH_RESTART_SECONDS)
        if handle.dialing or crashed:
            self.notify(handle.campaign_id)  # resumed while winding down, or crashed

    async def _poll_loop(self) -> None:
        settings = self._deps.settings
        caps_due = trio.current_time() + settings.caps_refresh_seconds
        while True:
            if not self._draining:
                try:
                    await self._start_due_campaigns()
                    for campaign_id in await dialing.running(self._deps.db):
                        if campaign_id not in self._handles:
                            self.notify(campaign_id)
                    if trio.current_time() >= caps_due:
                        await self._refresh_caps({h.account_id for h in self._handles.values()})
                        await self._refresh_agent_caps()
                        caps_due = trio.current_time() + settings.caps_refresh_seconds
                except DatabaseUnavailable:
                    log.warning("supervisor.waiting_for_database")
                except Exception as exc:  # logged and retried next poll: never fatal
                    log.error("supervisor.poll_failed", exc_info=exc)
            await trio.sleep(settings.scheduler_poll_seconds)

    async def _start_due_campaigns(self) -> None:
        for campaign_id, account_id in await dialing.due_scheduled(self._deps.db, utcnow()):
            try:
                started = await lifecycle.start(
                    self._deps.db, account_id, campaign_id, utcnow(),
                    allowed=(CampaignStatus.SCHEDULED,),
                    agent_sip_uri_required=self._deps.agent_sip_uri_required)
            except BudgetExceeded as exc:
                if campaign_id not in self._waiting_for_budget:
                    self._waiting_for_budget.add(campaign_id)
                    log.info("campaign.schedule_waiting_for_budget",
                             campaign_id=str(campaign_id), reason=str(exc))
                continue
            except InvalidReference as exc:
                await _fail_scheduled(self._deps, account_id, campaign_id, exc.message)
                continue
            except WrongStatus:
                continue
            self._waiting_for_budget.discard(campaign_id)
            if started:
                log.info("campaign.started", campaign_id=str(campaign_id),
                         account_id=str(account_id), trigger="schedule")
                await self._reconcile(campaign_id)

    async def _refresh_caps(self, account_ids: set[uuid.UUID]) -> None:
        if not account_ids:
            return
        budget = self._deps.budget
        new = [account_id for account_id in account_ids if not budget.knows_account(account_id)]
        if new:  # the dials of the previous process's last 60 s stay in the rate window
            recent = await dialing.recent_dials(self._deps.db, new, utcnow(),
                                                RATE_WINDOW_SECONDS)
            for account_id, dials in recent.items():
                budget.seed_dials(account_id, [trio_deadline(at) for at in dials])
        # Dials granted but not yet written are not in the database's count of today's:
        # the budget subtracts those not confirmed before this mark.
        marks = {account_id: budget.counted_mark(account_id) for account_id in account_ids}
        for caps in await dialing.caps(self._deps.db, list(account_ids), utcnow()):
            budget.set_account_caps(
                caps.account_id, concurrent_max=caps.concurrent_max,
                calls_per_minute=caps.calls_per_minute, dials_left_today=caps.dials_left_today,
                counted_mark=marks[caps.account_id])

    async def _refresh_agent_caps(self) -> None:
        """The agents' caps of the running campaigns, in one query (a PATCH of an agent's
        max_concurrent_calls): a lowered cap stops new grants at once, live calls finish."""
        if not self._handles:
            return
        caps = await dialing.agent_caps(self._deps.db, list(self._handles))
        for agent_id, max_concurrent in caps.items():
            self._deps.budget.set_agent_cap(agent_id, max_concurrent)


async def _fail_scheduled(deps: EngineDeps, account_id: uuid.UUID, campaign_id: uuid.UUID,
                          reason: str) -> None:
    try:
        failed = await lifecycle.finish(deps.db, account_id, campaign_id, utcnow(),
                                        status=CampaignStatus.FAILED, reason=reason,
                                        allowed=(CampaignStatus.SCHEDULED,))
    except WrongStatus:
        return
    if failed:
        log.warning("campaign.failed", campaign_id=str(campaign_id), reason=reason)


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


