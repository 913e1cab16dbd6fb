"""``POST /api/v1/campaigns/{id}/rerun``: a new draft campaign of some of a finished
campaign's contacts (its failed ones, say), with the same agent, number and settings.

Only a completed or failed campaign is rerun (409 otherwise): while one may still dial,
its contacts' statuses are not final, and a copy could call a contact it is about to
call. The copy is a draft to check and start like any other. A contact whose number was
put on the do-not-call list since is left out, as an import would reject it; a rerun that
would have no contacts is a 400 ``no_contacts`` and creates nothing (an upload with no
valid row is refused the same way).
"""

from __future__ import annotations

import uuid

from quart import Blueprint, Response
from quart_schema import document_response, validate_request

from gateway.http.context import principal, respond, services
from gateway.http.errors import ApiError, conflict, not_found
from gateway.http.openapi import API, errors
from gateway.http.routes.campaigns import agent_sip_uri_required, campaign_out
from gateway.http.schemas import CampaignOut, RerunIn
from gateway.logs import get_logger
from gateway.store import campaigns
from gateway.store import rerun as reruns
from gateway.store.campaigns import InvalidReference, WrongStatus
from gateway.store.rerun import NoContacts
from gateway.vocabulary import ContactStatus

bp = Blueprint("rerun", __name__)
log = get_logger(__name__)


@bp.post("/campaigns/<uuid:campaign_id>/rerun")
@validate_request(RerunIn)
@document_response(CampaignOut, 201)
@errors(400, 404, 409, 413, *API)
async def rerun_campaign(campaign_id: uuid.UUID, data: RerunIn) -> Response:
    """A new draft campaign of the contacts of a completed or failed one, by status.

    The draft has the source's agent, phone number and settings (not its schedule) and
    its contacts whose status is one of ``statuses``, pending again, except the numbers
    on the do-not-call list now. ``name`` defaults to the source's name followed by
    " (rerun)". 409 if the source is not completed or failed, or its agent or number
    cannot be used now; 400 ``no_contacts`` if no contact would be copied.
    """
    svc, who = services(), principal()
    statuses = [status for status in ContactStatus if status in data.statuses]
    try:
        made = await reruns.rerun(svc.db, account_id=who.account.id, source_id=campaign_id,
                                  api_key_id=who.api_key_id, statuses=statuses,
                                  name=data.name,
                                  agent_sip_uri_required=agent_sip_uri_required())
    except WrongStatus as exc:
        raise conflict(f"only a completed or failed campaign can be rerun; this one is "
                       f"{exc.status}" + (" (it has dialed no one yet)" if exc.status == "draft"
                                          else " (stop it first)")) from None
    except InvalidReference as exc:
        raise ApiError(409, "conflict", f"{exc.field}: {exc.message}", field=exc.field) from None
    except NoContacts as exc:
        listed = " or ".join(statuses)
        message = (f"statuses: all {exc.matching} contacts with status {listed} are on the "
                   "do-not-call list now" if exc.matching else
                   f"statuses: the campaign has no contact with status {listed}")
        raise ApiError(400, "no_contacts", message, field="statuses") from None
    if made is None:
        raise not_found("campaign")
    campaign = await campaigns.get(svc.db, who.account.id, made.campaign_id)
    if campaign is None:  # deleted since (a draft can be)
        raise not_found("campaign")
    log.info("campaign.rerun", campaign_id=str(made.campaign_id),
             source_campaign_id=str(campaign_id), account_id=str(who.account.id),
             statuses=statuses, contacts=made.contacts, do_not_call=made.do_not_call)
    return respond(CampaignOut(**campaign_out(campaign)), 201)
