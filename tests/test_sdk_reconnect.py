"""``stream_events`` reconnecting with ``Last-Event-ID``, against the real gateway through a
TCP proxy (``tests/tcp_proxy.py``) that the test cuts or takes away.

``Recording`` is that proxy keeping every connection's bytes both ways, so a test reads
what the server got (the request heads, ``Last-Event-ID`` among them) and the event ids it
sent back. ``Client`` runs in a worker thread, ``AsyncClient`` on the test's trio loop.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from contextlib import aclosing
from typing import Any

import pytest
import trio
from conftest import API_KEY
from tcp_proxy import TcpProxy

from gateway.client import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    Client,
    NotFoundError,
    Snapshot,
)

pytestmark = pytest.mark.timeout(30)

# Snapshots every 50 ms, so a cut stream's next snapshot and the end come at once; nothing
# is dialed (0 calls per minute).
FAST_STREAM = {"sse": {"tick_seconds": 0.05, "heartbeat_seconds": 0.05},
               "accounts": {"default_calls_per_minute": 0}}
EVENT_ID = re.compile(rb"^id: (\d+)$", re.MULTILINE)
LAST_EVENT_ID = re.compile(rb"^last-event-id: (\d+)\r$", re.MULTILINE | re.IGNORECASE)


class _Tap:
    """A stream whose received bytes are also appended to ``log``."""

    def __init__(self, stream: trio.SocketStream, log: bytearray) -> None:
        self._stream, self._log = stream, log

    async def receive_some(self, max_bytes: int) -> bytes:
        data = await self._stream.receive_some(max_bytes)
        self._log += data
        return data


class Recording(TcpProxy):
    """``TcpProxy`` keeping, per connection in order, what the client sent (``up``) and
    what the server answered (``down``)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.traffic: list[dict[str, bytearray]] = []
        self._by_client: dict[int, dict[str, bytearray]] = {}
        self._scope = trio.CancelScope()
        self._gone = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """``run`` until ``take_away``."""
        try:
            with self._scope:
                await self.run(task_status=task_status)
        finally:
            self._gone.set()

    async def take_away(self) -> None:
        """Close the listener and every connection: the server is gone (refused)."""
        self._scope.cancel()
        await self._gone.wait()

    async def _handle(self, client: trio.SocketStream) -> None:
        record = {"up": bytearray(), "down": bytearray()}
        self.traffic.append(record)
        self._by_client[id(client)] = record
        try:
            await super()._handle(client)
        finally:
            del self._by_client[id(client)]

    async def _pump(self, source: Any, sink: Any, conn: Any) -> None:
        record = self._by_client.get(id(source))
        if record is not None:
            source = _Tap(source, record["up"])
        elif sink is not None and id(sink) in self._by_client:
            source = _Tap(source, self._by_client[id(sink)]["down"])
        await super()._pump(source, sink, conn)

    def streams(self) -> list[dict[str, bytearray]]:
        """The connections that asked for an event stream."""
        return [t for t in self.traffic if b"/events " in t["up"]]


def ids(data: bytes) -> list[int]:
    return [int(found) for found in EVENT_ID.findall(data)]


def last_event_ids(data: bytes) -> list[int]:
    return [int(found) for found in LAST_EVENT_ID.findall(data)]


@pytest.fixture
async def proxy(gateway):
    host, _, port = gateway.base_url.removeprefix("http://").rpartition(":")
    recording = Recording(host, int(port))
    async with trio.open_nursery() as nursery:
        await nursery.start(recording.serve)
        yield recording
        await recording.take_away()


@pytest.fixture
async def campaign(gateway):
    """A draft campaign, made straight on the gateway."""
    async with AsyncClient(gateway.base_url, API_KEY) as direct:
        agent = await direct.agents.create("Ava")
        number = await direct.phone_numbers.create("+14155550100")
        return await direct.campaigns.create("watched", agent, number,
                                             contacts=b"phone_number\n+12025550143\n")


async def delete(gateway, campaign) -> None:
    async with AsyncClient(gateway.base_url, API_KEY) as direct:
        await direct.campaigns.delete(campaign)


def check_resumed(proxy: Recording, snapshots: list[Snapshot]) -> None:
    """The stream was cut once, came back with the last id it had, and ended normally."""
    first, second = proxy.streams()
    assert last_event_ids(first["up"]) == []
    before, after = ids(first["down"]), ids(second["down"])
    resumed_from = last_event_ids(second["up"])
    assert len(resumed_from) == 1 and resumed_from[0] in before
    assert before == sorted(before) and after == sorted(after)
    assert after and min(after) > max(before)  # ids keep rising across the cut
    assert b"event: end" in second["down"] and b"event: end" not in first["down"]
    assert snapshots[0]["status"] == "draft" and len(snapshots) >= 2


@pytest.mark.parametrize("settings_overrides", [FAST_STREAM])
async def test_a_cut_stream_resumes_with_last_event_id(gateway, proxy, campaign):
    snapshots: list[Snapshot] = []
    deleted = False
    async with AsyncClient(f"http://127.0.0.1:{proxy.port}", API_KEY) as client:
        async with aclosing(client.campaigns.stream_events(campaign)) as events:
            async for snapshot in events:
                snapshots.append(snapshot)
                if len(snapshots) == 1:
                    proxy.cut()  # mid-stream: the server's connection dies
                elif len(proxy.streams()) == 2 and not deleted:  # a snapshot after it
                    deleted = True
                    await delete(gateway, campaign)  # -> a last snapshot and `end`
    check_resumed(proxy, snapshots)


@pytest.mark.parametrize("settings_overrides", [FAST_STREAM])
async def test_a_cut_stream_resumes_with_last_event_id_sync(gateway, proxy, campaign):
    def watch() -> list[Snapshot]:
        seen: list[Snapshot] = []
        deleted = False
        with Client(f"http://127.0.0.1:{proxy.port}", API_KEY) as client:
            for snapshot in client.campaigns.stream_events(campaign):
                seen.append(snapshot)
                if len(seen) == 1:
                    trio.from_thread.run_sync(proxy.cut)
                elif len(proxy.streams()) == 2 and not deleted:
                    deleted = True
                    trio.from_thread.run(delete, gateway, campaign)
        return seen

    check_resumed(proxy, await trio.to_thread.run_sync(watch))


@pytest.mark.parametrize("settings_overrides", [FAST_STREAM])
async def test_a_stream_gives_up_after_max_reconnects(gateway, proxy, campaign):
    started = 0.0
    async with AsyncClient(f"http://127.0.0.1:{proxy.port}", API_KEY) as client:
        with pytest.raises(APIConnectionError) as caught:
            async with aclosing(client.campaigns.stream_events(
                    campaign, max_reconnects=2)) as events:
                async for _ in events:
                    if not started:
                        await proxy.take_away()  # the server goes away, stays away
                        started = time.monotonic()
    waited = time.monotonic() - started
    assert caught.value.code == "stream_closed" and "2 reconnects" in caught.value.message
    assert caught.value.__cause__.code == "connection_error"  # the last attempt's failure
    # Two waits between three failures: 0.25-0.5 s, then 0.5-1 s.
    assert 0.75 <= waited < 3
    assert len(proxy.streams()) == 1  # refused: no connection got through


@pytest.mark.parametrize("settings_overrides", [FAST_STREAM])
async def test_a_stream_gives_up_after_max_reconnects_sync(gateway, proxy, campaign):
    def watch() -> tuple[APIConnectionError, float]:
        started = 0.0
        with Client(f"http://127.0.0.1:{proxy.port}", API_KEY) as client:
            try:
                for _ in client.campaigns.stream_events(campaign, max_reconnects=1):
                    if not started:
                        trio.from_thread.run(proxy.take_away)
                        started = time.monotonic()
            except APIConnectionError as exc:
                return exc, time.monotonic() - started
        raise AssertionError("the stream ended")

    error, waited = await trio.to_thread.run_sync(watch)
    assert error.code == "stream_closed" and 0.25 <= waited < 2


@pytest.mark.parametrize("settings_overrides", [FAST_STREAM])
async def test_max_reconnects_0_raises_at_the_first_cut(gateway, proxy, campaign):
    async with AsyncClient(f"http://127.0.0.1:{proxy.port}", API_KEY) as client:
        with pytest.raises(APIConnectionError) as caught:
            async with aclosing(client.campaigns.stream_events(
                    campaign, max_reconnects=0)) as events:
                async for _ in events:
                    proxy.cut()
    assert caught.value.code == "stream_closed" and len(proxy.streams()) == 1


async def test_a_missing_campaign_or_a_bad_key_is_not_retried(gateway, proxy):
    base_url = f"http://127.0.0.1:{proxy.port}"

    def watch_missing() -> None:
        with Client(base_url, API_KEY) as client:
            list(client.campaigns.stream_events(str(uuid.uuid4())))

    with pytest.raises(NotFoundError):
        await trio.to_thread.run_sync(watch_missing)
    async with AsyncClient(base_url, API_KEY) as client:
        with pytest.raises(NotFoundError):
            async with aclosing(client.campaigns.stream_events(str(uuid.uuid4()))) as events:
                async for _ in events:
                    pass
    async with AsyncClient(base_url, "gw_" + "x" * 43) as wrong:
        with pytest.raises(AuthenticationError):
            async with aclosing(wrong.campaigns.stream_events(str(uuid.uuid4()))) as events:
                async for _ in events:
                    pass
    asked = b"".join(t["up"] for t in proxy.streams())
    assert asked.count(b"GET /api/v1/campaigns/") == 3


async def test_a_first_connection_is_retried_as_a_request(gateway, proxy, campaign):
    """Before any stream was opened, a refused connection is retried max_retries times and
    raised as it is (not stream_closed)."""
    await proxy.take_away()
    async with AsyncClient(f"http://127.0.0.1:{proxy.port}", API_KEY,
                           max_retries=1) as client:
        started = time.monotonic()
        with pytest.raises(APIConnectionError) as caught:
            async with aclosing(client.campaigns.stream_events(campaign)) as events:
                async for _ in events:
                    pass
    assert caught.value.code == "connection_error"
    assert 0.125 <= time.monotonic() - started < 2


@pytest.mark.parametrize("settings_overrides", [FAST_STREAM])
async def test_a_cut_stream_resumes_under_asyncio(gateway, proxy, campaign):
    token = trio.lowlevel.current_trio_token()

    async def watch() -> list[Snapshot]:
        seen: list[Snapshot] = []
        deleted = False
        async with AsyncClient(f"http://127.0.0.1:{proxy.port}", API_KEY) as client:
            async with aclosing(client.campaigns.stream_events(campaign)) as events:
                async for snapshot in events:
                    seen.append(snapshot)
                    if len(seen) == 1:  # (trio's from_thread refuses an event loop)
                        await asyncio.to_thread(trio.from_thread.run_sync, proxy.cut,
                                                trio_token=token)
                    elif len(proxy.streams()) == 2 and not deleted:
                        deleted = True
                        await asyncio.to_thread(trio.from_thread.run, delete, gateway,
                                                campaign, trio_token=token)
        return seen

    check_resumed(proxy, await trio.to_thread.run_sync(lambda: asyncio.run(watch())))
