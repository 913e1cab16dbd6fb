"""The campaign actor: claim due contacts, take slots, start calls, finish the campaign.

One actor per running campaign, owned by the supervisor. Its calls run in its own
nursery, so the actor ends only when its last call has been recorded. It holds nothing
it cannot rebuild from PostgreSQL: a restart claims where this one left off.

Loop: wait for a budget slot (plus any others free at once, up to a batch), claim that
many due contacts in one statement, start a call per claim, give back unused slots. With
nothing due: finish the campaign if nothing is left, else sleep until the next retry is
due or a call ends.
"""

from __future__ import annotations

import math

import attrs
import trio

from gateway.clock import trio_deadline, utcnow
from gateway.db import DatabaseUnavailable
from gateway.engine.call import run_call
from gateway.engine.deps import EngineDeps
from gateway.engine.handle import CampaignHandle
from gateway.logs import get_logger
from gateway.store import dialing, lifecycle
from gateway.store.campaigns import WrongStatus
from gateway.telephony.base import CallResult, DialRequest

log = get_logger(__name__)
REFERENCE_CHECK_SECONDS = 2.0
DATABASE_RETRY_SECONDS = 1.0


class _FailureStreak:
    """Every call a carrier failure for long enough: the adapter is rejecting all calls."""

    def __init__(self, seconds: float, min_calls: int) -> None:
        self.seconds, self.min_calls = seconds, min_calls
        self.since: float | None = None
        self.count = 0

    def add(self, outcome: str) -> bool:
        if outcome != "failed":
            self.since, self.count = None, 0
            return False
        now = trio.current_time()
        self.since = now if self.since is None else self.since
        self.count += 1
        return self.count >= self.min_calls and now - self.since >= self.seconds


async def run_campaign(deps: EngineDeps, handle: CampaignHandle, *,
                       task_status: trio.TaskStatus[CampaignHandle] = trio.TASK_STATUS_IGNORED
                       ) -> None:
    task_status.started(handle)
    row = await _until_reachable(handle, dialing.campaign, deps.db, handle.campaign_id)
    if row is None:
        return
    deps.budget.open_campaign(row.account_id, row.id, row.max_concurrent_calls)
    streak = _FailureStreak(deps.settings.adapter_failure_seconds,
                            deps.settings.adapter_failure_min_calls)

    def on_result(result: CallResult) -> None:
        if streak.add(result.outcome):
            handle.fail(f"the carrier rejected every call for "
                        f"{deps.settings.adapter_failure_seconds:g} s ({streak.count} calls "
                        "in a row failed)")

    try:
        async with trio.open_nursery() as calls:
            await _dial_loop(deps, handle, row, calls, on_result)
    finally:
        deps.budget.close_campaign(row.id)


async def _dial_loop(deps: EngineDeps, handle: CampaignHandle, row, calls: trio.Nursery,
                     on_result) -> None:
    refs, refs_checked = None, -math.inf
    from_seq = None  # new contacts are claimed in seq order: the next claim starts here
    while True:
        if handle.failure_reason is not None and handle.dialing:
            await _until_reachable(handle, _fail, deps, handle, handle.failure_reason)
            continue
        if not handle.dialing:
            if handle.in_flight == 0:
                return
            await handle.wait()
            continue
        try:
            if from_seq is None:  # a start, a resume or a rescan: the first pending seq
                from_seq = await dialing.first_pending_seq(deps.db, row)
            if trio.current_time() - refs_checked >= REFERENCE_CHECK_SECONDS:
                refs, refs_checked = await dialing.references(deps.db, row.id), trio.current_time()
                if not refs.agent_ok:
                    handle.fail("the campaign's agent was deactivated or deleted")
                    continue
                if not refs.number_ok:
                    handle.fail("the campaign's phone number was disabled or deleted")
                    continue
            batch = await _dial_batch(deps, handle, row, refs, calls, on_result, from_seq)
            if batch.fresh_to is not None:
                from_seq = max(from_seq, batch.fresh_to + 1)
            if batch.claimed:
                continue
            if not handle.dialing or handle.failure_reason is not None:
                continue
            if batch.tried and from_seq + dialing.FRESH_WINDOW < row.contacts_total:
                from_seq += dialing.FRESH_WINDOW  # no new contact in this window: the next
                continue
            if await _idle(deps, handle, row):
                refs_checked = -math.inf  # contacts are due but none was claimable: why?
                from_seq = None  # and one that was locked when the cursor passed it is found
        except DatabaseUnavailable:
            log.warning("campaign.waiting_for_database", campaign_id=str(row.id))
            with handle.interruptible():
                await trio.sleep(DATABASE_RETRY_SECONDS)


async def _until_reachable(handle: CampaignHandle, fn, *args):
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
    fresh_to: int | None  # the highest seq of a new contact claimed


async def _dial_batch(deps, handle, row, refs, calls, on_result, from_seq: int) -> _Batch:
    """Take slots, claim that many contacts (new ones from ``from_seq``), start their
    calls."""
    budget = deps.budget
    slot = None
    with handle.interruptible():
        slot = await budget.acquire(row.id)
    if slot is None:
        return _Batch(tried=False, claimed=0, fresh_to=None)
    slots = [slot]
    while len(slots) < deps.settings.claim_batch_size and (more := budget.try_acquire(row.id)):
        slots.append(more)
    now = utcnow()
    try:
        with deps.live.claiming(now):
            claims = await dialing.claim(deps.db, row.id, now, len(slots), from_seq,
                                          deps.fence.pid)
            deps.live.ids.update(claim.attempt_id for claim in claims)
    except BaseException:
        # It may have committed with its answer lost: its dials count (the sweep finishes
        # any attempts it wrote), and the sweep is asked to look soon.
        deps.live.want_sweep()
        for unused in slots:
            budget.release(unused)
        raise
    for claim in claims:
        request = DialRequest(
            call_id=claim.attempt_id, campaign_id=row.id, contact_id=claim.contact_id,
            agent_id=refs.agent_id, attempt=claim.attempt, to_number=claim.phone_number,
            from_number=refs.from_number, variables=claim.custom_fields,
            agent_sip_uri=refs.agent_sip_uri, agent_media_address=refs.agent_media_address)
        handle.in_flight += 1
        slot = slots.pop()
        budget.confirm(slot)
        calls.start_soon(run_call, deps, handle, request, slot, claim, on_result)
    for unused in slots:  # the claim came back short: these were never dialed
        budget.release(unused, dialed=False)
    # Only new contacts move the cursor: a retry's seq may lie past new contacts that a
    # rescan from 0 has yet to reach.
    return _Batch(tried=True, claimed=len(claims),
                  fresh_to=max((c.seq for c in claims if c.attempt == 1), default=None))


async def _idle(deps: EngineDeps, handle: CampaignHandle, row) -> bool:
    """Nothing was claimed: finish, stop, or sleep until something can be dialed.

    True when new contacts are waiting yet none was claimable (the agent or number just
    became unusable, or another claimer holds them): the caller re-checks the references.
    """
    progress = await dialing.progress(deps.db, row.id)
    if progress is None or progress.status != "running":
        handle.dialing = False  # paused, stopped or failed under us: drain and end
        return False
    if progress.finished and handle.in_flight == 0:
        if await dialing.complete(deps.db, row.id, utcnow()):
            log.info("campaign.completed", campaign_id=str(row.id),
                     account_id=str(row.account_id))
        handle.dialing = False
        return False
    deadline = math.inf
    if progress.pending > 0:
        deadline = trio.current_time() + DATABASE_RETRY_SECONDS
    elif progress.next_retry_at is not None:
        deadline = trio_deadline(progress.next_retry_at)
    await handle.wait(deadline)
    return progress.pending > 0


async def _fail(deps: EngineDeps, handle: CampaignHandle, reason: str) -> None:
    try:
        failed = await lifecycle.finish(deps.db, handle.account_id, handle.campaign_id,
                                        utcnow(), status="failed", reason=reason,
                                        allowed=("running", "paused"))
    except WrongStatus:
        failed = False
    if failed:
        log.warning("campaign.failed", campaign_id=str(handle.campaign_id),
                    account_id=str(handle.account_id), reason=reason)
    handle.dialing = False
