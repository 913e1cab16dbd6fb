"""The HTTP edge: unknown paths and methods, errors, health, OpenAPI and its docs page."""

from __future__ import annotations

import uuid

import pytest
import trio
from conftest import API_KEY

SOME_ID = str(uuid.uuid4())


def assert_json_error(response, status: int, code: str | None = None) -> dict:
    """A JSON error body of the documented shape, and nothing about the internals."""
    what = f"{response.request.method} {response.request.url.path}: {response.text[:300]}"
    assert response.status_code == status, what
    assert response.headers["content-type"].startswith("application/json"), what
    assert "Traceback" not in response.text and 'File "' not in response.text, what
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str), what
    assert set(error) <= {"code", "message", "field"}, what
    if code is not None:
        assert error["code"] == code, what
    return error


# (method, path, methods the Allow header must list)
WRONG_METHODS = [
    ("PUT", "/api/v1/agents", {"GET", "POST"}),
    ("DELETE", "/api/v1/agents", {"GET", "POST"}),
    ("POST", f"/api/v1/agents/{SOME_ID}", {"GET", "PATCH", "DELETE"}),
    ("PUT", f"/api/v1/phone-numbers/{SOME_ID}", {"GET", "PATCH", "DELETE"}),
    ("PATCH", "/api/v1/phone-numbers", {"GET", "POST"}),
    ("POST", "/api/v1/call-limits", {"GET"}),
    ("POST", "/healthz", {"GET"}),
    ("DELETE", "/openapi.json", {"GET"}),
]


async def test_unknown_paths_404_and_wrong_methods_405(gateway, api):
    async with gateway.client(None) as anonymous:
        for client in (api, anonymous):
            for path in ("/nope", "/api/v1/nope", "/api/v2/agents", "/api/v1/agents/x/y",
                         "/api/v1/agents/", f"/api/v1/campaigns/{SOME_ID}/nope"):
                assert_json_error(await client.get(path), 404, "not_found")
    for method, path, allowed in WRONG_METHODS:
        response = await api.request(method, path)
        assert_json_error(response, 405, "method_not_allowed")
        listed = {m.strip() for m in response.headers.get("allow", "").split(",")}
        assert allowed <= listed and method not in listed, (method, path, listed)


def resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        assert node["$ref"].startswith("#/"), node
        target = spec
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def all_refs(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [
            ref for value in node.values() for ref in all_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in all_refs(value)]
    return []


async def test_openapi_document(gateway):
    async with gateway.client(None) as anonymous:  # public, like the docs page
        response = await anonymous.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"]
    for ref in all_refs(spec):  # every reference points somewhere
        resolve(spec, {"$ref": ref})
    assert {"type": "http", "scheme": "bearer"}.items() <= \
        spec["components"]["securitySchemes"]["bearer"].items()
    assert {"bearer": []} in spec["security"]

    paths = spec["paths"]
    expected = {"/api/v1/agents": {"get", "post"},
                "/api/v1/agents/{agent_id}": {"get", "patch", "delete"},
                "/api/v1/phone-numbers": {"get", "post"},
                "/api/v1/phone-numbers/{number_id}": {"get", "delete"},
                "/api/v1/campaigns": {"get", "post"},
                "/api/v1/campaigns/{campaign_id}": {"get"},
                "/api/v1/call-limits": {"get"}}
    for path, methods in expected.items():
        assert methods <= set(paths.get(path, {})), (path, list(paths.get(path, {})))

    agent_body = resolve(spec, paths["/api/v1/agents"]["post"]["requestBody"]["content"]
                         ["application/json"]["schema"])
    assert {"name", "status", "greeting", "sip_uri"} <= set(agent_body["properties"])
    assert "201" in paths["/api/v1/agents"]["post"]["responses"]
    limits = resolve(spec, paths["/api/v1/call-limits"]["get"]["responses"]["200"]["content"]
                     ["application/json"]["schema"])
    assert {"concurrent_max", "calls_per_minute", "daily_calls_max",
            "daily_minutes_max"} <= set(limits["properties"])

    form = paths["/api/v1/campaigns"]["post"]["requestBody"]["content"]
    assert list(form) == ["multipart/form-data"]
    schema = resolve(spec, form["multipart/form-data"]["schema"])
    fields = {name: resolve(spec, value) for name, value in schema["properties"].items()}
    assert (fields["contacts"]["type"], fields["contacts"]["format"]) == ("string", "binary")
    assert (fields["max_concurrent_calls"]["minimum"],
            fields["max_concurrent_calls"]["maximum"]) == (1, 100)
    assert {"name", "agent_id", "phone_number_id", "contacts"} <= set(schema["required"])


async def test_openapi_documents_healthz_as_public(gateway):
    async with gateway.client(None) as anonymous:
        spec = (await anonymous.get("/openapi.json")).json()
    assert spec["paths"]["/healthz"]["get"].get("security") == []


async def test_health_and_docs_need_no_key(gateway):
    async with gateway.client(None) as anonymous:
        health = await anonymous.get("/healthz")
        assert health.status_code == 200
        assert health.headers["content-type"].startswith("application/json")
        assert health.json() == {"status": "ok"}
        docs = await anonymous.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "<html" in docs.text.lower() or "<body" in docs.text.lower()
    assert "swagger" in docs.text.lower() and "/openapi.json" in docs.text


# Request ceiling: 1 MiB of form overhead + 1 byte. A short shutdown grace, because a
# connection left open after a 413 (see below) holds the server's shutdown for that long.
SMALL_LIMIT = {"limits": {"max_csv_bytes": 1}, "http": {"shutdown_grace_seconds": 0.5}}
TOO_BIG = b'{"name": "' + b"a" * (1024 * 1024 + 10) + b'"}'
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("settings_overrides", [SMALL_LIMIT])
async def test_error_responses_are_json_without_internals(gateway, api):
    """One of each kind of failure a client can provoke, all in the documented shape."""
    async with gateway.client("gw_" + "0" * 43) as stranger:
        assert_json_error(await stranger.get("/api/v1/agents"), 401, "unauthorized")
    assert_json_error(await api.get("/api/v1/nope"), 404, "not_found")
    assert_json_error(await api.get(f"/api/v1/agents/{SOME_ID}"), 404, "not_found")
    assert_json_error(await api.put("/api/v1/agents"), 405, "method_not_allowed")
    for body in (b"{", b'{"name": "a"} trailing', b'\xef\xbb\xbf{"name": "bom"}',
                 b'{"name": "a\x00b"}', b'{"name": "\\ud800"}', b'{"name": 1e999}'):
        assert_json_error(await api.post("/api/v1/agents", content=body, headers=JSON), 400)
    assert_json_error(await api.post("/api/v1/agents", json={"name": ""}), 400,
                      "validation_error")
    assert_json_error(await api.get("/api/v1/agents", params={"page": "x" * 5000}), 400)
    assert (await api.post("/api/v1/phone-numbers", json={"number": "+14155552671"})
            ).status_code == 201
    assert_json_error(await api.post("/api/v1/phone-numbers", json={"number": "+14155552671"}),
                      409, "conflict")
    async with gateway.client() as client:  # a connection of its own: see the last test
        assert_json_error(await client.post("/api/v1/agents", content=TOO_BIG, headers=JSON),
                          413, "payload_too_large")
    assert (await api.get("/api/v1/agents")).json()["total"] == 0


async def test_undecodable_json_is_400(api):
    for body in (b"\xff\xfe{}", b"[" * 5000 + b"]" * 5000):
        assert_json_error(await api.post("/api/v1/agents", content=body, headers=JSON), 400)


async def test_nul_characters_are_400(api):
    for path, body in [("/api/v1/agents", {"name": "a\u0000b"}),
                       ("/api/v1/agents", {"name": "a", "greeting": "hi\u0000"}),
                       ("/api/v1/agents", {"name": "a", "sip_uri": "sip:a\u0000@h"}),
                       ("/api/v1/phone-numbers", {"number": "+14155552671", "label": "\u0000"})]:
        assert_json_error(await api.post(path, json=body), 400)


async def declare_big_body(base_url: str, length: int) -> tuple[bytes, bool]:
    """POST headers that announce ``length`` bytes, send none of them; return what the
    server answered and whether it closed the connection within half a second."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    data, closed = b"", False
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(b"POST /api/v1/agents HTTP/1.1\r\nHost: test\r\n"
                              b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % (API_KEY.encode(), length))
        with trio.move_on_after(0.5):  # a closing server closes at once
            while chunk := await stream.receive_some():
                data += chunk
            closed = True
    return data, closed


@pytest.mark.parametrize("settings_overrides", [SMALL_LIMIT])
async def test_413_ends_the_connection(gateway):
    data, closed = await declare_big_body(gateway.base_url, 3 * 1024 * 1024)
    head = data.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 413"), data
    assert closed or b"\r\nconnection: close" in head, data
