"""``/api/v1/webhooks``: endpoints that receive the account's events, and their deliveries."""

from __future__ import annotations

import uuid
from typing import Any

import attrs
from quart import Blueprint, Response
from quart_schema import document_response, validate_querystring, validate_request

from gateway.engine.webhook_http import denied, literal_address, split_url
from gateway.http.context import no_content, page_fields, principal, respond, services
from gateway.http.errors import not_found, validation_error
from gateway.http.openapi import API, errors, raw_response
from gateway.http.schemas import PageQuery
from gateway.http.schemas_webhooks import (
    DeliveryOut,
    DeliveryPage,
    DeliveryPageQuery,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookPage,
)
from gateway.logs import get_logger
from gateway.store import webhooks
from gateway.store.webhooks import Endpoint

bp = Blueprint("webhooks", __name__)
log = get_logger(__name__)


def _fields(endpoint: Endpoint) -> dict[str, Any]:
    return {**attrs.asdict(endpoint),
            "status": "disabled" if endpoint.disabled_at is not None else "active"}


async def _owned(endpoint_id: uuid.UUID) -> Endpoint:
    endpoint = await webhooks.get(services().db, principal().account.id, endpoint_id)
    if endpoint is None:
        raise not_found("webhook")
    return endpoint


@bp.post("/webhooks")
@validate_request(WebhookCreate)
@document_response(WebhookCreated, 201)
@errors(400, 413, *API)
async def create_webhook(data: WebhookCreate) -> Response:
    """Events are signed with the secret returned here (once): verify them with any
    Standard Webhooks library. A URL whose host is an address in the networks webhooks
    are not sent to (the gateway's `webhooks.deny_networks`) is refused."""
    host = literal_address(split_url(data.url)[0].host)
    if host is not None and denied(host, services().settings.webhooks.deny_networks):
        raise validation_error("url", f"{host} is in a network webhooks are not sent to "
                                      "(the gateway's webhooks.deny_networks)")
    endpoint, secret = await webhooks.create(services().db, principal().account.id,
                                             url=data.url, description=data.description,
                                             events=data.events)
    log.info("webhook.created", webhook_id=str(endpoint.id),
             account_id=str(principal().account.id), events=endpoint.events)
    return respond(WebhookCreated(**_fields(endpoint), secret=secret), 201)


@bp.get("/webhooks")
@validate_querystring(PageQuery)
@document_response(WebhookPage)
@errors(400, *API)
async def list_webhooks(query_args: PageQuery) -> Response:
    page = await webhooks.page(services().db, principal().account.id, query_args.page)
    return respond(WebhookPage(data=[WebhookOut(**_fields(e)) for e in page.items],
                               **page_fields(page)))


@bp.get("/webhooks/<uuid:webhook_id>")
@document_response(WebhookOut)
@errors(404, *API)
async def get_webhook(webhook_id: uuid.UUID) -> Response:
    return respond(WebhookOut(**_fields(await _owned(webhook_id))))


@bp.delete("/webhooks/<uuid:webhook_id>")
@raw_response(204, "Deleted, with its deliveries (pending ones are not sent).")
@errors(404, *API)
async def delete_webhook(webhook_id: uuid.UUID) -> Response:
    if not await webhooks.delete(services().db, principal().account.id, webhook_id):
        raise not_found("webhook")
    log.info("webhook.deleted", webhook_id=str(webhook_id),
             account_id=str(principal().account.id))
    return no_content()


@bp.post("/webhooks/<uuid:webhook_id>/enable")
@document_response(WebhookOut)
@errors(404, *API)
async def enable_webhook(webhook_id: uuid.UUID) -> Response:
    """A disabled endpoint takes events again; its deliveries abandoned in the last day
    are sent again. An active one is left as it is."""
    if not await webhooks.enable(services().db, principal().account.id, webhook_id):
        raise not_found("webhook")
    return respond(WebhookOut(**_fields(await _owned(webhook_id))))


@bp.get("/webhooks/<uuid:webhook_id>/deliveries")
@validate_querystring(DeliveryPageQuery)
@document_response(DeliveryPage)
@errors(400, 404, *API)
async def list_deliveries(webhook_id: uuid.UUID, query_args: DeliveryPageQuery) -> Response:
    """Newest first: each event sent (or to be sent) to this endpoint, with its last try."""
    endpoint = await _owned(webhook_id)
    page = await webhooks.deliveries(services().db, endpoint.id, query_args.page,
                                     query_args.status)
    return respond(DeliveryPage(data=[DeliveryOut(**attrs.asdict(d)) for d in page.items],
                                **page_fields(page)))


@bp.post("/webhooks/<uuid:webhook_id>/deliveries/<uuid:event_id>/resend")
@document_response(DeliveryOut, 201)
@errors(404, *API)
async def resend_delivery(webhook_id: uuid.UUID, event_id: uuid.UUID) -> Response:
    """The event (a delivery's `event_id`) once more to this endpoint, as a new delivery
    with the same `webhook-id`, after the campaign's other pending events for it."""
    endpoint = await _owned(webhook_id)
    delivery = await webhooks.resend(services().db, endpoint.id, event_id)
    if delivery is None:
        raise not_found("event")
    return respond(DeliveryOut(**attrs.asdict(delivery)), 201)
