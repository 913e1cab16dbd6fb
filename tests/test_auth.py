"""Bearer-key authentication, tenant isolation and call limits."""

from __future__ import annotations

import json
import re
import uuid

import asyncpg
import trio
import trio_asyncio
from conftest import API_KEY

from gateway.store import accounts

SOME_ID = str(uuid.uuid4())
# Every /api/v1 endpoint kind (the test adds whatever /openapi.json documents besides).
ENDPOINTS = [
    ("GET", "/api/v1/call-limits"),
    ("GET", "/api/v1/agents"),
    ("POST", "/api/v1/agents"),
    ("GET", f"/api/v1/agents/{SOME_ID}"),
    ("PATCH", f"/api/v1/agents/{SOME_ID}"),
    ("DELETE", f"/api/v1/agents/{SOME_ID}"),
    ("GET", "/api/v1/phone-numbers"),
    ("POST", "/api/v1/phone-numbers"),
    ("GET", f"/api/v1/phone-numbers/{SOME_ID}"),
    ("PATCH", f"/api/v1/phone-numbers/{SOME_ID}"),
    ("DELETE", f"/api/v1/phone-numbers/{SOME_ID}"),
    ("GET", "/api/v1/campaigns"),
    ("POST", "/api/v1/campaigns"),
    ("GET", f"/api/v1/campaigns/{SOME_ID}"),
    ("DELETE", f"/api/v1/campaigns/{SOME_ID}"),
    ("GET", f"/api/v1/campaigns/{SOME_ID}/contacts"),
]


def assert_unauthorized(status: int, headers, body: dict, what: str) -> None:
    assert status == 401, what
    assert headers.get("content-type", "").startswith("application/json"), what
    assert headers.get("www-authenticate", "").lower().startswith("bearer"), what
    assert body["error"]["code"] == "unauthorized", what
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], what


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
    return bool(sep and length and len(body) >= int(length[1]))


async def raw_get(base_url: str, path: str, header: bytes) -> tuple[int, dict, bytes]:
    """An HTTP/1.1 GET written by hand, for a header httpx refuses to send."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    data = b""
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(host, int(port)) as stream:
            await stream.send_all(b"GET %s HTTP/1.1\r\nHost: test\r\n%s\r\n\r\n"
                                  % (path.encode(), header))
            while not _complete(data):
                chunk = await stream.receive_some()
                assert chunk, f"connection closed after {data!r}"
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    return int(status_line.split()[1]), headers, body


# (what the client sends as Authorization, why it must fail); None: no header at all.
BAD_CREDENTIALS = [
    (None, "missing"),
    ("Basic xyz", "wrong scheme"),
    ("Bearer", "scheme without a key"),
    ("Zm9vYmFyYmF6", "random string"),
    ("Bearer not-a-gateway-key", "not a gw_ key"),
    ("Bearer gw_" + "u" * 43, "well formed but unknown"),
    (f"Bearer {API_KEY}x", "a valid key with a character more"),
    ("Bearer gw_" + "a" * 5000, "absurdly long"),
]


async def test_every_endpoint_rejects_bad_credentials(gateway):
    # One server for the whole table: each gateway fixture costs a database and a start.
    async with gateway.client(None) as client:
        spec = (await client.get("/openapi.json")).json()
        documented = [(method.upper(), re.sub(r"\{[^}]+\}", SOME_ID, path))
                      for path, operations in spec["paths"].items()
                      if path.startswith("/api/v1/") for method in operations]
        assert len(documented) >= len(ENDPOINTS)
        for authorization, why in BAD_CREDENTIALS:
            headers = {"Authorization": authorization} if authorization else {}
            for method, path in dict.fromkeys(ENDPOINTS + documented):
                body = {"name": "x"} if method in ("POST", "PATCH") else None
                response = await client.request(method, path, headers=headers, json=body)
                assert_unauthorized(response.status_code, response.headers, response.json(),
                                    f"{why}: {method} {path}")
    # httpx will not send a trailing space; the server must still see "no key".
    status, headers, body = await raw_get(gateway.base_url, "/api/v1/agents",
                                          b"Authorization: Bearer ")
    assert_unauthorized(status, headers, json.loads(body), "'Bearer ' with an empty key")


async def test_other_tenants_objects_are_404(gateway, api, db):
    tenant = await accounts.create_account(db, name="B", concurrent_max=10, calls_per_minute=60)
    async with gateway.client(tenant.api_key) as other:
        for collection, body, change in [
                ("agents", {"name": "A's agent", "greeting": "hi {{x}}"}, {"name": "B's"}),
                ("phone-numbers", {"number": "+14155552671", "label": "A's"}, {"label": "B's"})]:
            created = await api.post(f"/api/v1/{collection}", json=body)
            assert created.status_code == 201, created.text
            mine = created.json()
            url = f"/api/v1/{collection}/{mine['id']}"
            for method in ("GET", "PATCH", "DELETE"):
                response = await other.request(method, url,
                                               json=change if method == "PATCH" else None)
                assert response.status_code == 404, (method, url, response.text)
                assert response.json()["error"]["code"] == "not_found"
                assert mine["id"] not in response.text and "A's" not in response.text
            listing = (await other.get(f"/api/v1/{collection}")).json()
            assert (listing["data"], listing["total"]) == ([], 0), collection
            # Nothing B tried changed or removed A's object.
            assert (await api.get(url)).json() == mine
            assert (await api.get(f"/api/v1/{collection}")).json()["total"] == 1


async def test_call_limits_per_tenant_and_live(gateway, api, db):
    assert (await api.get("/api/v1/call-limits")).json() == {
        "concurrent_max": 10, "calls_per_minute": 60,
        "daily_calls_max": None, "daily_minutes_max": None}
    tenant = await accounts.create_account(db, name="B", concurrent_max=3, calls_per_minute=7)
    async with gateway.client(tenant.api_key) as other:
        assert (await other.get("/api/v1/call-limits")).json() == {
            "concurrent_max": 3, "calls_per_minute": 7,
            "daily_calls_max": None, "daily_minutes_max": None}
        await accounts.set_limits(db, tenant.account.id, concurrent_max=0, daily_calls_max=500)
        assert (await other.get("/api/v1/call-limits")).json() == {
            "concurrent_max": 0, "calls_per_minute": 7,
            "daily_calls_max": 500, "daily_minutes_max": None}
    # The other account is untouched.
    assert (await api.get("/api/v1/call-limits")).json()["concurrent_max"] == 10


async def test_valid_keys_work_and_are_stored_hashed(gateway, db, database_url):
    tenant = await accounts.create_account(db, name="B", concurrent_max=1, calls_per_minute=1)
    async with gateway.client(None) as client:
        for authorization in (f"Bearer {API_KEY}", f"bearer {API_KEY}",
                              f"Bearer {tenant.api_key}"):
            response = await client.get("/api/v1/agents",
                                        headers={"Authorization": authorization})
            assert response.status_code == 200, (authorization, response.text)
            assert response.json()["data"] == []

    conn = await trio_asyncio.aio_as_trio(asyncpg.connect)(database_url)
    try:
        rows = await trio_asyncio.aio_as_trio(conn.fetch)("SELECT * FROM api_keys")
    finally:
        await trio_asyncio.aio_as_trio(conn.close)()
    assert len(rows) == 2
    stored = [value.decode("latin-1") if isinstance(value, bytes) else str(value)
              for row in rows for value in row.values()]
    for key in (API_KEY, tenant.api_key):
        # Only a short display prefix is kept in the clear; the secret part is nowhere.
        assert len([r for r in rows if key.startswith(r["prefix"])]) == 1
        assert all(len(r["prefix"]) <= 12 for r in rows)
        assert not any(key[12:] in value for value in stored), "plaintext key in api_keys"
