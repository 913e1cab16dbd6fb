"""The verified-key cache: a request costs no key lookup within ``http.auth_cache_seconds``,
and a key revoked in the database stops working once its entry expires."""

from __future__ import annotations

import uuid

import pytest
import trio
import trio.testing
from conftest import API_KEY

from gateway.http.routes.auth import KeyCache
from gateway.keys import hash_key
from gateway.store import accounts
from gateway.store.accounts import Account, Principal


def _principal() -> Principal:
    account = Account(id=uuid.uuid4(), name="a", concurrent_max=1, calls_per_minute=1,
                      daily_calls_max=None, daily_minutes_max=None, created_at=None)
    return Principal(account, uuid.uuid4())


def test_entries_expire_on_trio_time():
    clock = trio.testing.MockClock()
    seen = []

    async def main():
        cache = KeyCache(5.0)
        principal = _principal()
        cache.put(b"k", principal)
        seen.append(cache.get(b"k"))
        clock.jump(4.9)
        seen.append(cache.get(b"k"))
        clock.jump(0.2)
        seen.append(cache.get(b"k"))
        seen.append(cache.get(b"other"))
        off = KeyCache(0)
        off.put(b"k", principal)
        seen.append(off.get(b"k"))
        return principal

    principal = trio.run(main, clock=clock)
    assert seen == [principal, principal, None, None, None]


async def _revoke(db, key: str) -> None:
    await db.execute("testing.revoke_key", hash_key(key))


async def test_a_cached_key_outlives_its_revocation_until_expiry(gateway, db):
    tenant = await accounts.create_account(db, name="B", concurrent_max=1, calls_per_minute=1)
    async with gateway.client(tenant.api_key) as client:
        assert (await client.get("/api/v1/agents")).status_code == 200
        await _revoke(db, tenant.api_key)
        # Within auth_cache_seconds (5 by default) the process still knows the key...
        assert (await client.get("/api/v1/agents")).status_code == 200
        # ...but caps are read fresh, and an unknown key was never cached.
        assert (await client.get("/api/v1/call-limits")).json()["concurrent_max"] == 1
    async with gateway.client("gw_" + "x" * 40) as stranger:
        assert (await stranger.get("/api/v1/agents")).status_code == 401


class TestWithoutCache:
    @pytest.fixture
    def settings_overrides(self):
        return {"http": {"auth_cache_seconds": 0}}

    async def test_revocation_is_immediate(self, gateway, db):
        assert gateway.settings.http.auth_cache_seconds == 0
        tenant = await accounts.create_account(db, name="B", concurrent_max=1,
                                               calls_per_minute=1)
        async with gateway.client(tenant.api_key) as client:
            assert (await client.get("/api/v1/agents")).status_code == 200
            await _revoke(db, tenant.api_key)
            assert (await client.get("/api/v1/agents")).status_code == 401
        async with gateway.client(API_KEY) as client:
            assert (await client.get("/api/v1/agents")).status_code == 200
