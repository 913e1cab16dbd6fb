"""The gateway as a running process: signals, the embedded default end to end, and a
PostgreSQL outage it must ride out (503 + Retry-After, then recovery without a restart)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import structlog.testing
import trio
import trio.testing
from conftest import API_KEY, make_settings
from gateway_process import GRACE_SECONDS, GatewayProcess, clean_env, needs_pg_binaries
from ports import free_tcp_port

from gateway.db import Database, DatabaseUnavailable
from gateway.embedded_pg import _Cluster, _find_bindir, _server_user, embedded_postgres
from gateway.keys import generate_key
from gateway.serve import serve

KEY_LINE = re.compile(r"^gw_[A-Za-z0-9_-]{43}$", re.MULTILINE)



@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serve_and_stop_on_signal(database_url, tmp_path, signum):
    key = generate_key()
    gateway = GatewayProcess(tmp_path, clean_env(
        GATEWAY_DATABASE_URL=database_url, GATEWAY_HTTP_PORT=str(free_tcp_port()),
        GATEWAY_HTTP_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        GATEWAY_BOOTSTRAP_API_KEY=key), "gateway")
    try:
        await gateway.start()
        await gateway.wait_healthy()
        async with gateway.client(key) as api:
            response = await api.get("/api/v1/call-limits")
            assert response.status_code == 200, response.text
            assert response.json() == {"concurrent_max": 10, "calls_per_minute": 60,
                                       "daily_calls_max": None, "daily_minutes_max": None}
        async with gateway.client(None) as anonymous:
            assert (await anonymous.get("/api/v1/call-limits")).status_code == 401
        assert await gateway.stop(signum) == 0
    finally:
        await gateway.kill()

    events = gateway.events()
    names = [e["event"] for e in events]
    for expected in ("database.connected", "account.bootstrapped", "http.listening",
                     "gateway.signal", "gateway.stopping", "gateway.stopped"):
        assert expected in names, names
    assert names.index("gateway.signal") < names.index("gateway.stopped")
    assert names[-1] == "gateway.stopped"
    signal_event = next(e for e in events if e["event"] == "gateway.signal")
    assert signal_event["signal"] == signal.Signals(signum).name
    bootstrapped = next(e for e in events if e["event"] == "account.bootstrapped")
    assert bootstrapped["api_key_prefix"] == key[:11]
    # The key itself is never shown: not in the logs, not on stdout, not in a key file.
    assert key not in gateway.stderr and key not in gateway.stdout
    assert gateway.stdout == ""
    assert not (tmp_path / "gateway-data" / "api_key").exists()


@pytest.fixture
def traversable_dir():
    """A working dir the postgres user can traverse when we are root (tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="gw-process-", dir="/tmp"))
    os.chmod(base, 0o755)
    yield base
    data_dir = base / "data"
    if (data_dir / "pg" / "postmaster.pid").exists():  # never leave a server behind
        cluster = _Cluster(data_dir, _find_bindir(), _server_user())
        cluster.run("pg_ctl", "stop", "-D", cluster.pgdir, "-m", "immediate", "-w")
    shutil.rmtree(base, ignore_errors=True)


@needs_pg_binaries
@pytest.mark.timeout(120)
async def test_embedded_default_end_to_end(traversable_dir):
    data_dir = traversable_dir / "data"
    env = clean_env(GATEWAY_DATABASE_DATA_DIR=str(data_dir),
                    GATEWAY_HTTP_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS))
    assert "GATEWAY_DATABASE_URL" not in env and "GATEWAY_BOOTSTRAP_API_KEY" not in env

    # First start: a new cluster, a default account, its key printed once and saved 0600.
    first = GatewayProcess(traversable_dir,
                           {**env, "GATEWAY_HTTP_PORT": str(free_tcp_port())}, "first")
    try:
        await first.start()
        await first.wait_healthy(90)
        keys = KEY_LINE.findall(first.stdout)
        assert len(keys) == 1, first.stdout
        key = keys[0]
        assert first.stdout.count(key) == 1
        key_file = data_dir / "api_key"
        st = key_file.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
        assert key_file.read_text() == key + "\n"
        async with first.client(key) as api:
            response = await api.get("/api/v1/call-limits")
            assert response.status_code == 200, response.text
            assert response.json()["concurrent_max"] == 10
            created = await api.post("/api/v1/phone-numbers", json={"number": "+14155550100"})
            assert created.status_code == 201, created.text
        assert (data_dir / "pg" / "postmaster.pid").exists()
        assert await first.stop() == 0
    finally:
        await first.kill()
    assert not (data_dir / "pg" / "postmaster.pid").exists()  # the cluster stopped with it
    first_names = [e["event"] for e in first.events()]
    assert "embedded_pg.initdb" in first_names and "embedded_pg.stopped" in first_names
    assert first_names.index("gateway.stopped") < first_names.index("embedded_pg.stopped")
    password = (data_dir / "pg-password").read_text().strip()
    assert key not in first.stderr and password not in first.stderr + first.stdout

    # Second start on the same data dir: no new key, the old one works, data persisted.
    second = GatewayProcess(traversable_dir,
                            {**env, "GATEWAY_HTTP_PORT": str(free_tcp_port())}, "second")
    try:
        await second.start()
        await second.wait_healthy(90)
        assert "gw_" not in second.stdout
        assert key_file.read_text() == key + "\n"
        async with second.client(key) as api:
            response = await api.get("/api/v1/call-limits")
            assert response.status_code == 200, response.text
            numbers = await api.get("/api/v1/phone-numbers")
            assert numbers.status_code == 200, numbers.text
            assert [n["number"] for n in numbers.json()["data"]] == ["+14155550100"]
        assert await second.stop() == 0
    finally:
        await second.kill()
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    second_names = [e["event"] for e in second.events()]
    assert "embedded_pg.initdb" not in second_names
    assert "embedded_pg.started" in second_names and "embedded_pg.stopped" in second_names
    assert key not in second.stderr and password not in second.stderr + second.stdout


async def _pg_ctl(cluster: _Cluster, *args: str) -> None:
    result = await trio.to_thread.run_sync(cluster.run, "pg_ctl", *args)
    assert result.returncode == 0, result.stderr + result.stdout


@needs_pg_binaries
@pytest.mark.timeout(120)
async def test_database_outage_answers_503_then_recovers(aio_loop, traversable_dir):
    data_dir = traversable_dir / "data"
    async with embedded_postgres(data_dir) as dsn:
        cluster = _Cluster(data_dir, _find_bindir(), _server_user())
        port = urlsplit(dsn).port
        # The supervisor keeps polling the database all through the outage (every 50 ms):
        # the gateway must ride it out, not crash.
        settings = make_settings(dsn, traversable_dir / "gateway-data",
                                 engine={"scheduler_poll_seconds": 0.05,
                                         "caps_refresh_seconds": 0.05})
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            with trio.fail_after(30):
                binds = await nursery.start(functools.partial(
                    serve, settings, shutdown=shutdown, handle_signals=False,
                    bootstrap_key=API_KEY))
            try:
                async with httpx.AsyncClient(base_url=binds[0], timeout=15, headers={
                        "Authorization": f"Bearer {API_KEY}"}) as api:
                    assert (await api.get("/api/v1/call-limits")).status_code == 200

                    # PostgreSQL goes away under the running gateway.
                    await _pg_ctl(cluster, "stop", "-D", str(cluster.pgdir), "-m", "fast",
                                  "-w", "-t", "30")
                    for _ in range(3):  # every request, not only the first after the drop
                        response = await api.get("/api/v1/call-limits")
                        assert response.status_code == 503, response.text
                        assert response.json()["error"]["code"] == "service_unavailable"
                        assert int(response.headers["Retry-After"]) > 0
                    health = await api.get("/healthz")
                    assert health.status_code == 503 and "Retry-After" in health.headers

                    # It comes back on the same port: the gateway recovers by itself.
                    await _pg_ctl(cluster, "start", "-w", "-t", "30", "-D", str(cluster.pgdir),
                                  "-l", str(cluster.logfile), "-o",
                                  f"-p {port} -c listen_addresses=127.0.0.1 "
                                  "-c unix_socket_directories=''")
                    with trio.fail_after(30):
                        while True:
                            response = await api.get("/api/v1/call-limits")
                            if response.status_code == 200:
                                break
                            assert response.status_code == 503, response.text
                            await trio.sleep(0.05)
                    assert response.json()["calls_per_minute"] == 60
                    assert (await api.get("/healthz")).status_code == 200
            finally:
                shutdown.set()
    assert not (data_dir / "pg" / "postmaster.pid").exists()


@needs_pg_binaries
@pytest.mark.timeout(120)
async def test_start_waits_for_database_instead_of_exiting(traversable_dir):
    data_dir = traversable_dir / "data"
    async with embedded_postgres(data_dir) as dsn:
        cluster = _Cluster(data_dir, _find_bindir(), _server_user())
        port = urlsplit(dsn).port
        await _pg_ctl(cluster, "stop", "-D", str(cluster.pgdir), "-m", "fast", "-w", "-t", "30")
        settings = make_settings(dsn, traversable_dir / "gateway-data")
        shutdown = trio.Event()
        started: list[str] = []

        async def run_gateway():
            started.extend(await nursery.start(functools.partial(
                serve, settings, shutdown=shutdown, handle_signals=False,
                bootstrap_key=API_KEY)))

        with structlog.testing.capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                try:
                    nursery.start_soon(run_gateway)
                    # Wait (bounded) until the gateway has tried and found no database.
                    with trio.fail_after(30):
                        while not any(e["event"] == "database.unavailable" for e in logs):
                            await trio.sleep(0.05)
                    assert not started  # still waiting, not serving, not crashed
                    await _pg_ctl(cluster, "start", "-w", "-t", "30", "-D", str(cluster.pgdir),
                                  "-l", str(cluster.logfile), "-o",
                                  f"-p {port} -c listen_addresses=127.0.0.1 "
                                  "-c unix_socket_directories=''")
                    with trio.fail_after(30):
                        while not started:
                            await trio.sleep(0.05)
                    async with httpx.AsyncClient(base_url=started[0], timeout=15, headers={
                            "Authorization": f"Bearer {API_KEY}"}) as api:
                        assert (await api.get("/api/v1/call-limits")).status_code == 200
                finally:
                    shutdown.set()
        unavailable = next(e for e in logs if e["event"] == "database.unavailable")
        assert unavailable["url"].startswith("postgresql://gateway:***@127.0.0.1:")
        assert urlsplit(dsn).password not in repr(logs)
    assert not (data_dir / "pg" / "postmaster.pid").exists()


def test_library_log_lines_are_json(tmp_path):
    """hypercorn and asyncpg log through the standard library: their lines are JSON too,
    whatever the message holds (quotes, backslashes, newlines)."""
    message = 'bad request line "GET /\\x"\nsecond line'
    script = ("from gateway.logs import configure_logging; configure_logging('info')\n"
              "import logging\n"
              f"logging.getLogger('hypercorn.error').warning({message!r})\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert isinstance(record, dict) and "event" in record
    assert message in record.values() and "hypercorn.error" in record.values()


# --- a server that ends a connection: FATAL 57P01, as PostgreSQL sends on shutdown -----------


def _error_response(severity: str, code: str, message: str) -> bytes:
    fields = b"".join(kind + value.encode() + b"\0" for kind, value in (
        (b"S", severity), (b"V", severity), (b"C", code), (b"M", message))) + b"\0"
    return b"E" + struct.pack("!i", len(fields) + 4) + fields


ADMIN_SHUTDOWN = _error_response("FATAL", "57P01",
                                 "terminating connection due to administrator command")


class KillingProxy:
    """A TCP proxy in front of the test PostgreSQL that can end every connection the way a
    shutting-down server does: the FATAL message first, the socket closed a moment later.

    ``kill()`` sends the FATAL and holds the sockets open (the moment between PostgreSQL's
    last message and the FIN arriving, made to last), refusing new connections;
    ``release()`` closes the held sockets and forwards new connections again."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        self.target = (parts.hostname, parts.port or 5432)
        self._parts = parts
        self._kill = trio.Event()
        self._release = trio.Event()
        self.killed = 0
        self.url = ""

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        netloc = self._parts.netloc.rsplit("@", 1)
        host_port = f"127.0.0.1:{port}"
        self.url = self._parts._replace(
            netloc=f"{netloc[0]}@{host_port}" if len(netloc) == 2 else host_port).geturl()
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def kill(self) -> None:
        self._kill.set()
        # Every task blocked again: the proxy has sent its FATALs and the gateway's asyncio
        # side has read them (a readable socket keeps its reader runnable).
        with trio.fail_after(10):
            await trio.testing.wait_all_tasks_blocked()
        assert self.killed >= 1

    def release(self) -> None:
        self._release.set()
        self._kill, self._release = trio.Event(), trio.Event()

    async def _handle(self, client: trio.SocketStream) -> None:
        kill, release = self._kill, self._release
        async with client:
            if kill.is_set():
                return  # refused while "shutting down"
            try:
                server = await trio.open_tcp_stream(*self.target)
            except OSError:
                return
            async with server, trio.open_nursery() as nursery:
                async def pump(source, sink):
                    try:
                        async for chunk in source:
                            await sink.send_all(chunk)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    nursery.cancel_scope.cancel()  # either side closed: done

                nursery.start_soon(pump, client, server)
                nursery.start_soon(pump, server, client)
                await kill.wait()
                nursery.cancel_scope.cancel()
            if not kill.is_set():
                return
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await client.send_all(ADMIN_SHUTDOWN)
                self.killed += 1
                await release.wait()


async def _until_ok(check) -> None:
    with trio.fail_after(20):
        while not await check():
            await trio.sleep(0.05)


async def test_connection_killed_by_server_is_database_unavailable(aio_loop, database_url):
    proxy = KillingProxy(database_url)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        db = await Database.open(proxy.url, min_size=1, max_size=1)
        try:
            assert await db.fetchval("health.ping") == 1
            await proxy.kill()
            with pytest.raises(DatabaseUnavailable):
                await db.fetchval("health.ping")
            proxy.release()

            async def ping() -> bool:
                try:
                    return await db.fetchval("health.ping") == 1
                except DatabaseUnavailable:
                    return False

            await _until_ok(ping)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await db.close()
            nursery.cancel_scope.cancel()


async def test_connection_killed_by_server_is_503_not_a_crash(database_url, tmp_path):
    proxy = KillingProxy(database_url)
    async with trio.open_nursery() as outer:
        await outer.start(proxy.run)
        settings = make_settings(proxy.url, tmp_path)
        shutdown = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(30):
                    binds = await nursery.start(functools.partial(
                        serve, settings, shutdown=shutdown, handle_signals=False,
                        bootstrap_key=API_KEY))
                try:
                    async with httpx.AsyncClient(base_url=binds[0], timeout=15, headers={
                            "Authorization": f"Bearer {API_KEY}"}) as api:
                        assert (await api.get("/api/v1/call-limits")).status_code == 200
                        await proxy.kill()
                        response = await api.get("/api/v1/call-limits")
                        assert response.status_code == 503, response.text
                        assert response.json()["error"]["code"] == "service_unavailable"
                        assert "Retry-After" in response.headers
                        proxy.release()

                        async def ok() -> bool:
                            return (await api.get("/api/v1/call-limits")).status_code == 200

                        await _until_ok(ok)
                finally:
                    shutdown.set()
        finally:
            proxy.release()
            outer.cancel_scope.cancel()
