"""The fault-injection proxy (tests/tcp_proxy.py) does what its faults promise, first on a
raw trio echo server (bytes, half-closes, which side sees what), then on the real
PostgreSQL through the gateway's own pool, where it also pins down what a query on a
partitioned link does when trio cancels it.

Every wait is bounded (the test's ``timeout`` marker plus a ``fail_after`` or
``move_on_after``); polling loops poll state no event signals (a socket count, a row of
pg_stat_activity). A wait that must NOT end is a ``move_on_after`` whose expiry is the
assertion.
"""

from __future__ import annotations

import contextlib
import functools
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
from conftest import ADMIN_URL
from tcp_proxy import TcpProxy

import gateway.db
from gateway.asyncio_loop import open_loop
from gateway.db import Database, DatabaseUnavailable

POLL_SECONDS = 0.01


async def until(check: Callable[[], bool | Awaitable[bool]], seconds: float = 5) -> None:
    """Poll ``check()`` (plain or async) until it is true, for at most ``seconds``."""
    with trio.fail_after(seconds):
        while True:
            value = check()
            if not isinstance(value, bool):
                value = await value
            if value:
                return
            await trio.sleep(POLL_SECONDS)


class EchoServer:
    """A trio TCP echo server on 127.0.0.1 that counts its connections."""

    def __init__(self) -> None:
        self.port = 0
        self.accepted = 0
        self.open = 0

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(functools.partial(
                trio.serve_tcp, self._echo, 0, host="127.0.0.1"))
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started(self.port)

    async def _echo(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        self.open += 1
        try:
            async with stream:
                async for data in stream:
                    await stream.send_all(data)
        except trio.BrokenResourceError:
            pass  # the proxy reset the connection: that is what some tests do
        finally:
            self.open -= 1


@pytest.fixture
async def echo(nursery: trio.Nursery) -> EchoServer:
    server = EchoServer()
    await nursery.start(server.run)
    return server


@pytest.fixture
async def echo_proxy(nursery: trio.Nursery, echo: EchoServer) -> TcpProxy:
    proxy = TcpProxy("127.0.0.1", echo.port)
    await nursery.start(proxy.run)
    return proxy


async def connect(proxy: TcpProxy) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", proxy.port)


async def receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        data = await stream.receive_some(size - len(received))
        assert data, f"EOF after {len(received)} of {size} bytes"
        received += data
    return bytes(received)


async def assert_closed_by_peer(stream: trio.SocketStream) -> None:
    """The other end closed ``stream``: a clean EOF, or a reset when it left bytes unread."""
    with trio.fail_after(5):
        try:
            assert await stream.receive_some(1024) == b""
        except trio.BrokenResourceError:
            pass


# -- the proxy on its own -------------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_bytes_pass_both_ways_in_small_messages_and_in_bulk(echo_proxy: TcpProxy,
                                                                  echo: EchoServer) -> None:
    async with await connect(echo_proxy) as stream:
        # Request-response traffic like PostgreSQL's: each small message waits for its
        # answer, so any latency the proxy adds is paid 5,000 times within the bound.
        with trio.fail_after(10):
            for i in range(5000):
                message = f"message {i:06d}".encode()
                await stream.send_all(message)
                assert await receive_exactly(stream, len(message)) == message
        # Bulk: 8 MiB written while the echo is read back concurrently (the pumps must
        # not deadlock on full buffers).
        payload = bytes(range(256)) * (8 * 4096)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.send_all, payload)
                assert await receive_exactly(stream, len(payload)) == payload
        assert echo_proxy.connections == 1
        assert echo.open == 1
    await until(lambda: echo_proxy.connections == 0 and echo.open == 0)


@pytest.mark.timeout(30)
async def test_a_half_close_is_passed_on_and_the_answer_still_arrives(
        echo_proxy: TcpProxy, echo: EchoServer) -> None:
    async with await connect(echo_proxy) as stream:
        await stream.send_all(b"last words")
        await stream.send_eof()
        with trio.fail_after(5):
            assert await receive_exactly(stream, 10) == b"last words"
            assert await stream.receive_some(1024) == b""  # the echo server closed after
    await until(lambda: echo_proxy.connections == 0 and echo.open == 0)


@pytest.mark.timeout(30)
async def test_blackhole_drops_bytes_and_keeps_every_socket_open(echo_proxy: TcpProxy,
                                                                 echo: EchoServer) -> None:
    async with await connect(echo_proxy) as before:
        await before.send_all(b"ping")
        with trio.fail_after(5):
            assert await receive_exactly(before, 4) == b"ping"

        echo_proxy.blackhole()
        await before.send_all(b"lost")
        with trio.move_on_after(0.5) as waited:
            await before.receive_some(1024)
        assert waited.cancelled_caught, "an answer came through the black hole"

        # A connection made during the partition is accepted, yet reaches nobody.
        async with await connect(echo_proxy) as during:
            await during.send_all(b"lost too")
            with trio.move_on_after(0.5) as waited:
                await during.receive_some(1024)
            assert waited.cancelled_caught
            assert echo_proxy.connections == 2
            assert echo.accepted == 1, "a connection crossed the partition"
            assert echo.open == 1  # the server side of the first one is still open
        # Nothing is held beyond the partition for it: the client's close ends it.
        await until(lambda: echo_proxy.connections == 1)

    # The first one's close stays on the client's side: the server keeps its end (as
    # PostgreSQL keeps a partitioned session, its locks and its transaction).
    with trio.move_on_after(0.3) as waited:
        await until(lambda: echo.open == 0 or echo_proxy.connections == 0)
    assert waited.cancelled_caught, "the client's close crossed the partition"


@pytest.mark.timeout(30)
async def test_restore_closes_what_the_partition_broke_and_forwards_new_connections(
        echo_proxy: TcpProxy, echo: EchoServer) -> None:
    async with await connect(echo_proxy) as before:
        await until(lambda: echo.open == 1)
        echo_proxy.blackhole()
        await before.send_all(b"lost")
        async with await connect(echo_proxy) as during:
            await until(lambda: echo_proxy.connections == 2)

            echo_proxy.restore()
            await assert_closed_by_peer(before)
            await assert_closed_by_peer(during)
            await until(lambda: echo_proxy.connections == 0 and echo.open == 0)

            async with await connect(echo_proxy) as after:
                await after.send_all(b"healed")
                with trio.fail_after(5):
                    assert await receive_exactly(after, 6) == b"healed"
                assert echo.accepted == 2


@pytest.mark.timeout(30)
async def test_cut_closes_every_connection_and_new_ones_are_forwarded(
        echo_proxy: TcpProxy, echo: EchoServer) -> None:
    async with await connect(echo_proxy) as first, await connect(echo_proxy) as second:
        await until(lambda: echo.open == 2)
        echo_proxy.cut()
        await assert_closed_by_peer(first)
        await assert_closed_by_peer(second)
        await until(lambda: echo_proxy.connections == 0 and echo.open == 0)

    async with await connect(echo_proxy) as after:
        await after.send_all(b"again")
        with trio.fail_after(5):
            assert await receive_exactly(after, 5) == b"again"


@pytest.mark.timeout(30)
async def test_a_target_that_refuses_closes_the_client_and_the_proxy_goes_on(
        nursery: trio.Nursery) -> None:
    with trio.socket.socket() as unused:  # a port nobody listens on
        await unused.bind(("127.0.0.1", 0))
        refusing_port = unused.getsockname()[1]
    proxy = TcpProxy("127.0.0.1", refusing_port)
    await nursery.start(proxy.run)
    for _ in range(3):
        async with await connect(proxy) as stream:
            await assert_closed_by_peer(stream)
    await until(lambda: proxy.connections == 0)


@pytest.mark.timeout(30)
async def test_cancelling_run_closes_the_listener_and_every_connection(
        echo: EchoServer) -> None:
    proxy = TcpProxy("127.0.0.1", echo.port)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(proxy.run)
        assert port == proxy.port
        stream = await connect(proxy)
        await until(lambda: echo.open == 1)
        proxy.blackhole()  # a black-holed connection, which nothing else would close
        black_holed = await connect(proxy)
        await until(lambda: proxy.connections == 2)
        nursery.cancel_scope.cancel()
    async with stream, black_holed:
        await assert_closed_by_peer(stream)
        await assert_closed_by_peer(black_holed)
    assert proxy.connections == 0
    await until(lambda: echo.open == 0)
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)


# -- PostgreSQL through the proxy ------------------------------------------------------------


@pytest.fixture
async def gateway_loop() -> AsyncIterator[None]:
    """The asyncio loop the gateway itself runs asyncpg on. Its reports of orphaned futures
    (asyncpg's TLS probe of a connection attempt cancelled or broken by a partition) are
    logged, as in production, where the bare trio-asyncio loop would raise them into the
    test."""
    async with open_loop():
        yield


@pytest.fixture
async def pg_proxy(nursery: trio.Nursery) -> TcpProxy:
    admin = urllib.parse.urlsplit(ADMIN_URL)
    proxy = TcpProxy(admin.hostname or "127.0.0.1", admin.port or 5432)
    await nursery.start(proxy.run)
    return proxy


def through(proxy: TcpProxy, database_url: str) -> str:
    """``database_url`` with its host and port replaced by the proxy's."""
    parts = urllib.parse.urlsplit(database_url)
    user, at, _host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user}{at}127.0.0.1:{proxy.port}").geturl()


@contextlib.asynccontextmanager
async def opened(dsn: str, *, max_size: int = 1) -> AsyncIterator[Database]:
    with trio.fail_after(15):
        database = await Database.open(dsn, min_size=1, max_size=max_size)
    try:
        yield database
    finally:
        # A pool whose connections a partition holds would wait on them: the bound ends it.
        with trio.CancelScope(shield=True), trio.move_on_after(15):
            await database.close()


@pytest.mark.timeout(60)
async def test_queries_pass_through_to_postgresql(gateway_loop: None, pg_proxy: TcpProxy,
                                                  database_url: str) -> None:
    async with opened(through(pg_proxy, database_url)) as db:
        assert await db.fetchval("health.ping") == 1
        with trio.fail_after(20):
            for _ in range(1000):
                assert await db.fetchval("health.ping") == 1
        assert pg_proxy.connections == 1  # the pool's one connection, reused


@pytest.mark.timeout(60)
async def test_a_query_on_a_black_holed_connection_gets_no_answer(
        gateway_loop: None, pg_proxy: TcpProxy, database_url: str) -> None:
    """No answer, no error, the socket kept: until restore() breaks the connection, and
    the hung query then fails as an outage."""
    async with opened(through(pg_proxy, database_url)) as db:
        assert await db.fetchval("health.ping") == 1
        pg_proxy.blackhole()
        failures: list[DatabaseUnavailable] = []
        answered = trio.Event()

        async def query() -> None:
            try:
                await db.fetchval("health.ping")
            except DatabaseUnavailable as exc:
                failures.append(exc)
            answered.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(query)
            with trio.move_on_after(1) as waited:
                await answered.wait()
            assert waited.cancelled_caught, "the query completed through the black hole"
            assert pg_proxy.connections > 0

            pg_proxy.restore()
            with trio.fail_after(5):
                await answered.wait()
        assert len(failures) == 1
        assert await db.fetchval("health.ping") == 1  # the pool reconnected


@pytest.mark.timeout(60)
async def test_cancelling_a_black_holed_query_waits_out_the_acquire_timeout(
        gateway_loop: None, pg_proxy: TcpProxy, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a ``move_on_after`` around a query on a partitioned link does: it does NOT end
    at its deadline. asyncpg answers the cancellation with a CancelRequest on a new
    connection (lost in the partition too), and the pool's release of the connection waits
    for it for the acquire's timeout; then it terminates the connection and the call
    raises DatabaseUnavailable, not trio.Cancelled."""
    acquire_timeout = 2.0
    monkeypatch.setattr(gateway.db, "ACQUIRE_TIMEOUT_SECONDS", acquire_timeout)
    async with opened(through(pg_proxy, database_url)) as db:
        assert await db.fetchval("health.ping") == 1
        pg_proxy.blackhole()
        started = trio.current_time()
        with trio.move_on_after(0.5) as scope, pytest.raises(DatabaseUnavailable):
            await db.fetchval("health.ping")
        elapsed = trio.current_time() - started
        assert not scope.cancelled_caught
        assert 0.5 + acquire_timeout - 0.1 <= elapsed < 0.5 + acquire_timeout + 1.5, elapsed
        # The pooled connection and the CancelRequest's are still open on the far side.
        assert pg_proxy.connections >= 2

        pg_proxy.restore()
        # Every connection open during the partition is closed now, so this answer came on
        # a new one: the cancelled connection was not handed out again.
        with trio.fail_after(10):
            assert await db.fetchval("health.ping") == 1


@pytest.mark.timeout(60)
async def test_cancelling_a_slow_query_on_a_healthy_link_is_prompt(
        gateway_loop: None, pg_proxy: TcpProxy, database_url: str) -> None:
    """The contrast: with the link up, the CancelRequest reaches the server and the same
    ``move_on_after`` ends at its deadline with the pool's connection fit for the next
    query."""
    async with opened(through(pg_proxy, database_url)) as db:
        started = trio.current_time()
        with trio.move_on_after(0.5) as scope:
            await db.fetchval("testing_engine.sleep", 10.0)
        assert scope.cancelled_caught
        assert trio.current_time() - started < 1.5
        with trio.fail_after(5):
            assert await db.fetchval("health.ping") == 1


@pytest.mark.timeout(60)
async def test_after_restore_new_pools_connect_again(gateway_loop: None, pg_proxy: TcpProxy,
                                                     database_url: str) -> None:
    dsn = through(pg_proxy, database_url)
    pg_proxy.blackhole()
    started = trio.current_time()
    with trio.move_on_after(1) as waited:
        await Database.open(dsn, min_size=1, max_size=1)
    assert waited.cancelled_caught, "a pool connected through the black hole"
    assert trio.current_time() - started < 2  # a connection attempt cancels at once

    pg_proxy.restore()
    async with opened(dsn) as db:
        assert await db.fetchval("health.ping") == 1


@pytest.mark.timeout(60)
async def test_cut_fails_the_query_in_flight_and_the_pool_reconnects(
        gateway_loop: None, pg_proxy: TcpProxy, database_url: str) -> None:
    async with opened(through(pg_proxy, database_url)) as db, opened(database_url) as observer:
        failures: list[DatabaseUnavailable] = []

        async def sleep_on_the_server() -> None:
            try:
                await db.fetchval("testing_engine.sleep", 20.0)
            except DatabaseUnavailable as exc:
                failures.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleep_on_the_server)

            async def sleeping() -> bool:
                return await observer.fetchval("testing_engine.sleeping_backends") == 1

            await until(sleeping, seconds=10)
            started = trio.current_time()
            pg_proxy.cut()
        assert trio.current_time() - started < 2  # at once, not when the sleep ends
        assert len(failures) == 1
        assert "closed" in str(failures[0].__cause__)  # asyncpg: closed mid-operation

        with trio.fail_after(10):
            assert await db.fetchval("health.ping") == 1  # a new connection, forwarded
        assert pg_proxy.connections == 1
