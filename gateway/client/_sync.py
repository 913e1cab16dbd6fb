"""``Client``: the blocking client, on ``httpx.Client``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
from httpx_sse import connect_sse

from gateway.client._common import (
    DEFAULT_MAX_RECONNECTS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    END,
    STREAM_READ_TIMEOUT,
    Attempts,
    Blocking,
    Call,
    ExportFormat,
    ExportTarget,
    ExportWhat,
    Reconnects,
    Ref,
    check_export,
    check_max,
    check_stream,
    decode_event,
    export_call,
    export_chunks,
    export_writer,
    http_options,
    stream_kwargs,
)
from gateway.client._resources import (
    AgentsResource,
    CallsResource,
    CampaignsResource,
    ClientBase,
    DncResource,
    PhoneNumbersResource,
    SettingsResource,
    WebhooksResource,
)
from gateway.client.errors import GatewayError, map_transport_errors
from gateway.client.types import (
    Agent,
    CallAttempt,
    Campaign,
    CampaignStatusValue,
    Contact,
    ContactStatusValue,
    DeliveryStatusValue,
    DncEntry,
    OutcomeValue,
    Page,
    PhoneNumber,
    Snapshot,
    Webhook,
    WebhookDelivery,
)
from gateway.vocabulary import CampaignStatus, ContactStatus, DeliveryStatus, Outcome

Item = TypeVar("Item")


def _walk(fetch: Callable[[int], Page[Item]]) -> Iterator[Item]:
    """Every item of every page ``fetch(page)`` returns, from page 0 until ``has_more``
    is false."""
    page = 0
    while True:
        body = fetch(page)
        yield from body["data"]
        if not body["has_more"]:
            return
        page += 1


class Agents(AgentsResource[Blocking]):
    def iter_agents(self) -> Iterator[Agent]:
        """Every agent (oldest first), page after page."""
        return _walk(lambda page: self.list(page=page))


class PhoneNumbers(PhoneNumbersResource[Blocking]):
    def iter_phone_numbers(self) -> Iterator[PhoneNumber]:
        """Every phone number (oldest first), page after page."""
        return _walk(lambda page: self.list(page=page))


class Webhooks(WebhooksResource[Blocking]):
    def iter_webhooks(self) -> Iterator[Webhook]:
        """Every webhook endpoint (oldest first), page after page."""
        return _walk(lambda page: self.list(page=page))

    def iter_deliveries(self, webhook: Ref, status: DeliveryStatus | DeliveryStatusValue
                        | None = None) -> Iterator[WebhookDelivery]:
        """Every delivery of an endpoint (newest first), page after page."""
        return _walk(lambda page: self.deliveries(webhook, page=page, status=status))


class Dnc(DncResource[Blocking]):
    def iter_dnc(self) -> Iterator[DncEntry]:
        """Every number on the do-not-call list (number order), page after page."""
        return _walk(lambda page: self.list(page=page))


class Campaigns(CampaignsResource[Blocking]):
    def __init__(self, client: Client) -> None:
        super().__init__(client._send)
        self._client = client

    def iter_contacts(self, campaign: Ref,
                      status: ContactStatus | ContactStatusValue | None = None
                      ) -> Iterator[Contact]:
        """Every contact (optionally of one status), page after page."""
        yield from _walk(lambda page: self.contacts(campaign, status=status, page=page))

    def iter_calls(self, campaign: Ref) -> Iterator[CallAttempt]:
        """Every call attempt, page after page."""
        yield from _walk(lambda page: self.calls(campaign, page=page))

    def iter_campaigns(self, status: CampaignStatus | CampaignStatusValue | None = None
                       ) -> Iterator[Campaign]:
        """Every campaign (newest first), page after page."""
        yield from _walk(lambda page: self.list(status=status, page=page))

    def export(self, campaign: Ref, what: ExportWhat = "contacts",
               format: ExportFormat = "csv",
               status: ContactStatus | ContactStatusValue | None = None, *,
               outcome: Outcome | OutcomeValue | None = None) -> Iterator[bytes]:
        """Every contact (``what="contacts"``, of one ``status`` if given) or call attempt
        (``"calls"``, of one ``outcome`` if given) of the campaign, as CSV or JSON lines
        (``format="jsonl"``): yields the body's bytes as they arrive (chunks of any size,
        not lines), so memory stays small whatever the campaign's size.

        The request is sent at the first ``next()`` and retried like any call until the
        answer starts; 404 and the like raise then. A body cut after that raises
        ``APIConnectionError`` with code ``stream_closed``: what was yielded is incomplete.
        """
        client = self._client
        attempts = Attempts(export_call(campaign, what, format, status, outcome),
                            client._max_retries)
        started = False
        while True:
            try:
                with map_transport_errors(client.base_url), client._http.stream(
                        "GET", attempts.call.path, **attempts.request_kwargs()) as response:
                    if not response.is_success:
                        response.read()
                    check_export(response)
                    started = True
                    yield from export_chunks(response.iter_bytes(), campaign, what)
                    return
            except GatewayError as exc:
                wait = None if started else attempts.retry_wait(exc)
                if wait is None:
                    raise
            time.sleep(wait)

    def export_to(self, campaign: Ref, target: ExportTarget, what: ExportWhat = "contacts",
                  format: ExportFormat = "csv",
                  status: ContactStatus | ContactStatusValue | None = None, *,
                  outcome: Outcome | OutcomeValue | None = None) -> int:
        """``export`` written to ``target``: a path (created or replaced, and removed if
        the export fails, so no partial export is left under its name) or a binary file
        object (left open). Returns the bytes written."""
        written = 0
        with export_writer(target) as write:
            for chunk in self.export(campaign, what, format, status, outcome=outcome):
                write(chunk)
                written += len(chunk)
        return written

    def stream_events(self, campaign: Ref, *,
                      read_timeout: float | None = STREAM_READ_TIMEOUT,
                      max_reconnects: int = DEFAULT_MAX_RECONNECTS) -> Iterator[Snapshot]:
        """Live metrics: yields each ``Snapshot`` (``status``, ``total``, ``completed``,
        ``failed``, ``skipped``, ``in_flight``, ``outcomes``...) and returns when the server
        sends ``end`` (after the campaign's last snapshot; the end event is not yielded).

        Heartbeats are skipped. A stream that closes without ``end`` (a restart, a dead
        link: nothing within ``read_timeout``) connects again by itself with
        ``Last-Event-ID``, backing off from 0.5 s; after ``max_reconnects`` failed
        attempts in a row it raises ``APIConnectionError`` with code ``stream_closed``
        (0: at the first cut). 401, 404 and the like raise at once. Breaking out of the
        loop closes the connection.
        """
        client = self._client
        state = Reconnects(str(campaign), client._max_retries, max_reconnects)
        while True:
            try:
                with map_transport_errors(client.base_url), connect_sse(
                        client._http, "GET", self._events_path(campaign),
                        headers=state.headers(),
                        **stream_kwargs(client._timeout, read_timeout)) as source:
                    if not source.response.is_success:
                        source.response.read()
                    check_stream(source.response)
                    state.opened()
                    for sse in source.iter_sse():
                        state.seen(sse)
                        if sse.event == END:
                            return
                        snapshot = decode_event(sse)
                        if snapshot is not None:
                            yield snapshot
                wait = state.wait(None)
            except GatewayError as exc:
                wait = state.wait(exc)
            time.sleep(wait)


class Client(ClientBase[Blocking]):
    """The gateway's REST API, blocking.

    ``Client(base_url, api_key, *, timeout=30.0, max_retries=3, transport=None)``;
    ``transport`` is an ``httpx.BaseTransport`` (tests, proxies). Use it as a context
    manager or call ``close()``.

    A call whose request fails in a way safe to repeat (connection refused or cut, a
    timeout, a 503, a 429 with ``Retry-After``, a proxy's 502 or 504 except for PATCH) is
    sent again up to ``max_retries`` times (0: never), after the server's ``Retry-After``
    (at most 30 s) or an exponential backoff with jitter; then its last error raises. Every
    POST carries an ``Idempotency-Key``, the same on each retry, so a retried POST is done
    once.
    """

    agents: Agents
    phone_numbers: PhoneNumbers
    dnc: Dnc
    settings: SettingsResource[Blocking]
    calls: CallsResource[Blocking]
    webhooks: Webhooks

    def __init__(self, base_url: str, api_key: str, *, timeout: float = DEFAULT_TIMEOUT,
                 max_retries: int = DEFAULT_MAX_RETRIES,
                 transport: httpx.BaseTransport | None = None) -> None:
        options = http_options(base_url, api_key, timeout)
        self.base_url: str = options["base_url"]
        self._timeout = httpx.Timeout(timeout)
        self._max_retries = check_max(max_retries, "max_retries")
        self._http = httpx.Client(transport=transport, **options)
        self.campaigns = Campaigns(self)
        self.agents = Agents(self._send)
        self.phone_numbers = PhoneNumbers(self._send)
        self.dnc = Dnc(self._send)
        self.settings = SettingsResource(self._send)
        self.calls = CallsResource(self._send)
        self.webhooks = Webhooks(self._send)

    def _send(self, call: Call[Any]) -> Any:
        attempts = Attempts(call, self._max_retries)
        while True:
            try:
                with map_transport_errors(self.base_url):
                    response = self._http.request(call.method, call.path,
                                                  **attempts.request_kwargs())
                return call.parse(response)
            except GatewayError as exc:
                wait = attempts.retry_wait(exc)
                if wait is None:
                    raise
            time.sleep(wait)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"
