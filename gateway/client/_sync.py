"""``Client``: the blocking client, on ``httpx.Client``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
from httpx_sse import connect_sse

from gateway.client._common import (
    DEFAULT_TIMEOUT,
    END,
    STREAM_READ_TIMEOUT,
    Blocking,
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

    def stream_events(self, campaign: Ref, *,
                      read_timeout: float | None = STREAM_READ_TIMEOUT) -> Iterator[Snapshot]:
        """Live metrics: yields each ``Snapshot`` (``status``, ``total``, ``completed``,
        ``failed``, ``skipped``, ``in_flight``, ``outcomes``...) and returns when the server
        sends ``end`` (after the campaign's last snapshot; the end event is not yielded).

        Heartbeats are skipped. A stream that closes without ``end`` (server shutdown)
        raises ``APIConnectionError`` with code ``stream_closed``. Breaking out of the loop
        closes the connection.
        """
        client = self._client
        with map_transport_errors(client.base_url):
            with connect_sse(client._http, "GET", self._events_path(campaign),
                             **stream_kwargs(client._timeout, read_timeout)) as source:
                if not source.response.is_success:
                    source.response.read()
                check_stream(source.response)
                for sse in source.iter_sse():
                    if sse.event == END:
                        return
                    snapshot = decode_event(sse)
                    if snapshot is not None:
                        yield snapshot
        raise APIConnectionError(stream_cut(str(campaign)), code="stream_closed")


class Client(ClientBase[Blocking]):
    """The gateway's REST API, blocking.

    ``Client(base_url, api_key, *, timeout=30.0, transport=None)``; ``transport`` is an
    ``httpx.BaseTransport`` (tests, proxies). Use it as a context manager or call
    ``close()``.
    """

    agents: Agents
    phone_numbers: PhoneNumbers
    dnc: Dnc
    settings: SettingsResource[Blocking]
    calls: CallsResource[Blocking]

    def __init__(self, base_url: str, api_key: str, *, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        options = http_options(base_url, api_key, timeout)
        self.base_url: str = options["base_url"]
        self._timeout = httpx.Timeout(timeout)
        self._http = httpx.Client(transport=transport, **options)
        self.campaigns = Campaigns(self)
        self.agents = Agents(self._send)
        self.phone_numbers = PhoneNumbers(self._send)
        self.dnc = Dnc(self._send)
        self.settings = SettingsResource(self._send)
        self.calls = CallsResource(self._send)

    def _send(self, call: Call[Any]) -> Any:
        with map_transport_errors(self.base_url):
            response = self._http.request(call.method, call.path, **call.request_kwargs())
        return call.parse(response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"
