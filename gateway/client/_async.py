"""``AsyncClient``: the same API on ``httpx.AsyncClient``; runs under trio or asyncio
(httpx picks the running event loop through anyio)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
from httpx_sse import aconnect_sse

from gateway.client._common import (
    DEFAULT_TIMEOUT,
    END,
    STREAM_READ_TIMEOUT,
    Awaiting,
    Call,
    Ref,
    check_stream,
    decode_event,
    http_options,
    stream_cut,
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
)
from gateway.client.errors import APIConnectionError, map_transport_errors
from gateway.client.types import (
    Agent,
    CallAttempt,
    Campaign,
    CampaignStatusValue,
    Contact,
    ContactStatusValue,
    DncEntry,
    Page,
    PhoneNumber,
    Snapshot,
)
from gateway.vocabulary import CampaignStatus, ContactStatus

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

    async def stream_events(self, campaign: Ref, *,
                            read_timeout: float | None = STREAM_READ_TIMEOUT
                            ) -> AsyncIterator[Snapshot]:
        """See ``Client.campaigns.stream_events``. To leave the loop early, wrap the
        generator in ``contextlib.aclosing`` so the connection closes at once."""
        client = self._client
        with map_transport_errors(client.base_url):
            async with aconnect_sse(client._http, "GET", self._events_path(campaign),
                                    **stream_kwargs(client._timeout, read_timeout)) as source:
                if not source.response.is_success:
                    await source.response.aread()
                check_stream(source.response)
                async for sse in source.aiter_sse():
                    if sse.event == END:
                        return
                    snapshot = decode_event(sse)
                    if snapshot is not None:
                        yield snapshot
        raise APIConnectionError(stream_cut(str(campaign)), code="stream_closed")


class AsyncClient(ClientBase[Awaiting]):
    """The gateway's REST API, async: every method is a coroutine (``await``).

    ``AsyncClient(base_url, api_key, *, timeout=30.0, transport=None)``; ``transport`` is an
    ``httpx.AsyncBaseTransport``. Use ``async with`` or call ``aclose()``.
    """

    agents: AsyncAgents
    phone_numbers: AsyncPhoneNumbers
    dnc: AsyncDnc
    settings: SettingsResource[Awaiting]
    calls: CallsResource[Awaiting]

    def __init__(self, base_url: str, api_key: str, *, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        options = http_options(base_url, api_key, timeout)
        self.base_url: str = options["base_url"]
        self._timeout = httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(transport=transport, **options)
        self.campaigns = AsyncCampaigns(self)
        self.agents = AsyncAgents(self._send)
        self.phone_numbers = AsyncPhoneNumbers(self._send)
        self.dnc = AsyncDnc(self._send)
        self.settings = SettingsResource(self._send)
        self.calls = CallsResource(self._send)

    async def _send(self, call: Call[Any]) -> Any:
        with map_transport_errors(self.base_url):
            response = await self._http.request(call.method, call.path,
                                                **call.request_kwargs())
        return call.parse(response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"
