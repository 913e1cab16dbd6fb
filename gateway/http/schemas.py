"""Pydantic models of the HTTP bodies: they validate requests and generate /openapi.json."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema
from quart_schema.pydantic import File

from gateway.store.pages import PAGE_SIZE
from gateway.vocabulary import (
    AgentStatus,
    CampaignStatus,
    ContactStatus,
    HangupBy,
    Outcome,
    RejectionReason,
)

# Bounds of the numeric and time inputs (they show in /openapi.json). Each keeps the value
# inside its column's type: a value past one would otherwise reach PostgreSQL and fail there.
INT4_MAX = 2**31 - 1
# A retry more than 30 days after the call is not a retry any more; well inside int4.
MAX_RETRY_DELAY_SECONDS = 30 * 24 * 3600
# Contacts are addressed by a 32-bit position: page * PAGE_SIZE + PAGE_SIZE must fit.
MAX_PAGE = 1_000_000
assert (MAX_PAGE + 1) * PAGE_SIZE <= INT4_MAX
# How far ahead a start may be scheduled. Far enough for any real plan, and far from the
# end of Python's calendar (year 9999), which an offset like -05:00 on 9999-12-31 passes
# once converted to UTC.
MAX_SCHEDULE_AHEAD = timedelta(days=100 * 365)
# An agent's seats (the calls it takes at once): an AI agent platform's or an IVR's.
MAX_AGENT_CONCURRENT_CALLS = 10_000
_AGENT_CONCURRENT_CALLS = (
    "How many calls the agent takes at once (1 to 10,000), or null for no cap. Campaigns "
    "sharing the agent share its seats: no contact is dialed without a free one.")
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
_VARIABLE = re.compile(r"\{\{\s*([^{}\s][^{}]*?)\s*\}\}")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold U+0000: refuse it here, naming the field.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL (U+0000) characters")
        return value


def greeting_variables(greeting: str) -> list[str]:
    """The ``{{variables}}`` a greeting uses, in order of first use."""
    return list(dict.fromkeys(match.group(1) for match in _VARIABLE.finditer(greeting)))


def _check_greeting(value: str) -> str:
    leftover = _VARIABLE.sub("", value)
    if "{{" in leftover or "}}" in leftover:
        raise ValueError("has an unclosed or empty {{variable}}")
    return value


def _check_sip_uri(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"sips?:[^\s<>\"]+", value):
        raise ValueError("must be a sip: or sips: URI such as sip:agent@10.0.0.5:5060")
    return value


def _not_null(value: Any) -> Any:
    """For PATCH bodies: a field may be absent, but a null is only meaningful for some."""
    if value is None:
        raise ValueError("cannot be null")
    return value


class AgentCreate(Body):
    name: Name
    status: AgentStatus = AgentStatus.ACTIVE
    greeting: str = Field(
        "", max_length=10_000,
        description="Template; {{variables}} come from the contact's CSV columns.")
    sip_uri: str | None = Field(None, max_length=500,
                                description="Where a connected call is sent (optional).")
    max_concurrent_calls: int | None = Field(None, ge=1, le=MAX_AGENT_CONCURRENT_CALLS,
                                             description=_AGENT_CONCURRENT_CALLS)

    _greeting = field_validator("greeting")(_check_greeting)
    _sip_uri = field_validator("sip_uri")(_check_sip_uri)


class AgentUpdate(Body):
    """Only the fields present change; ``sip_uri: null`` and ``max_concurrent_calls: null``
    clear them."""

    name: Name | None = None
    status: AgentStatus | None = None
    greeting: str | None = Field(None, max_length=10_000)
    sip_uri: str | None = Field(None, max_length=500)
    max_concurrent_calls: int | None = Field(None, ge=1, le=MAX_AGENT_CONCURRENT_CALLS,
                                             description=_AGENT_CONCURRENT_CALLS)

    _greeting = field_validator("greeting")(lambda v: v if v is None else _check_greeting(v))
    _sip_uri = field_validator("sip_uri")(_check_sip_uri)

    _present = field_validator("name", "status", "greeting")(_not_null)


class AgentOut(BaseModel):
    id: uuid.UUID
    name: str
    status: AgentStatus
    greeting: str
    variables: list[str]
    sip_uri: str | None
    max_concurrent_calls: int | None = Field(description=_AGENT_CONCURRENT_CALLS)
    created_at: datetime
    updated_at: datetime


def normalise_e164(value: str) -> str:
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("must be a phone number in E.164 form, like +14155550100") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class PhoneNumberCreate(Body):
    number: str = Field(max_length=40, description="E.164, e.g. +14155550100")
    outbound_enabled: bool = True
    label: Label = ""

    _number = field_validator("number")(normalise_e164)


class PhoneNumberUpdate(Body):
    outbound_enabled: bool | None = None
    label: Label | None = None

    _present = field_validator("outbound_enabled", "label")(_not_null)


class PhoneNumberOut(BaseModel):
    id: uuid.UUID
    number: str
    outbound_enabled: bool
    label: str
    created_at: datetime
    updated_at: datetime


class CampaignFields(Body):
    """The non-file fields of ``POST /api/v1/campaigns`` (multipart/form-data)."""

    name: Name
    agent_id: uuid.UUID
    phone_number_id: uuid.UUID
    max_concurrent_calls: int = Field(5, ge=1, le=100)
    retries_per_contact: int = Field(0, ge=0, le=5)
    retry_delay_seconds: int = Field(
        300, ge=0, le=MAX_RETRY_DELAY_SECONDS,
        description="At least the configured minimum (60 s by default), at most 30 days "
                    f"({MAX_RETRY_DELAY_SECONDS} s).")
    scheduled_at: AwareDatetime | None = Field(
        None, description="RFC 3339 with a zone; in the future, and at most 100 years "
                          "(36,500 days) ahead.")

    @field_validator("scheduled_at")
    @classmethod
    def _within_calendar(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            in_utc = value.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00 is in year 10000 in UTC
            raise ValueError("is in the past; omit it to create a draft, or give a future "
                             "time" if value.year == 1 else
                             "must be at most 100 years (36,500 days) ahead") from None
        if in_utc > datetime.now(UTC) + MAX_SCHEDULE_AHEAD:
            raise ValueError("must be at most 100 years (36,500 days) ahead")
        return in_utc


class CampaignCreateForm(CampaignFields):
    contacts: File = Field(
        description="CSV with a phone_number column; other columns become custom_fields.")


class ContactCounts(BaseModel):
    total: int
    pending: int
    in_progress: int
    retry_pending: int
    completed: int
    failed: int
    skipped: int


class CampaignOut(BaseModel):
    id: uuid.UUID
    name: str
    agent_id: uuid.UUID
    phone_number_id: uuid.UUID
    status: CampaignStatus
    max_concurrent_calls: int
    retries_per_contact: int
    retry_delay_seconds: int
    scheduled_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    created_by: uuid.UUID | None = Field(description="The id of the API key that created it.")
    failure_reason: str | None
    contact_counts: ContactCounts


class RejectedRowOut(BaseModel):
    row: int = Field(description="1-based data row (the header is row 0).")
    reason: RejectionReason
    message: str


class RejectedCounts(BaseModel):
    """Every rejected row of the file, by reason (they add up to ``rows_rejected``)."""

    empty: int = 0
    invalid_number: int = 0
    duplicate: int = 0
    column_count: int = 0


class ImportReport(BaseModel):
    rows_accepted: int
    rows_rejected: int = Field(description="Every rejected row, listed or not.")
    columns: list[str]
    rejected: list[RejectedRowOut] = Field(
        description="The first 1,000 rejected rows, in file order (see rejected_truncated).")
    rejected_counts: RejectedCounts
    rejected_truncated: bool = Field(
        description="True when more rows were rejected than `rejected` lists.")
    delimiter: Literal[",", ";", "\t"] = Field(
        ",", description="The delimiter the header row was read with.")
    warnings: list[str]


class CampaignCreated(CampaignOut):
    import_report: ImportReport


class ContactOut(BaseModel):
    id: uuid.UUID
    row_number: int
    phone_number: str
    custom_fields: dict[str, str]
    status: ContactStatus
    attempts: int
    last_outcome: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None


class CallOut(BaseModel):
    id: uuid.UUID = Field(description="The attempt's id (also the call id in logs).")
    contact_id: uuid.UUID
    phone_number: str
    attempt: int = Field(description="1 for the first dial, 2 for the first retry...")
    outcome: Outcome | None = Field(description="null while the call is live.")
    dialed_at: datetime
    answered_at: datetime | None = Field(description="When the contact answered.")
    connected_at: datetime | None = Field(
        description="When the agent leg was up (the contact connected to the agent); null "
                    "for a call that never got that far (agent_unavailable among them).")
    ended_at: datetime | None
    duration_seconds: float | None = Field(description="Talk time, answer to hang-up.")
    hangup_by: HangupBy | None = Field(
        description="Who ended an answered call: contact, agent, or gateway (max call time, "
                    "a shutdown, an agent leg that could not be set up); null otherwise.")
    sip_call_id: str | None
    sip_status: int | None = Field(description="Final SIP status code (SIP adapter only).")
    agent_sip_status: int | None = Field(
        description="The agent's final SIP status code (SIP adapter only).")
    agent_sip_call_id: str | None = Field(
        description="The agent leg's SIP Call-ID (SIP adapter only).")


class PageQuery(Body):
    page: int = Field(0, ge=0, le=MAX_PAGE,
                      description=f"Zero-based page of {PAGE_SIZE}; at most {MAX_PAGE}.")


class CampaignPageQuery(PageQuery):
    status: CampaignStatus | None = None


class ContactPageQuery(PageQuery):
    status: ContactStatus | None = None


class PageOut(BaseModel):
    page: int
    page_size: int
    total: int
    has_more: bool


class AgentPage(PageOut):
    data: list[AgentOut]


class PhoneNumberPage(PageOut):
    data: list[PhoneNumberOut]


class CampaignPage(PageOut):
    data: list[CampaignOut]


class ContactPage(PageOut):
    data: list[ContactOut]


class CallPage(PageOut):
    data: list[CallOut]


class CallLimits(BaseModel):
    concurrent_max: int = Field(
        description="Live calls at once across the account; 0 blocks dialing.")
    calls_per_minute: int = Field(description="Dials per minute; 0 blocks dialing.")
    daily_calls_max: int | None = Field(description="Dials per UTC day; null: unlimited.")
    daily_minutes_max: int | None = Field(description="Talk minutes per UTC day; null: unlimited.")


class ErrorDetail(BaseModel):
    code: str = Field(description="validation_error, unauthorized, not_found, conflict, "
                      "payload_too_large, unsupported_media_type, service_unavailable...")
    message: str = Field(description="For a 400 naming a field, starts with the field.")
    # None only while absent: it is left out of the body then, so the schema says string.
    field: SkipJsonSchema[None] | str = Field(
        None, description="The offending input, when there is one.")


class ErrorOut(BaseModel):
    error: ErrorDetail


class HealthOut(BaseModel):
    status: Literal["ok"]
