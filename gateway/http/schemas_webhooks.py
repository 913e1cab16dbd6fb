"""Pydantic models of the webhooks' HTTP bodies (``/api/v1/webhooks``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from gateway.engine.webhook_http import HttpError, split_url
from gateway.http.schemas import Body, PageOut, PageQuery
from gateway.vocabulary import DeliveryStatus, WebhookEvent

MAX_URL_CHARS = 2_000
MAX_DESCRIPTION_CHARS = 500


class WebhookCreate(Body):
    url: str = Field(max_length=MAX_URL_CHARS,
                     description="Where the events are POSTed: an http:// or https:// URL.")
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(WebhookEvent), min_length=1,
        max_length=len(WebhookEvent),
        description="The event types this endpoint takes (default: all).")
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # The sender's own reading of it: what is accepted here can be sent to.
        try:
            origin, _ = split_url(value)
        except HttpError:
            raise ValueError("must be an absolute http:// or https:// URL with a host") from None
        if origin.port == 0:
            raise ValueError("must not use port 0")
        if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
            raise ValueError("must not contain whitespace or control characters")
        return value

    @field_validator("events")
    @classmethod
    def _unique(cls, value: list[WebhookEvent]) -> list[WebhookEvent]:
        return list(dict.fromkeys(value))


class WebhookOut(BaseModel):
    id: uuid.UUID
    url: str
    description: str | None
    events: list[WebhookEvent]
    status: str = Field(description="`active`, or `disabled` (see `disabled_reason`).")
    created_at: datetime
    failing_since: datetime | None = Field(
        description="The first failed delivery since the last success (null: none).")
    disabled_at: datetime | None
    disabled_reason: str | None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret (Standard Webhooks, `whsec_...`). "
                                    "Shown only in this response: store it now.")


class WebhookPage(PageOut):
    data: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: int
    event_id: uuid.UUID = Field(description="The `webhook-id` header of every try.")
    campaign_id: uuid.UUID
    type: WebhookEvent
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending).")
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(description="The receiver's answer to the last try.")
    last_error: str | None = Field(description="Why the last try got no answer (timeout...).")
    delivered_at: datetime | None


class DeliveryPage(PageOut):
    data: list[DeliveryOut]


class DeliveryPageQuery(PageQuery):
    status: DeliveryStatus | None = None
