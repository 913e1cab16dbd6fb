"""What the supervisor's poll loop reads: scheduled campaigns that are due, and caps.

Scheduled campaigns of the accounts held here start when their time comes (as the API's
start would: a missing reference fails them, a budget that does not allow them yet leaves
them waiting). Account caps, and the caps of the running campaigns' agents, are re-read
into the budget every ``engine.caps_refresh_seconds``, so an operator's or an API client's
change applies without a restart.
"""

from __future__ import annotations

import uuid

from gateway.clock import trio_deadline, utcnow
from gateway.engine.budget import RATE_WINDOW_SECONDS
from gateway.engine.deps import EngineDeps
from gateway.logs import get_logger
from gateway.store import dialing, lifecycle
from gateway.store.campaigns import InvalidReference, WrongStatus
from gateway.store.lifecycle import BudgetExceeded
from gateway.vocabulary import CampaignStatus

log = get_logger(__name__)


async def start_due_campaigns(deps: EngineDeps, held: list[uuid.UUID],
                              waiting_for_budget: set[uuid.UUID]) -> list[uuid.UUID]:
    """Start the due scheduled campaigns of the accounts ``held`` here (as the API's start
    would); the campaigns started. ``waiting_for_budget``: those already logged as waiting
    (logged once each)."""
    started_ids = []
    for campaign_id, account_id in await dialing.due_scheduled(deps.db, utcnow(), held):
        try:
            started = await lifecycle.start(
                deps.db, account_id, campaign_id, utcnow(),
                allowed=(CampaignStatus.SCHEDULED,),
                agent_sip_uri_required=deps.agent_sip_uri_required)
        except BudgetExceeded as exc:
            if campaign_id not in waiting_for_budget:
                waiting_for_budget.add(campaign_id)
                log.info("campaign.schedule_waiting_for_budget",
                         campaign_id=str(campaign_id), reason=str(exc))
            continue
        except InvalidReference as exc:
            await _fail_scheduled(deps, account_id, campaign_id, exc.message)
            continue
        except WrongStatus:
            continue
        waiting_for_budget.discard(campaign_id)
        if started:
            log.info("campaign.started", campaign_id=str(campaign_id),
                     account_id=str(account_id), trigger="schedule")
            started_ids.append(campaign_id)
    return started_ids


async def refresh_caps(deps: EngineDeps, account_ids: set[uuid.UUID]) -> None:
    """Read the accounts' caps into the budget; an account the budget does not know yet
    starts its rate window with the dials of its last 60 s, whoever made them (a previous
    process, or the one this process took the account over from)."""
    if not account_ids:
        return
    budget = deps.budget
    new = [account_id for account_id in account_ids if not budget.knows_account(account_id)]
    if new:
        recent = await dialing.recent_dials(deps.db, new, utcnow(), RATE_WINDOW_SECONDS)
        for account_id, dials in recent.items():
            budget.seed_dials(account_id, [trio_deadline(at) for at in dials])
    # Dials granted but not yet written are not in the database's count of today's:
    # the budget subtracts those not confirmed before this mark.
    marks = {account_id: budget.counted_mark(account_id) for account_id in account_ids}
    for caps in await dialing.caps(deps.db, list(account_ids), utcnow()):
        budget.set_account_caps(
            caps.account_id, concurrent_max=caps.concurrent_max,
            calls_per_minute=caps.calls_per_minute, dials_left_today=caps.dials_left_today,
            counted_mark=marks[caps.account_id])


async def refresh_agent_caps(deps: EngineDeps, campaign_ids: list[uuid.UUID]) -> None:
    """The caps of the agents of campaigns running here, in one query (a PATCH of an
    agent's max_concurrent_calls): a lowered cap stops new grants at once, live calls
    finish."""
    if not campaign_ids:
        return
    caps = await dialing.agent_caps(deps.db, campaign_ids)
    for agent_id, max_concurrent in caps.items():
        deps.budget.set_agent_cap(agent_id, max_concurrent)


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
