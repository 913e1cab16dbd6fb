"""``Client``: the blocking client, on ``httpx.Client``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import connect_sse

from gateway.client._common import (DEFAULT_TIMEOUT, END, SKIP, STREAM_READ_TIMEOUT, Call,
                                    Ref, check_stream, decode_event, http_options, stream_cut,
                                    stream_kwargs)
from gateway.client._resources import (AgentsResource, CampaignsResource, ClientBase,
                                       PhoneNumbersResource)
from gateway.client.errors import APIConnectionError, map_transport_errors


class Campaigns(CampaignsResource):
    def __init__(self, client: Client) -> None:
        super().__init__(client._send)
        self._client = client

    def iter_contacts(self, campaign: Ref, status: str | None = None) -> Iterator[dict]:
        """Every contact (optionally of one status), page after page."""
        yield from self._walk(lambda page: self.contacts(campaign, status=status, page=page))

    def iter_calls(self, campaign: Ref) -> Iterator[dict]:
        """Every call attempt, page after page."""
        yield from self._walk(lambda page: self.calls(campaign, page=page))

    def iter_campaigns(self, status: str | None = None) -> Iterator[dict]:
        """Every campaign (newest first), page after page."""
        yield from self._walk(lambda page: self.list(status=status, page=page))

    @staticmethod
    def _walk(fetch) -> Iterator[dict]:
        page = 0
        while True:
            body = fetch(page)
            yield from body["data"]
            if not body["has_more"]:
                return
            page += 1

    def stream_events(self, campaign: Ref, *,
                      read_timeout: float | None = STREAM_READ_TIMEOUT) -> Iterator[dict]:
        """Live metrics: yields each snapshot (a dict: ``status``, ``total``, ``completed``,
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
                    event = decode_event(sse)
                    if event is END:
                        return
                    if event is not SKIP:
                        yield event
        raise APIConnectionError(stream_cut(str(campaign)), code="stream_closed")


class Client(ClientBase):
    """The gateway's REST API, blocking.

    ``Client(base_url, api_key, *, timeout=30.0, transport=None)``; ``transport`` is an
    ``httpx.BaseTransport`` (tests, proxies). Use it as a context manager or call
    ``close()``.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        options = http_options(base_url, api_key, timeout)
        self.base_url = options["base_url"]
        self._timeout = httpx.Timeout(timeout)
        self._http = httpx.Client(transport=transport, **options)
        self.campaigns = Campaigns(self)
        self.agents = AgentsResource(self._send)
        self.phone_numbers = PhoneNumbersResource(self._send)

    def _send(self, call: Call) -> Any:
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
