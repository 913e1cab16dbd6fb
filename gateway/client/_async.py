"""``AsyncClient``: the same API on ``httpx.AsyncClient``; runs under trio or asyncio
(httpx picks the running event loop through anyio)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx
from httpx_sse import aconnect_sse

from gateway.client._common import (
    DEFAULT_MAX_RECONNECTS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    END,
    STREAM_READ_TIMEOUT,
    Attempts,
    Awaiting,
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
    export_cut,
    export_destination,
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


async def _walk(fetch: Callable[[int], Awaitable[Page[Item]]]) -> AsyncIterator[Item]:
    """Every item of every page ``await fetch(page)`` returns, from page 0 until
    ``has_more`` is false."""
    page = 0
    while True:
        body = await fetch(page)
        for item in body["data"]:
            yield item
        if not body["has_more"]:
            return
        page += 1


class AsyncAgents(AgentsResource[Awaiting]):
    def iter_agents(self) -> AsyncIterator[Agent]:
        """Every agent (oldest first), page after page (``async for``)."""
        return _walk(lambda page: self.list(page=page))


class AsyncPhoneNumbers(PhoneNumbersResource[Awaiting]):
    def iter_phone_numbers(self) -> AsyncIterator[PhoneNumber]:
        """Every phone number (oldest first), page after page (``async for``)."""
        return _walk(lambda page: self.list(page=page))


class AsyncWebhooks(WebhooksResource[Awaiting]):
    def iter_webhooks(self) -> AsyncIterator[Webhook]:
        """Every webhook endpoint (oldest first), page after page (``async for``)."""
        return _walk(lambda page: self.list(page=page))

    def iter_deliveries(self, webhook: Ref, status: DeliveryStatus | DeliveryStatusValue
                        | None = None) -> AsyncIterator[WebhookDelivery]:
        """Every delivery of an endpoint (newest first), page after page (``async for``)."""
        return _walk(lambda page: self.deliveries(webhook, page=page, status=status))


class AsyncDnc(DncResource[Awaiting]):
    def iter_dnc(self) -> AsyncIterator[DncEntry]:
        """Every number on the do-not-call list (number order), page after page
        (``async for``)."""
        return _walk(lambda page: self.list(page=page))


class AsyncCampaigns(CampaignsResource[Awaiting]):
    """Every method of ``Client.campaigns``, as coroutines; the walkers and
    ``stream_events`` are async generators (``async for``)."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client._send)
        self._client = client

    async def iter_contacts(self, campaign: Ref,
                            status: ContactStatus | ContactStatusValue | None = None
                            ) -> AsyncIterator[Contact]:
        """Every contact (optionally of one status), page after page."""
        async for item in _walk(
                lambda page: self.contacts(campaign, status=status, page=page)):
            yield item

    async def iter_calls(self, campaign: Ref) -> AsyncIterator[CallAttempt]:
        """Every call attempt, page after page."""
        async for item in _walk(lambda page: self.calls(campaign, page=page)):
            yield item

    async def iter_campaigns(self, status: CampaignStatus | CampaignStatusValue | None = None
                             ) -> AsyncIterator[Campaign]:
        """Every campaign (newest first), page after page."""
        async for item in _walk(lambda page: self.list(status=status, page=page)):
            yield item

    async def export(self, campaign: Ref, what: ExportWhat = "contacts",
                     format: ExportFormat = "csv",
                     status: ContactStatus | ContactStatusValue | None = None, *,
                     outcome: Outcome | OutcomeValue | None = None
                     ) -> AsyncGenerator[bytes, None]:
        """See ``Client.campaigns.export`` (``async for``; wrap it in
        ``contextlib.aclosing`` to leave early with the connection closed at once)."""
        client = self._client
        attempts = Attempts(export_call(campaign, what, format, status, outcome),
                            client._max_retries)
        started = False
        while True:
            try:
                with map_transport_errors(client.base_url):
                    async with client._http.stream("GET", attempts.call.path,
                                                   **attempts.request_kwargs()) as response:
                        if not response.is_success:
                            await response.aread()
                        check_export(response)
                        started = True
                        try:
                            async for chunk in response.aiter_bytes():
                                yield chunk
                        except httpx.TransportError as exc:
                            raise export_cut(campaign, what) from exc
                        return
            except GatewayError as exc:
                wait = None if started else attempts.retry_wait(exc)
                if wait is None:
                    raise
            await anyio.sleep(wait)

    async def export_to(self, campaign: Ref, target: ExportTarget,
                        what: ExportWhat = "contacts", format: ExportFormat = "csv",
                        status: ContactStatus | ContactStatusValue | None = None, *,
                        outcome: Outcome | OutcomeValue | None = None) -> int:
        """See ``Client.campaigns.export_to`` (the file is written from worker threads)."""
        given = export_destination(target)
        file = (await anyio.open_file(given, "wb") if isinstance(given, str)
                else anyio.wrap_file(given))
        written = 0
        try:
            async with contextlib.aclosing(self.export(campaign, what, format, status,
                                                       outcome=outcome)) as chunks:
                async for chunk in chunks:
                    await file.write(chunk)
                    written += len(chunk)
        except BaseException:
            if isinstance(given, str):  # no partial export is left under its name
                with anyio.CancelScope(shield=True):
                    await file.aclose()
                    await anyio.Path(given).unlink(missing_ok=True)
            raise
        if isinstance(given, str):
            await file.aclose()
        return written

    async def stream_events(self, campaign: Ref, *,
                            read_timeout: float | None = STREAM_READ_TIMEOUT,
                            max_reconnects: int = DEFAULT_MAX_RECONNECTS
                            ) -> AsyncIterator[Snapshot]:
        """See ``Client.campaigns.stream_events`` (it reconnects the same way, sleeping
        on the running event loop). To leave the loop early, wrap the generator in
        ``contextlib.aclosing`` so the connection closes at once."""
        client = self._client
        state = Reconnects(str(campaign), client._max_retries, max_reconnects)
        while True:
            try:
                with map_transport_errors(client.base_url):
                    async with aconnect_sse(
                            client._http, "GET", self._events_path(campaign),
                            headers=state.headers(),
                            **stream_kwargs(client._timeout, read_timeout)) as source:
                        if not source.response.is_success:
                            await source.response.aread()
                        check_stream(source.response)
                        state.opened()
                        async for sse in source.aiter_sse():
                            state.seen(sse)
                            if sse.event == END:
                                return
                            snapshot = decode_event(sse)
                            if snapshot is not None:
                                yield snapshot
                wait = state.wait(None)
            except GatewayError as exc:
                wait = state.wait(exc)
            await anyio.sleep(wait)


class AsyncClient(ClientBase[Awaiting]):
    """The gateway's REST API, async: every method is a coroutine (``await``).

    ``AsyncClient(base_url, api_key, *, timeout=30.0, max_retries=3, transport=None)``;
    ``transport`` is an ``httpx.AsyncBaseTransport``. Use ``async with`` or call
    ``aclose()``. Retries as ``Client`` does, sleeping on the running event loop (trio or
    asyncio).
    """

    agents: AsyncAgents
    phone_numbers: AsyncPhoneNumbers
    dnc: AsyncDnc
    settings: SettingsResource[Awaiting]
    calls: CallsResource[Awaiting]
    webhooks: AsyncWebhooks

    def __init__(self, base_url: str, api_key: str, *, timeout: float = DEFAULT_TIMEOUT,
                 max_retries: int = DEFAULT_MAX_RETRIES,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        options = http_options(base_url, api_key, timeout)
        self.base_url: str = options["base_url"]
        self._timeout = httpx.Timeout(timeout)
        self._max_retries = check_max(max_retries, "max_retries")
        self._http = httpx.AsyncClient(transport=transport, **options)
        self.campaigns = AsyncCampaigns(self)
        self.agents = AsyncAgents(self._send)
        self.phone_numbers = AsyncPhoneNumbers(self._send)
        self.dnc = AsyncDnc(self._send)
        self.settings = SettingsResource(self._send)
        self.calls = CallsResource(self._send)
        self.webhooks = AsyncWebhooks(self._send)

    async def _send(self, call: Call[Any]) -> Any:
        attempts = Attempts(call, self._max_retries)
        while True:
            try:
                with map_transport_errors(self.base_url):
                    response = await self._http.request(call.method, call.path,
                                                        **attempts.request_kwargs())
                return call.parse(response)
            except GatewayError as exc:
                wait = attempts.retry_wait(exc)
                if wait is None:
                    raise
            await anyio.sleep(wait)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"
