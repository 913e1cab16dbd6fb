"""GET /readyz: 200 while the process can take traffic, 503 naming the check that fails.

Real PostgreSQL (the test's own database, whose migrations table a test may set back),
a real server on port 0, a TCP proxy between the gateway and PostgreSQL that a test
breaks, and a real SIP socket.
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
import trio
from ports import free_udp_port
from tcp_proxy import TcpProxy
from test_engine_faults import serving

from gateway.config import SipSettings
from gateway.http.routes.ops import READY_TIMEOUT_SECONDS
from gateway.migrations import available
from gateway.telephony.sim import SimAdapter
from gateway.telephony.sip import SipAdapter

pytestmark = pytest.mark.timeout(60)
READY = {"status": "ready", "checks": {"database": "ok", "migrations": "ok", "telephony": "ok"}}
SHIPPED = available()[-1]


async def readyz(gateway) -> tuple[int, dict, dict]:
    async with gateway.client(api_key=None) as anonymous:  # public: no key
        response = await anonymous.get("/readyz")
    return response.status_code, response.json(), dict(response.headers)


async def test_ready_when_the_database_the_schema_and_the_adapter_are(gateway):
    status, body, _ = await readyz(gateway)
    assert (status, body) == (200, READY)


async def test_not_ready_while_the_schema_is_behind_or_ahead_of_this_gateway(gateway, raw):
    last = await raw.fetchrow("SELECT * FROM schema_migrations WHERE version = $1",
                              SHIPPED.version)
    await raw.execute("DELETE FROM schema_migrations WHERE version = $1", SHIPPED.version)
    status, body, headers = await readyz(gateway)
    assert status == 503 and headers["retry-after"] == "5"
    assert body["status"] == "not_ready" and body["failing"] == ["migrations"]
    assert body["checks"] == {
        **READY["checks"], "migrations": f"applied {SHIPPED.version - 1}, this gateway ships "
                                         f"{SHIPPED.version} (not applied yet)"}
    async with gateway.client(api_key=None) as anonymous:  # alive all the same
        assert (await anonymous.get("/healthz")).status_code == 200
    # A newer gateway's migration on the database: this one is not ready either.
    await raw.execute("INSERT INTO schema_migrations (version, name, checksum) "
                      "VALUES ($1, $2, $3), ($4, 'next', 'x')", last["version"], last["name"],
                      last["checksum"], SHIPPED.version + 1)
    status, body, _ = await readyz(gateway)
    assert status == 503 and body["failing"] == ["migrations"]
    assert "a newer gateway migrated it" in body["checks"]["migrations"]
    await raw.execute("DELETE FROM schema_migrations WHERE version = $1", SHIPPED.version + 1)
    assert (await readyz(gateway))[:2] == (200, READY)


@pytest.mark.timeout(90)
async def test_not_ready_while_the_database_does_not_answer_and_ready_again_after(
        database_url, tmp_path):
    target = urlparse(database_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(proxy.run)
        via_proxy = target._replace(netloc=f"{target.username}@127.0.0.1:{port}").geturl()
        async with serving(via_proxy, tmp_path, {}) as gateway:
            assert (await readyz(gateway))[:2] == (200, READY)
            proxy.blackhole()  # every packet dropped: the database never answers
            began = trio.current_time()
            status, body, headers = await readyz(gateway)
            took = trio.current_time() - began
            assert READY_TIMEOUT_SECONDS <= took < READY_TIMEOUT_SECONDS + 2
            assert status == 503 and headers["retry-after"] == "5"
            assert body["failing"] == ["database", "migrations"]
            assert body["checks"] == {
                "database": f"no answer within {READY_TIMEOUT_SECONDS:g} s",
                "migrations": "unknown (the database did not answer)", "telephony": "ok"}
            proxy.restore()  # the connections that lived through it are closed
            with trio.fail_after(30):
                while (found := await readyz(gateway))[0] != 200:
                    assert found[1]["failing"][0] == "database", found
                    await trio.sleep(0.1)
            assert found[1] == READY
        nursery.cancel_scope.cancel()


async def test_not_ready_while_the_adapter_cannot_place_calls(gateway, monkeypatch):
    monkeypatch.setattr(SimAdapter, "ready", property(lambda self: False))
    status, body, headers = await readyz(gateway)
    assert status == 503 and headers["retry-after"] == "5" and body["failing"] == ["telephony"]
    assert body["checks"]["telephony"] == "the sim adapter is not running"


async def test_the_sip_adapter_is_ready_while_its_socket_is_bound_and_read(database_url,
                                                                          tmp_path):
    settings = SipSettings(proxy=f"127.0.0.1:{free_udp_port()}", bind_host="127.0.0.1",
                           bind_port=0)
    adapter = SipAdapter(settings)
    assert not adapter.ready
    async with trio.open_nursery() as nursery:
        await nursery.start(adapter.run)
        assert adapter.ready
        nursery.cancel_scope.cancel()
    assert not adapter.ready
    # A gateway on a SIP trunk: ready once serving (its socket bound before the database).
    sip = {"adapter": "sip", "sip": settings.model_dump(mode="json") | {"password": ""}}
    async with serving(database_url, tmp_path, {"telephony": sip}) as gateway:
        assert (await readyz(gateway))[:2] == (200, READY)


async def test_readyz_and_metrics_are_documented_as_public(gateway):
    async with gateway.client(api_key=None) as anonymous:
        spec = (await anonymous.get("/openapi.json")).json()
    readiness = spec["paths"]["/readyz"]["get"]
    assert readiness["security"] == [] and set(readiness["responses"]) == {"200", "503"}
    assert "Retry-After" in readiness["responses"]["503"]["headers"]
    assert readiness["responses"]["503"]["description"].startswith("Not ready")
    scrape = spec["paths"]["/metrics"]["get"]
    assert scrape["security"] == [] and "text/plain" in scrape["responses"]["200"]["content"]
    # The API's 503s keep their own description.
    assert spec["paths"]["/healthz"]["get"]["responses"]["503"]["description"].startswith(
        "PostgreSQL is unreachable")
