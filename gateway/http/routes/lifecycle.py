"""Campaign lifecycle: start, pause, resume, stop; the call history, and the agent's
disposition of a call.

Handlers never dial: they change the campaign's row in one transaction, then tell the
supervisor, which starts or winds down the campaign's actor.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from quart import Blueprint, Response
from quart_schema import document_response, validate_querystring, validate_request

from gateway.clock import utcnow
from gateway.db import Database
from gateway.http.context import page_fields, principal, respond, services
from gateway.http.errors import ApiError, conflict, not_found
from gateway.http.openapi import API, errors
from gateway.http.routes.campaigns import agent_sip_uri_required, campaign_out, owned_campaign
from gateway.http.schemas import CallOut, CallPage, CampaignOut, PageQuery
from gateway.http.schemas_dispositions import DispositionIn
from gateway.logs import get_logger
from gateway.store import calls, campaigns, lifecycle
from gateway.store.calls import DispositionRefused
from gateway.store.campaigns import InvalidReference, WrongStatus
from gateway.store.lifecycle import BudgetExceeded
from gateway.vocabulary import CampaignStatus

bp = Blueprint("lifecycle", __name__)
log = get_logger(__name__)
_EVENTS = {"start": "campaign.started", "resume": "campaign.resumed",
           "pause": "campaign.paused", "stop": "campaign.stopped"}
# A store transition: (db, account_id, campaign_id) → False if there is no such campaign.
Change = Callable[[Database, uuid.UUID, uuid.UUID], Awaitable[bool]]


async def _transition(campaign_id: uuid.UUID, verb: str, change: Change) -> dict[str, Any]:
    account_id = principal().account.id
    try:
        found = await change(services().db, account_id, campaign_id)
    except WrongStatus as exc:
        raise conflict(f"cannot {verb} a campaign that is {exc.status}") from None
    except BudgetExceeded as exc:
        raise ApiError(409, "concurrency_budget_exceeded", str(exc)) from None
    except InvalidReference as exc:
        raise ApiError(409, "conflict", f"{exc.field}: {exc.message}", field=exc.field) from None
    if not found:
        raise not_found("campaign")
    services().engine.notify(campaign_id)
    campaign = await campaigns.get(services().db, account_id, campaign_id)
    if campaign is None:  # deleted since: only drafts can be, which no transition leaves
        raise not_found("campaign")
    log.info(_EVENTS[verb], campaign_id=str(campaign_id), account_id=str(account_id),
             status=campaign.status, trigger="api")
    return campaign_out(campaign)


@bp.post("/campaigns/<uuid:campaign_id>/start")
@document_response(CampaignOut)
@errors(404, 409, *API)
async def start_campaign(campaign_id: uuid.UUID) -> Response:
    """draft, scheduled or paused → running, if the account's concurrency budget allows."""
    return respond(CampaignOut(**await _transition(
        campaign_id, "start", lambda db, a, c: lifecycle.start(
            db, a, c, utcnow(), agent_sip_uri_required=agent_sip_uri_required()))))


@bp.post("/campaigns/<uuid:campaign_id>/resume")
@document_response(CampaignOut)
@errors(404, 409, *API)
async def resume_campaign(campaign_id: uuid.UUID) -> Response:
    """paused → running, if the account's concurrency budget allows."""
    return respond(CampaignOut(**await _transition(
        campaign_id, "resume",
        lambda db, a, c: lifecycle.start(db, a, c, utcnow(), allowed=(CampaignStatus.PAUSED,),
                                         agent_sip_uri_required=agent_sip_uri_required()))))


@bp.post("/campaigns/<uuid:campaign_id>/pause")
@document_response(CampaignOut)
@errors(404, 409, *API)
async def pause_campaign(campaign_id: uuid.UUID) -> Response:
    """running → paused: nothing new is dialed; live calls finish and are recorded."""
    return respond(CampaignOut(**await _transition(campaign_id, "pause", lifecycle.pause)))


@bp.post("/campaigns/<uuid:campaign_id>/stop")
@document_response(CampaignOut)
@errors(404, 409, *API)
async def stop_campaign(campaign_id: uuid.UUID) -> Response:
    """running, paused or scheduled → completed: contacts never dialed are skipped; live
    calls are not aborted, their results are recorded."""
    return respond(CampaignOut(**await _transition(
        campaign_id, "stop", lambda db, a, c: lifecycle.finish(db, a, c, utcnow()))))


@bp.get("/campaigns/<uuid:campaign_id>/calls")
@validate_querystring(PageQuery)
@document_response(CallPage)
@errors(400, 404, *API)
async def list_calls(campaign_id: uuid.UUID, query_args: PageQuery) -> Response:
    campaign = await owned_campaign(campaign_id, counts=False)
    page = await calls.page(services().db, campaign.id, query_args.page)
    return respond(CallPage(data=[CallOut(**attrs.asdict(c)) for c in page.items],
                            **page_fields(page)))


@bp.post("/calls/<uuid:call_id>/disposition")
@validate_request(DispositionIn)
@document_response(CallOut)
@errors(400, 404, 409, 413, *API)
async def set_disposition(call_id: uuid.UUID, data: DispositionIn) -> Response:
    """How an answered call went, while it is live or until 24 hours after it ended; once
    only. A call already recorded has its contact decided again (a voicemail or a callback
    is retried); do_not_call puts the number on the account's do-not-call list."""
    account_id = principal().account.id
    try:
        disposed = await calls.set_disposition(services().db, account_id, call_id,
                                               data.disposition, data.callback_at,
                                               data.notes, utcnow())
    except DispositionRefused as exc:
        raise conflict(exc.message) from None
    if disposed is None:
        raise not_found("call")
    # The notes stay out of the log: they may hold what the contact said about themselves.
    log.info("call.disposition", call_id=str(call_id), campaign_id=str(disposed.campaign_id),
             account_id=str(account_id), disposition=data.disposition,
             live=disposed.call.outcome is None, contact_status=disposed.contact_status)
    return respond(CallOut(**attrs.asdict(disposed.call)))
