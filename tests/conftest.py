"""Shared fixtures. The rules every test here follows:

- Real things: PostgreSQL over a real connection (a fresh database per test, cloned from a
  migrated template), the API over a real hypercorn server on 127.0.0.1 port 0.
- Every async test, fixtures included, is cancelled after ``TEST_TIMEOUT_SECONDS`` of real
  time (or the ``timeout`` marker's value).
- No sleeps to wait for something: wait for the event, or drive trio's clock.

PostgreSQL: ``GATEWAY_TEST_DATABASE_URL`` (default: the local server as ``postgres``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
import trio
import trio_asyncio
from multipart_body import multipart

from gateway.config import Settings
from gateway.db import Database
from gateway.logs import configure_logging
from gateway.migrations import migrate
from gateway.serve import serve

ADMIN_URL = os.environ.get("GATEWAY_TEST_DATABASE_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_TIMEOUT_SECONDS = 60
API_KEY = "gw_test_" + "k" * 40


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): time bound of an async test")
    configure_logging("warning", cache=False)


def _bounded_run(seconds: float):
    """A ``trio.run`` for pytest-trio whose whole run (fixtures and test) is cancelled after
    ``seconds`` of real time, whatever clock the test drives (a MockClock may run years
    ahead in an instant, so the bound cannot be a trio deadline)."""

    def run(fn, **kwargs):
        async def bounded():
            token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                timer = threading.Timer(seconds, token.run_sync_soon, args=(scope.cancel,))
                timer.start()
                try:
                    return await fn()
                finally:
                    timer.cancel()
            raise TimeoutError(f"the test ran longer than {seconds} s")

        return trio.run(bounded, **kwargs)

    return run


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Bound every async test (after pytest-trio has marked them in trio mode)."""
    for item in items:
        if item.get_closest_marker("trio") is None:
            continue
        marker = item.get_closest_marker("timeout")
        seconds = marker.args[0] if marker else TEST_TIMEOUT_SECONDS
        item.add_marker(pytest.mark.trio(run=_bounded_run(seconds)), append=False)


def _database_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_database():
    """A database with every migration applied, cloned for each test."""
    name = f"gateway_tmpl_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))

    async def apply() -> None:
        async with trio_asyncio.open_loop():
            db = await Database.open(_database_url(name), min_size=1, max_size=1)
            try:
                await migrate(db)
            finally:
                await db.close()

    trio.run(apply)
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_database_url():
    """A brand-new database with nothing in it (not cloned from the migrated template)."""
    name = f"gateway_empty_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield _database_url(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(template_database):
    """The URL of a fresh, migrated database of this test's own."""
    name = f"gateway_test_{uuid.uuid4().hex[:12]}"
    # WAL_LOG (the default) copies a small database without forcing a checkpoint.
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield _database_url(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def aio_loop():
    async with trio_asyncio.open_loop() as loop:
        yield loop


@pytest.fixture
async def db(aio_loop, database_url):
    database = await Database.open(database_url, min_size=1, max_size=4)
    yield database
    with trio.CancelScope(shield=True), trio.move_on_after(10):
        await database.close()


def _mock_clock() -> bool:
    try:
        return isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
    except RuntimeError:  # not in a trio run
        return False


def make_settings(database_url: str, data_dir: Path, **sections) -> Settings:
    base = {"http": {"host": "127.0.0.1", "port": 0, "shutdown_grace_seconds": 5},
            "database": {"url": database_url, "data_dir": str(data_dir), "pool_max_size": 4},
            # In the test's process (a child process per gateway would cost every test a
            # Python start); tests/test_webhook_worker.py runs the child.
            "webhooks": {"worker": "inline"}}
    if _mock_clock():
        # A task waking 4 times a second would make an autojumping clock stop at each
        # wake-up (its threshold of real idle time every time): minutes of a test's time
        # would take as many seconds.
        base["metrics"] = {"loop_lag_interval_seconds": 0}
    for section, values in sections.items():
        base[section] = {**base.get(section, {}), **values}
    return Settings.model_validate(base)


class Gateway:
    """A running gateway: its base URL and a client authenticated as the bootstrap account."""

    def __init__(self, base_url: str, settings: Settings) -> None:
        self.base_url = base_url
        self.settings = settings

    def client(self, api_key: str | None = API_KEY) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)


@pytest.fixture
def settings_overrides() -> dict:
    """Override in a test module to change the server's settings (section -> values)."""
    return {}


@pytest.fixture
async def gateway(database_url, tmp_path, settings_overrides):
    settings = make_settings(database_url, tmp_path, **settings_overrides)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            binds = await nursery.start(functools.partial(
                serve, settings, shutdown=shutdown, handle_signals=False,
                bootstrap_key=API_KEY))
        yield Gateway(binds[0], settings)
        shutdown.set()


@pytest.fixture
async def api(gateway):
    async with gateway.client() as client:
        yield client


def us_number(i: int) -> str:
    """The i-th of 100,000 distinct valid US numbers (+1 212 2xx xxxx...)."""
    return f"+1212{200 + i // 10000:03d}{i % 10000:04d}"


def contacts_csv(count: int, *, extra: str = "first_name", start: int = 0) -> bytes:
    lines = [f"phone_number,{extra}"]
    lines += [f"{us_number(i)},name{i}" for i in range(start, start + count)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
async def agent_id(api) -> str:
    response = await api.post("/api/v1/agents", json={"name": "Ava",
                                                      "greeting": "Hi {{first_name}}"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
async def number_id(api) -> str:
    response = await api.post("/api/v1/phone-numbers", json={"number": "+14155550100"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def create_campaign(api, agent_id, number_id):
    """POST a campaign: ``await create_campaign(csv_bytes, **form_fields)`` -> response."""

    async def create(csv: bytes | None = b"phone_number\n+12025550143\n", *,
                     client: httpx.AsyncClient | None = None, **fields):
        form = {"name": "Q4 follow-ups", "agent_id": agent_id, "phone_number_id": number_id}
        form.update({key: str(value) for key, value in fields.items()})
        form = {key: value for key, value in form.items() if value != "<omit>"}
        files = {"contacts": csv} if csv is not None else {}
        body, content_type = multipart(form, files)
        return await (client or api).post("/api/v1/campaigns", content=body,
                                          headers={"Content-Type": content_type})

    return create


class Raw:
    """Plain SQL on a connection of its own (rows written as the engine would have, or
    read beside the gateway's pool)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, *args) -> str:
        return await trio_asyncio.aio_as_trio(self.conn.execute)(sql, *args)

    async def fetch(self, sql: str, *args) -> list:
        return await trio_asyncio.aio_as_trio(self.conn.fetch)(sql, *args)

    async def fetchrow(self, sql: str, *args):
        return await trio_asyncio.aio_as_trio(self.conn.fetchrow)(sql, *args)

    async def fetchval(self, sql: str, *args):
        return await trio_asyncio.aio_as_trio(self.conn.fetchval)(sql, *args)


@pytest.fixture
async def raw(aio_loop, database_url):
    conn = await trio_asyncio.aio_as_trio(asyncpg.connect)(database_url)
    yield Raw(conn)
    with trio.CancelScope(shield=True):
        await trio_asyncio.aio_as_trio(conn.close)()
