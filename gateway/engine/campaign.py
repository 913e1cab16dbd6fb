"""The campaign actor: claim due contacts, take slots, start calls, finish the campaign.

One actor per running campaign, owned by the supervisor. Its calls run in its own
nursery, so the actor ends only when its last call has been recorded. It holds nothing
it cannot rebuild from PostgreSQL: a restart claims where this one left off.

Loop: wait for a budget slot (plus any others free at once, up to a batch), claim that
many due contacts in one statement, start a call per claim, give back unused slots. With
nothing due: finish the campaign if nothing is left, else sleep until the next retry is
due, the next calling window opens for contacts that wait for it, or a call ends.

Calling windows are the claim's to enforce (it takes only contacts inside theirs); the
actor only decides when to look again, and rescans from the first claimable contact
every WINDOW_RESCAN_SECONDS while a window applies, so contacts whose window opened
behind its cursor are reached while it dials others.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import trio

from gateway.clock import trio_deadline, utcnow
from gateway.db import DatabaseUnavailable
from gateway.engine.call import run_call
from gateway.engine.deps import EngineDeps
from gateway.engine.handle import CampaignHandle
from gateway.logs import get_logger
from gateway.metrics import AccountFigures
from gateway.store import dialing, lifecycle
from gateway.store.campaigns import WrongStatus
from gateway.telephony.base import CallResult, DialRequest
from gateway.vocabulary import CampaignStatus, Outcome

log = get_logger(__name__)
T = TypeVar("T")
REFERENCE_CHECK_SECONDS = 2.0
DATABASE_RETRY_SECONDS = 1.0
WINDOW_RESCAN_SECONDS = 60.0


class _FailureStreak:
    """No call reached the agent for long enough: the carrier rejects every call
    (``failed``), the agent takes none of the contacts who answer (``agent_unavailable``),
    or a mix of the two. Any other outcome ends the streak."""

    def __init__(self, seconds: float, min_calls: int) -> None:
        self.seconds, self.min_calls = seconds, min_calls
        self.since: float | None = None
        self.failed = self.agent_unavailable = 0

    @property
    def count(self) -> int:
        return self.failed + self.agent_unavailable

    def add(self, outcome: str) -> bool:
        """Count a call's outcome; True when the streak is long enough to fail the
        campaign."""
        if outcome == Outcome.FAILED:
            self.failed += 1
        elif outcome == Outcome.AGENT_UNAVAILABLE:
            self.agent_unavailable += 1
        else:
            self.since, self.failed, self.agent_unavailable = None, 0, 0
            return False
        now = trio.current_time()
        self.since = now if self.since is None else self.since
        return self.count >= self.min_calls and now - self.since >= self.seconds

    def reason(self, agent: str) -> str:
        """The failure_reason, true of the streak as it is; ``agent`` names the agent
        (``Ava (sip:ava@10.0.0.5)``)."""
        seconds = f"{self.seconds:g} s"
        if not self.agent_unavailable:
            return (f"the carrier rejected every call for {seconds} "
                    f"({self.failed} calls in a row failed)")
        if not self.failed:
            return (f"the agent {agent} was unavailable for every call for {seconds} "
                    f"({self.agent_unavailable} answered calls in a row could not be "
                    f"connected to it): check its sip_uri and that it answers")
        return (f"no call reached the agent {agent} for {seconds} ({self.count} calls in a "
                f"row: {self.failed} rejected by the carrier, {self.agent_unavailable} "
                f"answered but the agent was unavailable): check the trunk, and the agent's "
                f"sip_uri and that it answers")


def describe_agent(name: str, sip_uri: str | None) -> str:
    """How a failure_reason names an agent: its name and where it is dialed."""
    return f"{name} ({sip_uri or 'no sip_uri'})"


async def run_campaign(deps: EngineDeps, handle: CampaignHandle, *,
                       task_status: trio.TaskStatus[CampaignHandle] = trio.TASK_STATUS_IGNORED
                       ) -> None:
    """The actor of ``handle``'s campaign, until its last call is recorded (started with
    ``nursery.start``: reports the handle once it runs)."""
    task_status.started(handle)
    row = await _until_reachable(handle, dialing.campaign, deps.db, handle.campaign_id)
    if row is None:
        return
    # The agent's seats are shared with the account's other campaigns of that agent; the
    # supervisor's caps refresh keeps its cap current.
    deps.budget.open_campaign(row.account_id, row.id, row.max_concurrent_calls,
                              agent_id=row.agent_id, agent_max=row.agent_max_concurrent_calls)
    try:
        async with trio.open_nursery() as calls:
            await CampaignActor(deps, handle, row, calls).run()
    finally:
        deps.budget.close_campaign(row.id)


@attrs.define(eq=False)
class CampaignActor:
    """One running campaign: its row and references, the nursery its calls run in, where
    its claims look for new contacts and how long every call has failed.

    ``handle`` is what the supervisor and the calls share with it (whether to dial, the
    calls in flight, a failure to record); the actor reads it and asks it for changes.
    """

    deps: EngineDeps
    handle: CampaignHandle
    row: dialing.CampaignRow
    calls: trio.Nursery
    refs: dialing.References | None = None
    refs_checked: float = -math.inf  # trio time of the last reference check
    rescanned: float = -math.inf  # trio time the cursor last went back to the start
    cursor: dialing.ClaimCursor = attrs.field(init=False)
    streak: _FailureStreak = attrs.field(init=False)
    figures: AccountFigures = attrs.field(init=False)  # its account's counters, bound once

    def __attrs_post_init__(self) -> None:
        self.cursor = dialing.ClaimCursor(self.row)
        self.figures = self.deps.metrics.account(self.row.account_id)
        settings = self.deps.settings
        self.streak = _FailureStreak(settings.adapter_failure_seconds,
                                     settings.adapter_failure_min_calls)

    async def run(self) -> None:
        """Dial until the campaign is done, stopped or failed, then wait for its calls."""
        handle = self.handle
        while True:
            if handle.failure_reason is not None and handle.dialing:
                await _until_reachable(handle, self._fail, handle.failure_reason)
                continue
            if not handle.dialing:
                if handle.in_flight == 0:
                    return
                await handle.wait()
                continue
            try:
                await self._step()
            except DatabaseUnavailable:
                log.warning("campaign.waiting_for_database", campaign_id=str(self.row.id))
                with handle.interruptible():
                    await trio.sleep(DATABASE_RETRY_SECONDS)

    async def _step(self) -> None:
        """One claim (and its calls), or the decision of what to do without one."""
        handle = self.handle
        if not await self._references_ok():
            return
        assert self.refs is not None
        if self.refs.windowed and \
                trio.current_time() - self.rescanned >= WINDOW_RESCAN_SECONDS:
            self._rescan()  # contacts whose window opened may be behind the cursor
        await self.cursor.locate(self.deps.db, utcnow())
        batch = await self._dial_batch()
        if batch.claimed or not handle.dialing or handle.failure_reason is not None:
            return
        if batch.tried and self.cursor.next_window():
            return  # no new contact in this window: the next one
        if await self._idle():
            self.refs_checked = -math.inf  # contacts are due but none was claimable: why?
            self._rescan()  # and one that was locked when the cursor passed it is found

    def _rescan(self) -> None:
        self.cursor.rescan()
        self.rescanned = trio.current_time()

    async def _references_ok(self) -> bool:
        """Every REFERENCE_CHECK_SECONDS: can the campaign still dial (its agent active,
        its number enabled)? If not, the campaign is asked to fail."""
        if trio.current_time() - self.refs_checked < REFERENCE_CHECK_SECONDS:
            return True
        self.refs = await dialing.references(self.deps.db, self.row.id)
        self.refs_checked = trio.current_time()
        if not self.refs.agent_ok:
            self.handle.fail("the campaign's agent was deactivated or deleted")
            return False
        if not self.refs.number_ok:
            self.handle.fail("the campaign's phone number was disabled or deleted")
            return False
        return True

    def _on_result(self, result: CallResult) -> None:
        if self.streak.add(result.outcome):
            refs = self.refs
            assert refs is not None  # read before the first dial
            self.handle.fail(self.streak.reason(describe_agent(refs.agent_name,
                                                               refs.agent_sip_uri)))

    async def _dial_batch(self) -> _Batch:
        """Take slots, claim that many contacts, start their calls."""
        deps, handle, row, refs = self.deps, self.handle, self.row, self.refs
        assert refs is not None  # _references_ok ran first
        budget = deps.budget
        slot = None
        with handle.interruptible():
            slot = await budget.acquire(row.id)
        if slot is None:
            return _Batch(tried=False, claimed=0)
        slots = [slot]
        while len(slots) < deps.settings.claim_batch_size and (
                more := budget.try_acquire(row.id)):
            slots.append(more)
        now = utcnow()
        try:
            with deps.live.claiming(now):
                began = trio.current_time()
                claimed = await dialing.claim(deps.db, now, len(slots), self.cursor,
                                              deps.fence.lease(row.account_id))
                deps.metrics.claim_seconds.observe(trio.current_time() - began)
                claims = claimed.claims
                deps.live.ids.update(claim.attempt_id for claim in claims)
        except BaseException:
            # It may have committed with its answer lost: its dials count (the sweep
            # finishes any attempts it wrote), and the sweep is asked to look soon.
            deps.live.want_sweep()
            for unused in slots:
                budget.release(unused)
            raise
        if claims:
            self.figures.dials.inc(len(claims))
        for claim in claims:
            request = DialRequest(
                call_id=claim.attempt_id, campaign_id=row.id, contact_id=claim.contact_id,
                agent_id=refs.agent_id, attempt=claim.attempt, to_number=claim.phone_number,
                from_number=refs.from_number, variables=claim.custom_fields,
                agent_sip_uri=refs.agent_sip_uri)
            handle.in_flight += 1
            slot = slots.pop()
            budget.confirm(slot)
            self.calls.start_soon(run_call, deps, handle, request, slot, claim, self._on_result,
                                  self.figures)
        for unused in slots:  # the claim came back short (or skipped do-not-call numbers)
            budget.release(unused, dialed=False)
        if claimed.skipped:
            log.info("campaign.skipped_do_not_call", campaign_id=str(row.id),
                     contacts=claimed.skipped)
        return _Batch(tried=True, claimed=claimed.found)

    async def _idle(self) -> bool:
        """Nothing was claimed: finish, stop, or sleep until something can be dialed.

        True when new contacts remain (inside their window yet none was claimable: the
        agent or number just became unusable, or another claimer holds them; or outside
        it, and their window may have opened meanwhile): the caller re-checks the
        references and rescans.
        """
        deps, handle, row = self.deps, self.handle, self.row
        progress = await dialing.progress(deps.db, row.id, utcnow())
        if progress is None or progress.status != CampaignStatus.RUNNING:
            handle.stop_dialing()  # paused, stopped or failed under us: drain and end
            return False
        if progress.finished and handle.in_flight == 0:
            if await dialing.complete(deps.db, row.id, utcnow()):
                log.info("campaign.completed", campaign_id=str(row.id),
                         account_id=str(row.account_id))
            handle.stop_dialing()
            return False
        deadline = math.inf
        if progress.claimable_pending > 0:
            deadline = trio.current_time() + DATABASE_RETRY_SECONDS
        # Contacts outside their window (new ones, and retries that came due outside it)
        # are looked at again when the next window opens for them: no polling meanwhile.
        for when in (progress.next_retry_at, progress.next_window_at):
            if when is not None:
                deadline = min(deadline, trio_deadline(when))
        await handle.wait(deadline)
        return progress.pending > 0

    async def _fail(self, reason: str) -> None:
        handle = self.handle
        try:
            failed = await lifecycle.finish(
                self.deps.db, handle.account_id, handle.campaign_id, utcnow(),
                status=CampaignStatus.FAILED, reason=reason,
                allowed=(CampaignStatus.RUNNING, CampaignStatus.PAUSED))
        except WrongStatus:
            failed = False
        if failed:
            log.warning("campaign.failed", campaign_id=str(handle.campaign_id),
                        account_id=str(handle.account_id), reason=reason)
        handle.stop_dialing()


async def _until_reachable(handle: CampaignHandle, fn: Callable[..., Awaitable[T]],
                           *args: object) -> T:
    """``fn(*args)``, retried while the database is unreachable: an outage must never
    crash the actor (that would hang up every live call of the campaign)."""
    while True:
        try:
            return await fn(*args)
        except DatabaseUnavailable:
            log.warning("campaign.waiting_for_database", campaign_id=str(handle.campaign_id))
            await trio.sleep(DATABASE_RETRY_SECONDS)


@attrs.frozen
class _Batch:
    tried: bool  # a claim was made (no slot came: paused or stopped meanwhile)
    claimed: int
