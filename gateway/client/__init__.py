"""Python SDK of the gateway's REST API.

    from gateway.client import Client

    with Client(base_url="http://127.0.0.1:8080", api_key="gw_...") as client:
        agent = client.agents.create("Ava", greeting="Hi {{first_name}}")
        number = client.phone_numbers.create("+14155550100", label="main line")
        with open("contacts.csv", "rb") as f:
            campaign = client.campaigns.create(
                name="Q4 follow-ups", agent_id=agent["id"], phone_number_id=number["id"],
                contacts=f, max_concurrent_calls=5)
        client.campaigns.start(campaign["id"])
        for snapshot in client.campaigns.stream_events(campaign["id"]):
            print(snapshot["status"], snapshot["completed"], "/", snapshot["total"])

**Return values** are the API's JSON as plain ``dict``/``list`` (``campaign["id"]``),
exactly the shapes documented in the README and ``/openapi.json``; deletes return None.
Each shape is a ``TypedDict`` of ``gateway.client.types`` (re-exported here): ``Campaign``
(with its ``CallingWindow`` and its ``RetryRule`` by outcome), ``CreatedCampaign`` (with its
``ImportReport``), ``Contact``, ``CallAttempt``, ``Agent``, ``PhoneNumber``, ``DncEntry``,
``DncAdded``, ``DncUploadReport``, ``CallLimits``, ``AccountSettings``, ``Snapshot``;
statuses, outcomes and dispositions are the words of
``gateway.vocabulary``. Lists return one page, a ``Page[Agent]`` and so on: ``{"data",
"page", "page_size", "total", "has_more"}``; the ``iter_*`` generators walk every page.
Wherever an object is named, its id (str or UUID) or the object's dict itself is accepted:
``client.campaigns.start(campaign)``.

**Resources** (the same on ``Client`` and ``AsyncClient``; on the latter every method is a
coroutine and the generators are async generators):

- ``client.campaigns``: ``create(name, agent_id, phone_number_id, contacts,
  max_concurrent_calls=None, retries_per_contact=None, retry_delay_seconds=None,
  scheduled_at=None, calling_window=None, retry_policy=None)`` (``contacts``: binary file,
  bytes or path; ``scheduled_at``: RFC 3339 str or aware datetime; ``calling_window``:
  ``{"days": [...], "start": "HH:MM", "end": "HH:MM"}``; ``retry_policy``: ``{outcome:
  {"delay_seconds"?, "max_attempts"?}}``), ``get``, ``list(status=None, page=0)``,
  ``start``, ``pause``, ``resume``, ``stop``, ``delete``, ``contacts(id, status=None, page=0)``,
  ``calls(id, page=0)``, ``iter_contacts(id, status=None)``, ``iter_calls(id)``,
  ``iter_campaigns(status=None)``, ``stream_events(id)``, ``export(id, what="contacts",
  format="csv", status=None, outcome=None)`` (every contact, or with ``what="calls"`` every
  call attempt, as CSV or ``"jsonl"``: an iterator of the body's bytes as they arrive) and
  ``export_to(id, path_or_binary_file, ...)`` (the same written to a file; returns the
  bytes written; a path is removed if the export is cut).
- ``client.agents``: ``create(name, status=None, greeting=None, sip_uri=None,
  max_concurrent_calls=None)``, ``get``, ``list(page=0)``, ``update`` (only the fields
  passed; ``sip_uri=None`` or ``max_concurrent_calls=None`` clears it), ``delete``,
  ``iter_agents()``.
- ``client.phone_numbers``: ``create(number, outbound_enabled=None, label=None)``, ``get``,
  ``list(page=0)``, ``update(id, outbound_enabled=..., label=...)`` (only the fields
  passed), ``delete``, ``iter_phone_numbers()``.
- ``client.dnc``: the do-not-call list: ``add(numbers)`` (1 to 10,000; E.164 or national),
  ``upload(csv)`` (binary file, bytes or path; a ``phone_number`` column), ``list(page=0,
  number=None)``, ``delete(number)``, ``iter_dnc()``.
- ``client.calls``: one call by its id (a ``CallAttempt``'s ``id``):
  ``disposition(call, disposition, callback_at=None, notes=None)`` (``callback_at``: RFC 3339
  str or aware datetime, with ``callback`` only); returns the call.
- ``client.settings``: the account's settings: ``get()``, ``update(calling_window=...)``
  (only what is passed changes; ``calling_window=None`` clears the account's window).
- ``client.call_limits()``: the account's caps (a method, not a resource).

**Events**: ``stream_events(id)`` yields each metrics snapshot (a ``Snapshot``) and returns after
the server's ``end`` event, which follows the last snapshot and is not yielded itself.
Heartbeats are skipped. A stream that closes without ``end`` (a restart, a dead link)
connects again by itself with ``Last-Event-ID`` and goes on; after
``stream_events(id, max_reconnects=5)`` failed attempts in a row it raises
``APIConnectionError`` (code ``stream_closed``).

**Retries**: a request that fails in a way safe to repeat (refused, cut, timed out, a 503,
a 429 with ``Retry-After``, a proxy's 502 or 504 except for PATCH) is sent again, up to
``Client(..., max_retries=3)`` times (0: never), after the server's ``Retry-After`` (at
most 30 s) or a jittered exponential backoff; then its last error raises. Every POST
carries an ``Idempotency-Key`` (random, the same on each retry); ``with
idempotency_key("my-key"): client.campaigns.create(...)`` gives the POST inside the block a
key of your own. A key reused with another body is a ``ConflictError`` with code
``idempotency_key_reused``.

**Errors** (``gateway.client.errors``, all re-exported here): ``GatewayError`` and one class
per status: ``ValidationError`` 400 (``.field``), ``AuthenticationError`` 401,
``PermissionDeniedError`` 403, ``NotFoundError`` 404, ``ConflictError`` 409,
``PayloadTooLargeError`` 413, ``RateLimitError`` 429, ``ServiceUnavailableError`` 503
(``.retry_after``), ``ServerError`` other 5xx; ``APIConnectionError`` / ``APITimeoutError``
when no response came. Each has ``status_code``, ``code``, ``message``, ``field`` and
``response``.
"""

from gateway.client._async import AsyncClient
from gateway.client._common import ExportFormat, ExportWhat, idempotency_key
from gateway.client._sync import Client
from gateway.client.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    GatewayError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    ValidationError,
)
from gateway.client.types import (
    AccountSettings,
    Agent,
    AgentStatusValue,
    CallAttempt,
    CallingWindow,
    CallLimits,
    Campaign,
    CampaignStatusValue,
    Contact,
    ContactCounts,
    ContactStatusValue,
    CreatedCampaign,
    Delimiter,
    DispositionCounts,
    DispositionValue,
    DncAdded,
    DncEntry,
    DncRejectedCounts,
    DncSourceValue,
    DncUploadReport,
    EndEvent,
    ImportReport,
    LastOutcomeValue,
    OutcomeCounts,
    OutcomeValue,
    Page,
    PhoneNumber,
    RejectedCounts,
    RejectedRow,
    RejectionReasonValue,
    RetryRule,
    Snapshot,
    WeekdayValue,
)

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AccountSettings",
    "Agent",
    "AgentStatusValue",
    "AsyncClient",
    "AuthenticationError",
    "CallAttempt",
    "CallLimits",
    "CallingWindow",
    "Campaign",
    "CampaignStatusValue",
    "Client",
    "ConflictError",
    "Contact",
    "ContactCounts",
    "ContactStatusValue",
    "CreatedCampaign",
    "Delimiter",
    "DispositionCounts",
    "DispositionValue",
    "DncAdded",
    "DncEntry",
    "DncRejectedCounts",
    "DncSourceValue",
    "DncUploadReport",
    "EndEvent",
    "ExportFormat",
    "ExportWhat",
    "GatewayError",
    "ImportReport",
    "LastOutcomeValue",
    "NotFoundError",
    "OutcomeCounts",
    "OutcomeValue",
    "Page",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PhoneNumber",
    "RateLimitError",
    "RejectedCounts",
    "RejectedRow",
    "RejectionReasonValue",
    "RetryRule",
    "ServerError",
    "ServiceUnavailableError",
    "Snapshot",
    "ValidationError",
    "WeekdayValue",
    "idempotency_key",
]
