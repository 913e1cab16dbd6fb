"""Pydantic models of the HTTP bodies: they validate requests and generate /openapi.json."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import phonenumbers
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import InitErrorDetails, PydanticCustomError
from quart_schema.pydantic import File

from gateway.store.pages import PAGE_SIZE
from gateway.vocabulary import (
    MAX_ATTEMPTS,
    POLICY_OUTCOMES,
    WEEKDAYS,
    AgentStatus,
    CampaignStatus,
    ContactStatus,
    Disposition,
    HangupBy,
    Outcome,
    RejectionReason,
)
from gateway.windows import CallingWindow, WindowError

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


def _invalid(part: str, message: str, value: Any) -> ValidationError:
    """A validation error at ``part`` of the value a validator is given (``""``: the value
    itself). Raised inside a validator, pydantic puts the value's own place in front, so the
    400 names ``calling_window.start`` or ``retry_policy.busy``."""
    error = PydanticCustomError("invalid", "{message}", {"message": message})
    return ValidationError.from_exception_data(
        "invalid", [InitErrorDetails(type=error, loc=(part,) if part else (), input=value)])


def _json_text(value: Any) -> Any:
    """A form field's JSON text, decoded (multipart fields are text; JSON bodies are not)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except RecursionError:
        raise ValueError("is JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"must be JSON text ({exc.msg} at character {exc.pos})") from None
    except ValueError:  # an integer past Python's digit limit
        raise ValueError("must be JSON text with numbers of at most 4,300 digits") from None


_WINDOW_EXAMPLE: dict[str, Any] = {"days": ["mon", "tue", "wed", "thu", "fri"],
                                   "start": "09:00", "end": "20:00"}
_HHMM = "([01][0-9]|2[0-3]):[0-5][0-9]"
Weekday = Annotated[str, Field(json_schema_extra={"enum": list(WEEKDAYS)})]


class CallingWindowOut(BaseModel):
    """When contacts may be called, in each contact's local time (the zones of its number,
    or the CSV's timezone column): on ``days``, from ``start`` to ``end``. A number that
    spans zones is called only while the window is open in all of them."""

    model_config = ConfigDict(json_schema_extra={"examples": [_WINDOW_EXAMPLE]})

    days: list[Weekday] = Field(
        min_length=1, max_length=len(WEEKDAYS), json_schema_extra={"uniqueItems": True},
        description="Days of the week, each once (shown in week order, Monday first).")
    start: str = Field(pattern=f"^{_HHMM}$",
                       description='Local time the window opens, "00:00" to "23:59".')
    end: str = Field(pattern=f"^({_HHMM}|24:00)$",
                     description='Local time it closes (not included), after start: "00:01" '
                                 'to "24:00" (the end of the day; no window runs past '
                                 'midnight).')


class CallingWindowIn(CallingWindowOut):
    """When contacts may be called, in each contact's local time: on ``days``, from
    ``start`` to ``end``. Stored as given, days in week order."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, value: Any) -> Any:
        # One definition of a valid window (gateway.windows, which the claim's SQL mirrors);
        # what is stored is its canonical JSON: days in week order.
        if isinstance(value, CallingWindowOut):
            return value
        try:
            return CallingWindow.parse(value).to_json()
        except WindowError as exc:
            raise _invalid(exc.field, exc.message, value) from None


def _known_keys(value: Any, keys: tuple[str, ...], what: str, example: str) -> None:
    if not isinstance(value, Mapping):
        raise _invalid("", f"must be an object such as {example}", value)
    for key in value:
        if key not in keys:
            raise _invalid(str(key)[:40], f"is not {what}; they are {', '.join(keys)}", value)


def _no_default(schema: dict[str, Any]) -> None:
    # An absent key has no value the document could show as its default: it means "as the
    # campaign's retries_per_contact and retry_delay_seconds say".
    schema.pop("default", None)


def _optional(description: str) -> Any:
    """An optional key: absent, not null (null is refused), and left out when absent."""
    return Field(None, exclude_if=lambda value: value is None, json_schema_extra=_no_default,
                 description=description)


class RetryRule(Body):
    """How contacts are retried after one outcome."""

    delay_seconds: Annotated[StrictInt, Field(ge=0, le=MAX_RETRY_DELAY_SECONDS)] = _optional(
        "Seconds after the call before the next attempt, from the configured minimum (60 s "
        f"by default) to 30 days ({MAX_RETRY_DELAY_SECONDS} s). Absent: the campaign's "
        "retry_delay_seconds.")
    max_attempts: Annotated[StrictInt, Field(ge=1, le=MAX_ATTEMPTS)] = _optional(
        f"Attempts in all, the first dial included (1 to {MAX_ATTEMPTS}). Absent: 1 + the "
        "campaign's retries_per_contact.")

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        if not isinstance(value, RetryRule):
            _known_keys(value, ("delay_seconds", "max_attempts"), "a field of a retry rule",
                        '{"delay_seconds": 600, "max_attempts": 3}')
        return value


class _RetryPolicyBase(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"no_answer": {"delay_seconds": 3600, "max_attempts": 3},
         "busy": {"delay_seconds": 600}}]})

    @model_validator(mode="before")
    @classmethod
    def _outcomes(cls, value: Any) -> Any:
        if not isinstance(value, _RetryPolicyBase):
            _known_keys(value, POLICY_OUTCOMES, "an outcome a retry policy takes",
                        '{"no_answer": {"delay_seconds": 3600, "max_attempts": 3}}')
        return value


# Its keys are the vocabulary's POLICY_OUTCOMES, so its fields are made from them (mypy sees
# the base).
if TYPE_CHECKING:
    RetryPolicy = _RetryPolicyBase
else:
    RetryPolicy = create_model(
        "RetryPolicy", __base__=_RetryPolicyBase,
        __doc__="Retries by outcome: an outcome absent here, or a key absent from its rule, "
                "follows the campaign's retries_per_contact and retry_delay_seconds. "
                "voicemail: an answered call the agent marked so.",
        **{outcome: (RetryRule, _optional(f"How contacts are retried after {outcome}."))
           for outcome in map(str, POLICY_OUTCOMES)})


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
    # JSON text in the form (an object part, as OpenAPI encodes one in multipart).
    calling_window: Annotated[CallingWindowIn | None, BeforeValidator(_json_text)] = Field(
        None, description="JSON: when its contacts may be called, in their local time. "
                          "Absent or null: the account's window (GET /api/v1/settings), if "
                          "any.")
    retry_policy: Annotated[RetryPolicy, BeforeValidator(_json_text)] = Field(
        default_factory=RetryPolicy,
        description="JSON: retries by outcome. Absent: retries_per_contact and "
                    "retry_delay_seconds for every outcome.")

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
    calling_window: CallingWindowOut | None = Field(
        description="The campaign's own window; null: the account's (GET /api/v1/settings) "
                    "applies, if it has one.")
    retry_policy: RetryPolicy = Field(description="Retries by outcome ({}: none).")
    waiting_for_window: int = Field(
        description="Contacts due now (new ones, and retries whose time has come) but "
                    "outside their calling window now.")


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
    do_not_call: int = 0
    invalid_timezone: int = 0


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
    last_outcome: str | None = Field(
        description="The outcome of the last attempt (one of Outcome), or do_not_call for a "
                    "contact skipped because its number was on the do-not-call list.")
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    disposition: Disposition | None = Field(
        description="How the agent said the contact's latest answered call went; null "
                    "when it has not said.")


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
    disposition: Disposition | None = Field(
        description="How the agent said the call went (the API, or X-Disposition on its "
                    "BYE); null when it has not said.")
    callback_at: datetime | None = Field(
        description="With the callback disposition: when the contact is called again.")
    disposition_notes: str | None = Field(description="The agent's notes on the call.")


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


class AccountSettingsOut(BaseModel):
    calling_window: CallingWindowOut | None = Field(
        description="The window of the account's campaigns that have none of their own; "
                    "null: none (they call at any hour).")


class AccountSettingsUpdate(Body):
    """Only the settings present change; ``calling_window: null`` clears the window."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    calling_window: CallingWindowIn | None = Field(
        None, description="The account's default calling window, or null for none.")


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


class ContactExportQuery(Body):
    status: ContactStatus | None = Field(None, description="Only the contacts of this status.")


class CallExportQuery(Body):
    outcome: Outcome | None = Field(None, description="Only the attempts that ended so.")


# Idempotency-Key: 1 to 255 printable ASCII characters (HTTP drops a value's leading and
# trailing spaces, so the document asks for a visible first and last one).
IDEMPOTENCY_KEY_MAX_CHARS = 255


class IdempotencyHeaders(BaseModel):
    """The header every POST under /api/v1 takes (gateway/http/idempotency.py)."""

    idempotency_key: SkipJsonSchema[None] | Annotated[str, StringConstraints(
        min_length=1, max_length=IDEMPOTENCY_KEY_MAX_CHARS,
        pattern=r"^[!-~]([ -~]*[!-~])?$")] = Field(
        None, json_schema_extra=_no_default,
        description="Makes the request safe to retry: within 24 hours, the same request "
                    "with the same key (per account) gets the first answer again, with "
                    "`Idempotent-Replayed: true`, and is not acted on twice; another "
                    "request with the key is a 409 `idempotency_key_reused`. 1 to 255 "
                    "printable ASCII characters, e.g. a UUID.")


class RerunIn(Body):
    """A new draft campaign from some of a finished campaign's contacts."""

    statuses: list[ContactStatus] = Field(
        min_length=1, max_length=len(ContactStatus),
        description="The contacts to call again, by their status in the source campaign "
                    "(e.g. [\"failed\", \"skipped\"]).")
    name: Name | None = Field(
        None, description="The new campaign's name; absent: the source's name followed by "
                          "\" (rerun)\" (shortened to fit 200 characters).")
