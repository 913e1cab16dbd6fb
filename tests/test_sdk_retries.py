"""The SDK's retries and idempotency keys, through a real HTTP server in front of the gateway.

``Front`` is an HTTP/1.1 server (h11 over trio) on an ephemeral port: it records every
request it gets (method, path, headers, body) and answers each as its plan says: a 503 or
429 of its own, a connection closed before or instead of the answer, or the real gateway's
answer (forwarded). Both ``Client`` (in a worker thread) and ``AsyncClient`` (on the test's
trio loop) are run through it. Waits are measured with a clock, with small Retry-After
values.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import io
import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import h11
import httpx
import pytest
import trio
from conftest import API_KEY, contacts_csv
from hypothesis import given, settings
from hypothesis import strategies as st

import gateway.client._common as common
from gateway.client import (
    APIConnectionError,
    AsyncClient,
    Client,
    ConflictError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    ValidationError,
    idempotency_key,
)
from gateway.client._common import retry_wait
from gateway.client.errors import error_from_response

pytestmark = pytest.mark.timeout(30)

KEY_SHAPE = re.compile(r"[0-9a-f]{32}")
HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "content-encoding",
              "keep-alive", "host"}


@attrs.define
class Seen:
    """One request as the front got it, and what became of it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    action: str
    status: int | None = None  # the status answered (None: no answer)
    answer_headers: dict[str, str] = attrs.Factory(dict)

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")


class Front:
    """A real HTTP server in front of ``target`` that answers per ``plan``, one action per
    request in arrival order, then ``forward`` for the rest:

    - ``forward``: the gateway's answer;
    - ``drop``: forwarded, then the connection closed instead of the answer (it is lost);
    - ``close``: the whole request read, the connection closed, nothing forwarded;
    - ``cut``: closed once the head is read (the body is not);
    - ``503``, ``503:<Retry-After>``, ``429:<Retry-After>``, ``500``: that status, from
      the front itself (the gateway never sees the request).
    """

    def __init__(self, target: str, plan: Iterable[str] = ()) -> None:
        self.target = target
        self.plan = list(plan)
        self.seen: list[Seen] = []
        self.url = ""
        self._upstream: httpx.AsyncClient | None = None

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with httpx.AsyncClient(base_url=self.target, timeout=10) as upstream:
            self._upstream = upstream
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(functools.partial(
                    trio.serve_tcp, self._serve, 0, host="127.0.0.1"))
                self.url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
                task_status.started(self.url)

    async def _serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while await self._one(stream, conn):
                    conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass  # the client went away: nothing left to answer

    async def _next(self, stream: trio.SocketStream, conn: h11.Connection) -> Any:
        while (event := conn.next_event()) is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        return event

    async def _one(self, stream: trio.SocketStream, conn: h11.Connection) -> bool:
        """Serve one request; False when the connection is done."""
        request = await self._next(stream, conn)
        if not isinstance(request, h11.Request):
            return False
        action = self.plan.pop(0) if self.plan else "forward"
        seen = Seen(request.method.decode(), request.target.decode(),
                    {k.decode(): v.decode() for k, v in request.headers}, b"", action)
        self.seen.append(seen)
        if action == "cut":
            return False
        body = bytearray()
        while not isinstance(event := await self._next(stream, conn), h11.EndOfMessage):
            if isinstance(event, h11.ConnectionClosed):
                return False
            body += event.data
        seen.body = bytes(body)
        if action == "close":
            return False
        kind, _, retry_after = action.partition(":")
        if kind in ("forward", "drop"):
            assert self._upstream is not None
            answer = await self._upstream.request(
                seen.method, seen.path, content=seen.body,
                headers={k: v for k, v in seen.headers.items() if k not in HOP_BY_HOP})
            if kind == "drop":
                seen.answer_headers = dict(answer.headers)
                return False
            status, content = answer.status_code, answer.content
            headers = [(k, v) for k, v in answer.headers.items() if k not in HOP_BY_HOP]
        else:
            status = int(kind)
            content = json.dumps({"error": {"code": f"front_{status}",
                                            "message": "from the front"}}).encode()
            headers = [("content-type", "application/json")]
            if retry_after:
                headers.append(("retry-after", retry_after))
        seen.status, seen.answer_headers = status, dict(headers)
        headers.append(("content-length", str(len(content))))
        await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers))
                              + conn.send(h11.Data(data=content))
                              + conn.send(h11.EndOfMessage()))
        return conn.our_state is not h11.MUST_CLOSE

    def requests(self, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if method is None or s.method == method]


@pytest.fixture
async def front(gateway):
    async with trio.open_nursery() as nursery:
        proxy = Front(gateway.base_url)
        await nursery.start(proxy.run)
        yield proxy
        nursery.cancel_scope.cancel()


@pytest.fixture(params=["Client", "AsyncClient"])
async def make_client(request):
    """``make_client(base_url, **options)``: a ``Client`` or an ``AsyncClient`` (closed
    after the test)."""
    made: list[Client | AsyncClient] = []

    def make(base_url: str, **options: Any) -> Client | AsyncClient:
        kind = Client if request.param == "Client" else AsyncClient
        client = kind(base_url, API_KEY, timeout=5, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        if isinstance(client, AsyncClient):
            await client.aclose()
        else:
            client.close()


async def call(client: Client | AsyncClient, fn: Callable[[Any], Any]) -> Any:
    """``fn(client)``: on a worker thread for ``Client``, awaited for ``AsyncClient``."""
    if isinstance(client, AsyncClient):
        return await fn(client)
    return await trio.to_thread.run_sync(fn, client)


async def timed(client: Client | AsyncClient, fn: Callable[[Any], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = await call(client, fn)
    return result, time.monotonic() - start


async def agents_total(gateway) -> int:
    async with gateway.client() as api:
        return (await api.get("/api/v1/agents")).json()["total"]


async def test_a_post_is_retried_with_the_same_idempotency_key(gateway, front, make_client):
    front.plan = ["503:0", "close", "cut", "forward"]
    client = make_client(front.url)
    agent = await call(client, lambda c: c.agents.create("Ava", greeting="Hi {{first_name}}"))
    posts = front.requests("POST")
    assert [s.action for s in posts] == ["503:0", "close", "cut", "forward"]
    keys = {s.key for s in posts}
    assert len(keys) == 1 and KEY_SHAPE.fullmatch(posts[0].key or "")
    assert all(s.body == posts[0].body for s in (posts[0], posts[1], posts[3]))
    assert agent["name"] == "Ava" and await agents_total(gateway) == 1
    await call(client, lambda c: c.agents.create("Bo"))  # another call: another key
    assert front.requests("POST")[-1].key not in keys
    await call(client, lambda c: c.agents.get(agent))
    assert "idempotency-key" not in front.requests("GET")[-1].headers


async def test_a_get_is_retried_after_a_lost_answer_and_a_503(front, make_client):
    front.plan = ["close", "503", "forward"]
    limits = await call(make_client(front.url), lambda c: c.call_limits())
    assert limits["concurrent_max"] > 0
    assert [s.action for s in front.requests("GET")] == ["close", "503", "forward"]


@pytest.mark.parametrize(("plan", "error"), [
    (["503:0"] * 9, ServiceUnavailableError),
    (["close"] * 9, APIConnectionError),
    (["429:0"] * 9, RateLimitError),
])
async def test_gives_up_after_max_retries_with_the_last_error(front, make_client, plan,
                                                              error):
    front.plan = list(plan)
    with pytest.raises(error) as caught:
        await call(make_client(front.url, max_retries=2), lambda c: c.agents.create("Ava"))
    assert len(front.seen) == 3 and len({s.key for s in front.seen}) == 1
    if error is APIConnectionError:
        assert caught.value.code == "connection_error"
        assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    else:
        assert caught.value.code == f"front_{plan[0][:3]}"


async def test_max_retries_0_sends_once(front, make_client):
    front.plan = ["503:0", "forward"]
    with pytest.raises(ServiceUnavailableError):
        await call(make_client(front.url, max_retries=0), lambda c: c.call_limits())
    assert len(front.seen) == 1
    with pytest.raises(ValueError, match="max_retries"):
        make_client(front.url, max_retries=-1)


async def test_retry_after_is_waited_for(front, make_client):
    client = make_client(front.url)
    front.plan = ["503:1", "forward"]
    _, waited = await timed(client, lambda c: c.call_limits())
    assert 1.0 <= waited < 2.5
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # 1 s resolution
    front.plan = [f"503:{when}", "forward"]
    _, waited = await timed(client, lambda c: c.call_limits())
    assert 0.9 <= waited < 3.0
    assert len(front.seen) == 4


async def test_a_long_retry_after_is_capped(front, make_client, monkeypatch):
    monkeypatch.setattr(common, "MAX_RETRY_AFTER", 0.3)  # 30 s in real life
    front.plan = ["503:3600", "forward"]
    _, waited = await timed(make_client(front.url), lambda c: c.call_limits())
    assert 0.3 <= waited < 1.5


async def test_without_retry_after_the_waits_back_off(front, make_client):
    front.plan = ["503"] * 3
    client = make_client(front.url, max_retries=2)
    start = time.monotonic()
    with pytest.raises(ServiceUnavailableError):
        await call(client, lambda c: c.call_limits())
    waited = time.monotonic() - start
    assert len(front.seen) == 3
    # Two waits: 0.125-0.25 s, then 0.25-0.5 s (doubling, jittered in the upper half).
    assert 0.375 <= waited < 1.5


async def test_client_errors_and_500_are_not_retried(gateway, front, make_client):
    client = make_client(front.url)
    with pytest.raises(ValidationError):
        await call(client, lambda c: c.agents.create("x", greeting="Hi {{oops"))
    with pytest.raises(NotFoundError):
        await call(client, lambda c: c.agents.get("00000000-0000-4000-8000-000000000000"))
    await call(client, lambda c: c.phone_numbers.create("+14155550100"))
    with pytest.raises(ConflictError):
        await call(client, lambda c: c.phone_numbers.create("+14155550100"))
    assert [s.status for s in front.seen] == [400, 404, 201, 409]
    front.plan = ["500", "429"]  # a 429 without Retry-After is not retried either
    with pytest.raises(ServerError):
        await call(client, lambda c: c.call_limits())
    with pytest.raises(RateLimitError):
        await call(client, lambda c: c.call_limits())
    assert len(front.seen) == 6


async def test_a_proxys_502_or_504_is_retried_like_a_lost_answer(gateway, front, make_client):
    """A proxy in front of the gateway answers 502/504 when the gateway's answer did not
    come: the request may have been acted on, so a POST is sent again with its idempotency
    key (acted on once), a PATCH is not."""
    client = make_client(front.url)
    front.plan = ["502", "504", "forward"]
    agent = await call(client, lambda c: c.agents.create("Ava"))
    posts = front.requests("POST")
    assert [s.action for s in posts] == ["502", "504", "forward"]
    assert len({s.key for s in posts}) == 1 and await agents_total(gateway) == 1
    front.plan = ["504"]
    with pytest.raises(ServerError) as caught:
        await call(client, lambda c: c.agents.update(agent, name="Bo"))
    assert caught.value.status_code == 504 and len(front.requests("PATCH")) == 1


async def test_a_patch_is_not_sent_again_once_it_may_have_arrived(gateway, front,
                                                                  make_client):
    client = make_client(front.url)
    agent = await call(client, lambda c: c.agents.create("Ava"))
    front.plan = ["close"]
    with pytest.raises(APIConnectionError):
        await call(client, lambda c: c.agents.update(agent, name="Bo"))
    assert len(front.requests("PATCH")) == 1
    front.plan = ["503:0"]  # refused before it was done: safe
    assert (await call(client, lambda c: c.agents.update(agent, name="Cy")))["name"] == "Cy"
    assert len(front.requests("PATCH")) == 3


@pytest.mark.parametrize("source", ["file", "bytesio", "path"])
async def test_a_csv_upload_is_sent_again_whole(gateway, front, make_client, tmp_path,
                                                source):
    client = make_client(front.url)
    agent = await call(client, lambda c: c.agents.create("Ava"))
    number = await call(client, lambda c: c.phone_numbers.create("+14155550100"))
    csv = contacts_csv(2000)  # ~50 kB: more than one read of the file
    path = tmp_path / "contacts.csv"
    path.write_bytes(csv)
    front.plan = ["cut", "503:0", "drop", "forward"]  # the gateway imports it at "drop"
    with open(path, "rb") as file:
        contacts = {"file": file, "bytesio": io.BytesIO(csv), "path": path}[source]
        created = await call(client, lambda c: c.campaigns.create("big", agent, number,
                                                                  contacts=contacts))
    assert created["import_report"]["rows_accepted"] == 2000
    posts = [s for s in front.requests("POST") if s.path.endswith("/campaigns")]
    assert [s.action for s in posts] == ["cut", "503:0", "drop", "forward"]
    assert len({s.key for s in posts}) == 1
    # Byte for byte (one multipart boundary for the call), so the server can tell a
    # repeat from another request with the same key.
    assert len({s.body for s in posts[1:]}) == 1 and csv in posts[-1].body
    assert posts[-1].answer_headers.get("idempotent-replayed") == "true"
    async with gateway.client() as api:  # imported once, at the attempt whose answer was lost
        assert (await api.get("/api/v1/campaigns")).json()["total"] == 1


class OneWay:
    """A file that reads once, like a socket's or a pipe's (no seek)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


async def test_an_upload_from_a_stream_is_not_sent_twice(gateway, front, make_client):
    client = make_client(front.url)
    agent = await call(client, lambda c: c.agents.create("Ava"))
    number = await call(client, lambda c: c.phone_numbers.create("+14155550100"))
    front.plan = ["503:0"]
    stream = OneWay(b"phone_number\n+12025550143\n")
    with pytest.raises(ServiceUnavailableError):
        await call(client, lambda c: c.campaigns.create("piped", agent, number,
                                                        contacts=stream))
    assert len(front.requests("POST")) == 3  # agent, number, the campaign once


async def test_an_idempotency_key_of_the_callers_own(front, make_client):
    client = make_client(front.url)
    with idempotency_key("job-42/create-agent"):
        await call(client, lambda c: c.call_limits())  # a GET takes no key
        front.plan = ["close"]
        await call(client, lambda c: c.agents.create("Ava"))
        with pytest.raises(ValueError, match="one idempotency_key"):
            await call(client, lambda c: c.agents.create("Bo"))
    assert [s.key for s in front.requests("POST")] == ["job-42/create-agent"] * 2
    assert "idempotency-key" not in front.requests("GET")[0].headers
    await call(client, lambda c: c.agents.create("Cy"))  # outside: a fresh key again
    assert KEY_SHAPE.fullmatch(front.requests("POST")[-1].key or "")
    for bad in ("", "a\nb", " padded", "x" * 256, "clé"):
        with pytest.raises(ValueError, match="printable ASCII"), idempotency_key(bad):
            pass
    with idempotency_key("x" * 255):  # the longest the server takes
        await call(client, lambda c: c.agents.create("Dee"))
    assert front.seen[-1].status == 201


async def test_a_lost_answer_is_replayed_not_done_twice(gateway, front, make_client):
    """The server side: the repeated key gets the stored answer, so one agent exists."""
    front.plan = ["drop", "forward"]
    client = make_client(front.url)
    agent = await call(client, lambda c: c.agents.create("Ava"))
    first, second = front.requests("POST")
    assert first.answer_headers.get("idempotent-replayed") is None
    assert second.answer_headers.get("idempotent-replayed") == "true"
    assert first.key == second.key and agent["name"] == "Ava"
    assert await agents_total(gateway) == 1


async def test_a_key_reused_with_another_body_is_a_conflict(front, make_client):
    client = make_client(front.url)
    with idempotency_key("reused-key-1"):
        await call(client, lambda c: c.agents.create("Ava"))
    with pytest.raises(ConflictError) as caught, idempotency_key("reused-key-1"):
        await call(client, lambda c: c.agents.create("Bo"))
    assert caught.value.status_code == 409
    assert caught.value.code == "idempotency_key_reused"
    assert len(front.requests("POST")) == 2  # a 409 is not retried


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.floats().map(str), st.integers().map(str),
                 st.datetimes().map(lambda d: email.utils.format_datetime(d, usegmt=False))))
def test_any_retry_after_gives_a_bounded_wait(header):
    request = httpx.Request("GET", "http://gateway/api/v1/call-limits")
    try:
        response = httpx.Response(503, headers={"Retry-After": header}, request=request)
    except (UnicodeEncodeError, ValueError):
        return  # not a header httpx can carry
    for attempt in (1, 2, 10, 100):
        wait = retry_wait(error_from_response(response), attempt)
        assert 0.0 <= wait <= max(common.MAX_RETRY_AFTER, common.RETRY_BACKOFF[1])


async def test_async_client_retries_under_asyncio(gateway, front):
    """AsyncClient sleeps on whichever loop runs it: asyncio here, in a worker thread."""
    front.plan = ["503:0.2", "close", "forward"]

    async def create() -> tuple[Any, float]:
        async with AsyncClient(front.url, API_KEY, timeout=5) as client:
            start = time.monotonic()
            agent = await client.agents.create("Ava")
            return agent, time.monotonic() - start

    agent, waited = await trio.to_thread.run_sync(asyncio.run, create())
    assert agent["name"] == "Ava" and await agents_total(gateway) == 1
    posts = front.requests("POST")
    assert len(posts) == 3 and len({s.key for s in posts}) == 1
    assert 0.2 + 0.125 <= waited < 2  # Retry-After, then a backoff
