"""What the SDK's methods return: the API's JSON objects, as typed dicts (``TypedDict``).

At run time they are plain dicts (``campaign["id"]``); the types tell a type checker and an
editor which keys each one has. Ids are UUID strings; times are RFC 3339 strings (UTC,
``Z``) or None. ``tests/test_sdk_types.py`` checks the keys against the live API.

The status and outcome words are those of ``gateway.vocabulary``: ``CampaignStatusValue``
is the text of a ``CampaignStatus`` member, and so on. They are ``Literal`` types, so a
checker knows the words; the members are ``str``, so ``campaign["status"] ==
CampaignStatus.RUNNING`` holds as well. ``tests/test_sdk_types.py`` checks that each
``Literal`` lists exactly its enum's values, in order.

A campaign's ``calling_window`` and ``retry_policy`` read back as the server stored them:
the window's days in week order, the policy with only the outcomes and keys it was given.
"""

from __future__ import annotations

from typing import Generic, Literal, TypedDict, TypeVar

__all__ = [
    "AccountSettings",
    "Agent",
    "AgentStatusValue",
    "CallAttempt",
    "CallLimits",
    "CallingWindow",
    "Campaign",
    "CampaignStatusValue",
    "Contact",
    "ContactCounts",
    "ContactStatusValue",
    "CreatedCampaign",
    "CreatedWebhook",
    "Delimiter",
    "DeliveryStatusValue",
    "DispositionCounts",
    "DispositionValue",
    "DncAdded",
    "DncEntry",
    "DncRejectedCounts",
    "DncSourceValue",
    "DncUploadReport",
    "EndEvent",
    "HangupByValue",
    "ImportReport",
    "LastOutcomeValue",
    "OutcomeCounts",
    "OutcomeValue",
    "Page",
    "PhoneNumber",
    "RejectedCounts",
    "RejectedRow",
    "RejectionReasonValue",
    "RetryRule",
    "Snapshot",
    "Webhook",
    "WebhookDelivery",
    "WebhookEventValue",
    "WeekdayValue",
]

# The words of gateway.vocabulary, as the JSON spells them.
CampaignStatusValue = Literal["draft", "scheduled", "running", "paused", "completed", "failed"]
ContactStatusValue = Literal["pending", "in_progress", "retry_pending", "completed", "failed",
                             "skipped"]
AgentStatusValue = Literal["active", "inactive"]
OutcomeValue = Literal["answered", "busy", "no_answer", "failed", "invalid_number",
                       "interrupted", "agent_unavailable"]
# A contact's last_outcome: an Outcome, or do_not_call for a contact skipped because its
# number was on the do-not-call list when its turn came (it was never dialed).
LastOutcomeValue = Literal["answered", "busy", "no_answer", "failed", "invalid_number",
                           "interrupted", "agent_unavailable", "do_not_call"]
HangupByValue = Literal["contact", "agent", "gateway"]
RejectionReasonValue = Literal["empty", "invalid_number", "duplicate", "column_count",
                               "do_not_call", "invalid_timezone"]
DncSourceValue = Literal["api", "upload", "disposition"]
DispositionValue = Literal["completed", "voicemail", "callback", "do_not_call",
                           "not_interested"]
WeekdayValue = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# The delimiters a contacts file may use (the header row decides).
Delimiter = Literal[",", ";", "\t"]

Item = TypeVar("Item")


class Page(TypedDict, Generic[Item]):
    """One page of a list, ``Page[Agent]`` and so on: at most ``page_size`` items of
    ``total``; ``has_more``: a next page exists."""

    data: list[Item]
    page: int
    page_size: int
    total: int
    has_more: bool


class Agent(TypedDict):
    id: str
    name: str
    status: AgentStatusValue
    greeting: str
    variables: list[str]  # the greeting's {{variables}}, in order of first use
    sip_uri: str | None
    max_concurrent_calls: int | None  # the calls it takes at once; None: no cap
    created_at: str
    updated_at: str


class PhoneNumber(TypedDict):
    id: str
    number: str  # E.164
    outbound_enabled: bool
    label: str
    created_at: str
    updated_at: str


class ContactCounts(TypedDict):
    """A campaign's contacts by status (``total``: all of them)."""

    total: int
    pending: int
    in_progress: int
    retry_pending: int
    completed: int
    failed: int
    skipped: int


class CallingWindow(TypedDict):
    """When contacts may be called, in each contact's local time: on ``days``, from
    ``start`` (``"00:00"`` to ``"23:59"``) to ``end`` (``"00:01"`` to ``"24:00"``, after
    start; not included). A number that spans zones is called only while the window is
    open in all of them."""

    days: list[WeekdayValue]  # each once, in week order (Monday first)
    start: str  # "HH:MM"
    end: str  # "HH:MM"


class RetryRule(TypedDict, total=False):
    """How a campaign retries contacts after one outcome; a key left out follows the
    campaign's ``retry_delay_seconds`` / ``retries_per_contact``."""

    delay_seconds: int  # after the call, before the next attempt
    max_attempts: int  # attempts in all, the first dial included (1 to 6)


class AccountSettings(TypedDict):
    """The account's settings (``settings.get``): what its campaigns inherit."""

    calling_window: CallingWindow | None  # for campaigns with none of their own


class Campaign(TypedDict):
    id: str
    name: str
    agent_id: str
    phone_number_id: str
    status: CampaignStatusValue
    max_concurrent_calls: int
    retries_per_contact: int
    retry_delay_seconds: int
    scheduled_at: str | None
    started_at: str | None
    completed_at: str | None
    created_at: str
    updated_at: str
    created_by: str | None  # the id of the API key that created it
    failure_reason: str | None
    contact_counts: ContactCounts
    calling_window: CallingWindow | None  # its own; None: the account's (if any) applies
    # By outcome (busy, no_answer, failed, agent_unavailable, voicemail); {}: none.
    retry_policy: dict[str, RetryRule]
    waiting_for_window: int  # contacts due now but outside their calling window


class RejectedRow(TypedDict):
    row: int  # 1-based data row (the header is row 0)
    reason: RejectionReasonValue
    message: str


class RejectedCounts(TypedDict):
    """Every rejected row of the file, by reason (they add up to ``rows_rejected``)."""

    empty: int
    invalid_number: int
    duplicate: int
    column_count: int
    do_not_call: int
    invalid_timezone: int


class ImportReport(TypedDict):
    """What became of the contacts file's rows."""

    rows_accepted: int
    rows_rejected: int  # every rejected row, listed or not
    columns: list[str]
    rejected: list[RejectedRow]  # the first 1,000, in file order
    rejected_counts: RejectedCounts
    rejected_truncated: bool  # more rows were rejected than ``rejected`` lists
    delimiter: Delimiter  # the one the header row was read with
    warnings: list[str]


class CreatedCampaign(Campaign):
    """What ``campaigns.create`` returns: the campaign and its import report."""

    import_report: ImportReport


class Contact(TypedDict):
    id: str
    row_number: int
    phone_number: str  # E.164
    custom_fields: dict[str, str]  # the CSV's other columns
    status: ContactStatusValue
    attempts: int
    last_outcome: LastOutcomeValue | None
    last_attempt_at: str | None
    next_attempt_at: str | None
    disposition: DispositionValue | None  # what the agent said of its latest answered call


class CallAttempt(TypedDict):
    """One dial of a contact (``campaigns.calls``)."""

    id: str  # also the call id in the gateway's logs
    contact_id: str
    phone_number: str
    attempt: int  # 1 for the first dial, 2 for the first retry...
    outcome: OutcomeValue | None  # None while the call is live
    dialed_at: str
    answered_at: str | None  # when the contact answered
    connected_at: str | None  # when the agent leg was up (None for agent_unavailable)
    ended_at: str | None
    duration_seconds: float | None  # talk time, answer to hang-up
    hangup_by: HangupByValue | None  # who ended an answered call
    sip_call_id: str | None
    sip_status: int | None  # the final SIP status code (SIP adapter only)
    agent_sip_status: int | None  # the agent's final SIP status code (SIP adapter only)
    agent_sip_call_id: str | None  # the agent leg's Call-ID (SIP adapter only)
    disposition: DispositionValue | None  # how the agent said it went (None: not said)
    callback_at: str | None  # with the callback disposition: when it is called again
    disposition_notes: str | None  # the agent's notes


class DncEntry(TypedDict):
    """A number on the do-not-call list (``dnc.list``)."""

    number: str  # E.164
    source: DncSourceValue  # api (JSON), upload (CSV), disposition (an agent's do_not_call)
    created_at: str


class DncAdded(TypedDict):
    """What ``dnc.add`` returns: ``added + already_listed`` is the number of items given
    (an item repeating an earlier one counts as already listed)."""

    added: int
    already_listed: int


class DncRejectedCounts(TypedDict):
    """Every rejected row of a do-not-call upload, by reason."""

    empty: int
    invalid_number: int
    duplicate: int
    column_count: int


class DncUploadReport(TypedDict):
    """What ``dnc.upload`` returns: the distinct valid numbers added or listed already,
    and the rows that were not taken (a row repeating an earlier one is a duplicate)."""

    added: int
    already_listed: int
    rows_rejected: int  # every rejected row, listed or not
    rejected: list[RejectedRow]  # the first 1,000, in file order
    rejected_counts: DncRejectedCounts


class CallLimits(TypedDict):
    """The account's caps (``call_limits()``); 0 blocks dialing, None is unlimited."""

    concurrent_max: int
    calls_per_minute: int
    daily_calls_max: int | None
    daily_minutes_max: int | None


class OutcomeCounts(TypedDict):
    """A campaign's finished call attempts, by outcome."""

    answered: int
    busy: int
    no_answer: int
    failed: int
    invalid_number: int
    interrupted: int
    agent_unavailable: int


class DispositionCounts(TypedDict):
    """A campaign's calls by the disposition the agent gave them."""

    completed: int
    voicemail: int
    callback: int
    do_not_call: int
    not_interested: int


class Snapshot(TypedDict):
    """A campaign's live metrics: what ``campaigns.stream_events`` yields. The contact
    counts are by status, as in ``ContactCounts``."""

    campaign_id: str
    status: CampaignStatusValue
    total: int
    pending: int
    in_progress: int
    retry_pending: int
    completed: int
    failed: int
    skipped: int
    in_flight: int  # calls live now
    ringing: int  # live calls not answered yet (0 from a gateway that is not dialing)
    connected: int  # live calls connected to the agent (likewise)
    attempts: int  # every call attempt so far, live ones included
    outcomes: OutcomeCounts
    waiting_for_window: int  # contacts due now but outside their calling window
    dispositions: DispositionCounts
    max_concurrent_calls: int
    started_at: str | None
    completed_at: str | None
    updated_at: str  # when the snapshot was taken


class EndEvent(TypedDict):
    """The data of the stream's last event (``event: end``; ``stream_events`` returns at
    it and does not yield it): the campaign's terminal status, or ``deleted``."""

    campaign_id: str
    status: str


WebhookEventValue = Literal["call.ended", "contact.finished", "campaign.started",
                            "campaign.paused", "campaign.resumed", "campaign.completed",
                            "campaign.failed"]
DeliveryStatusValue = Literal["pending", "delivered", "abandoned"]


class Webhook(TypedDict):
    """An endpoint receiving the account's events (``webhooks.get``, ``webhooks.list``)."""

    id: str
    url: str
    description: str | None
    events: list[WebhookEventValue]
    status: Literal["active", "disabled"]
    created_at: str
    failing_since: str | None  # the first failed delivery since the last success
    disabled_at: str | None
    disabled_reason: str | None  # why it was disabled (a day of failures)


class CreatedWebhook(Webhook):
    """What ``webhooks.create`` returns: the endpoint and its signing secret, shown once."""

    secret: str  # whsec_...: verify deliveries with any Standard Webhooks library


class WebhookDelivery(TypedDict):
    """One event sent (or to be sent) to an endpoint, with its last try."""

    id: int
    event_id: str  # the webhook-id header
    campaign_id: str
    type: WebhookEventValue
    status: DeliveryStatusValue
    attempts: int
    created_at: str
    next_attempt_at: str | None
    last_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: str | None
