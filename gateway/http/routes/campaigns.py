"""``/api/v1/campaigns``: create from a CSV upload, list, get, delete, contact pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
from pydantic import ValidationError
from quart import Blueprint, Response, request
from quart_schema import DataSource, document_request, document_response, validate_querystring
from werkzeug.exceptions import RequestEntityTooLarge

from gateway.contacts_csv import ContactsFileError, ContactsImport
from gateway.http.context import no_content, page_fields, principal, respond, services
from gateway.http.errors import (
    ApiError,
    conflict,
    describe_validation,
    not_found,
    note_inputs,
    validation_error,
)
from gateway.http.multipart import Form, read_form
from gateway.http.openapi import API, errors, raw_response
from gateway.http.schemas import (
    CampaignCreated,
    CampaignCreateForm,
    CampaignFields,
    CampaignOut,
    CampaignPage,
    CampaignPageQuery,
    ContactPage,
    ContactPageQuery,
    ImportReport,
    greeting_variables,
)
from gateway.ids import uuid7
from gateway.logs import get_logger
from gateway.store import campaigns
from gateway.store.campaigns import Campaign, CampaignSettings, InvalidReference, WrongStatus
from gateway.vocabulary import CampaignStatus

bp = Blueprint("campaigns", __name__)
log = get_logger(__name__)
# Room for the form fields and multipart framing around the CSV itself.
FORM_OVERHEAD_BYTES = 1024 * 1024
TEXT_FIELDS = frozenset(CampaignFields.model_fields)
FILE_FIELDS = frozenset({"contacts"})


def agent_sip_uri_required() -> bool:
    """Campaigns need an agent with a sip_uri when this gateway dials over SIP (the agent
    leg goes there); the simulated carrier needs none."""
    return services().settings.telephony.adapter == "sip"


def campaign_out(campaign: Campaign) -> dict[str, Any]:
    fields = attrs.asdict(campaign, recurse=False)
    counts = fields.pop("contact_counts")
    fields.pop("contacts_total")
    return {**fields, "contact_counts": {"total": campaign.contacts_total, **counts}}


@bp.post("/campaigns")
@document_request(CampaignCreateForm, source=DataSource.FORM_MULTIPART)
@document_response(CampaignCreated, 201)
@errors(400, 413, 415, *API)
async def create_campaign() -> Response:
    limits = services().settings.limits
    try:
        form = await read_form(request.body, request.headers.get("Content-Type"),
                               text_fields=TEXT_FIELDS, file_fields=FILE_FIELDS,
                               file_max_bytes=limits.max_csv_bytes,
                               body_max_bytes=limits.max_csv_bytes + FORM_OVERHEAD_BYTES)
    except RequestEntityTooLarge:  # Content-Length alone was over the limit
        raise ApiError(413, "payload_too_large",
                       f"the request body is larger than the limit of "
                       f"{limits.max_csv_bytes + FORM_OVERHEAD_BYTES} bytes") from None
    try:
        return await _create_from_form(form)
    finally:
        form.close()


def _settings_from(form: Form) -> CampaignSettings:
    # read_form took only known names, each in its kind of part (text or file).
    if "contacts" not in form.files:
        raise validation_error("contacts", "is required: a CSV file with a phone_number column")
    # An empty optional field is the same as an absent one (HTML forms send them).
    given = {k: v for k, v in form.fields.items()
             if v.strip() or k not in ("max_concurrent_calls", "retries_per_contact",
                                       "retry_delay_seconds", "scheduled_at",
                                       "calling_window", "retry_policy")}
    try:
        fields = CampaignFields.model_validate(given)
    except ValidationError as exc:
        raise describe_validation(exc) from None
    note_inputs(**fields.model_dump())
    # Canonical: the outcomes and keys given, in vocabulary order (absent ones mean "the
    # campaign's").
    policy = fields.retry_policy.model_dump(exclude_none=True)
    minimum = services().settings.limits.min_retry_delay_seconds
    if fields.retry_delay_seconds < minimum:
        raise validation_error("retry_delay_seconds",
                               f"must be at least {minimum} (got {fields.retry_delay_seconds})")
    for outcome, rule in policy.items():
        delay = rule.get("delay_seconds")
        if delay is not None and delay < minimum:
            raise validation_error(f"retry_policy.{outcome}.delay_seconds",
                                   f"must be at least {minimum} (got {delay})")
    if fields.scheduled_at is not None and fields.scheduled_at <= datetime.now(UTC):
        raise validation_error("scheduled_at",
                               f"is in the past ({fields.scheduled_at.isoformat()}); "
                               "omit it to create a draft, or give a future time")
    return CampaignSettings(**fields.model_dump(exclude={"retry_policy"}),
                            retry_policy=policy)


async def _create_from_form(form: Form) -> Response:
    svc, who = services(), principal()
    settings = _settings_from(form)
    campaign_id = uuid7()  # time-ordered: see gateway.ids
    upload = form.files["contacts"]
    upload.seek(0)
    region = svc.settings.contacts.default_region
    # Parsed in a thread (number validation is CPU work) while PostgreSQL copies the rows
    # already parsed, once the agent and number are checked; a file-level problem rolls
    # the whole campaign back.
    parsed = ContactsImport(upload, campaign_id=campaign_id, default_region=region)
    try:
        campaign, greeting = await campaigns.create(
            svc.db, campaign_id=campaign_id, account_id=who.account.id,
            api_key_id=who.api_key_id, settings=settings, contacts=parsed,
            agent_sip_uri_required=agent_sip_uri_required())
    except InvalidReference as exc:
        raise validation_error(exc.field, exc.message) from None
    except ContactsFileError as exc:
        raise validation_error("contacts", exc.message) from None
    # Shown as every read of the campaign shows it (its new contacts may be outside their
    # window already): counted once the import is committed.
    campaign = attrs.evolve(campaign, waiting_for_window=await campaigns.waiting_for_window(
        svc.db, campaign.id))
    log.info("campaign.created", campaign_id=str(campaign.id), account_id=str(who.account.id),
             status=campaign.status, contacts=parsed.accepted, rejected=parsed.rows_rejected)
    report = _report(parsed, greeting)
    return respond(CampaignCreated(**campaign_out(campaign), import_report=report), 201)


def _report(parsed: ContactsImport, greeting: str) -> ImportReport:
    """The import report: at most MAX_LISTED_REJECTIONS rows listed (a few hundred kB of
    JSON at most, built in a few ms on the event loop), every rejection counted."""
    columns = set(parsed.columns)
    warnings = [f"the agent's greeting uses {{{{{name}}}}} but the CSV has no '{name}' "
                "column; it will be empty" for name in greeting_variables(greeting)
                if name not in columns]
    return ImportReport.model_validate({
        "rows_accepted": parsed.accepted, "rows_rejected": parsed.rows_rejected,
        "columns": parsed.columns, "warnings": warnings,
        "rejected": [attrs.asdict(row) for row in parsed.rejected],
        "rejected_counts": parsed.rejected_counts,
        "rejected_truncated": parsed.rejected_truncated,
        "delimiter": parsed.delimiter})


@bp.get("/campaigns")
@validate_querystring(CampaignPageQuery)
@document_response(CampaignPage)
@errors(400, *API)
async def list_campaigns(query_args: CampaignPageQuery) -> Response:
    page = await campaigns.page(services().db, principal().account.id, query_args.page,
                                query_args.status)
    return respond(CampaignPage(data=[CampaignOut(**campaign_out(c)) for c in page.items],
                                **page_fields(page)))


async def owned_campaign(campaign_id: uuid.UUID, *, counts: bool = True) -> Campaign:
    """The campaign, or 404 (another tenant's is not found either). ``counts=False`` when
    the contact counts are not shown: it spares reading them."""
    campaign = await campaigns.get(services().db, principal().account.id, campaign_id,
                                   counts=counts)
    if campaign is None:
        raise not_found("campaign")
    return campaign


@bp.get("/campaigns/<uuid:campaign_id>")
@document_response(CampaignOut)
@errors(404, *API)
async def get_campaign(campaign_id: uuid.UUID) -> Response:
    return respond(CampaignOut(**campaign_out(await owned_campaign(campaign_id))))


@bp.delete("/campaigns/<uuid:campaign_id>")
@raw_response(204, "Deleted with its contacts (drafts only).")
@errors(404, 409, *API)
async def delete_campaign(campaign_id: uuid.UUID) -> Response:
    try:
        deleted = await campaigns.delete(services().db, principal().account.id, campaign_id)
    except WrongStatus as exc:
        stoppable = (CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED)
        raise conflict(f"only a draft campaign can be deleted; this one is {exc.status}"
                       + (" (stop it first)" if exc.status in stoppable else "")) from None
    if not deleted:
        raise not_found("campaign")
    log.info("campaign.deleted", campaign_id=str(campaign_id),
             account_id=str(principal().account.id))
    return no_content()


@bp.get("/campaigns/<uuid:campaign_id>/contacts")
@validate_querystring(ContactPageQuery)
@document_response(ContactPage)
@errors(400, 404, *API)
async def list_contacts(campaign_id: uuid.UUID, query_args: ContactPageQuery) -> Response:
    campaign = await owned_campaign(campaign_id, counts=False)
    page = await campaigns.contacts_page(services().db, campaign, query_args.page,
                                         query_args.status)
    return respond(ContactPage.model_validate(
        {"data": [attrs.asdict(c, recurse=False) for c in page.items], **page_fields(page)}))
