"""The dashboard's files over HTTP (no browser): types, caching, security headers, paths
that must not resolve, and their absence from the OpenAPI document."""

from __future__ import annotations

import re

import httpx
import pytest

from gateway.http.routes import dashboard
from gateway.http.routes.dashboard import assets, vocabulary_document


@pytest.fixture
async def anonymous(gateway):
    async with gateway.client(api_key=None) as client:
        yield client


def check_headers(response: httpx.Response) -> None:
    csp = response.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["ETag"])


async def test_the_page_is_public_strict_and_has_no_inline_code(anonymous):
    response = await anonymous.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    check_headers(response)
    html = response.text
    # Scripts only from files (a module), styles only from the stylesheet.
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts == [(' type="module" src="/ui/js/main.js"', "")]
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    assert '<link rel="stylesheet" href="/ui/app.css">' in html


async def test_every_file_has_its_type_an_etag_and_answers_304_unchanged(anonymous):
    served = assets()
    expected_types = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
                      "svg": "image/svg+xml", "json": "application/json"}
    names = [name for name in served if name != dashboard.INDEX]
    assert {"app.css", "favicon.svg", "vocabulary.json", "js/main.js", "js/sse.js",
            "js/views/campaign.js"} <= set(names)
    for name in names:
        response = await anonymous.get(f"/ui/{name}")
        assert response.status_code == 200, name
        assert response.headers["Content-Type"] == expected_types[name.rsplit(".", 1)[1]]
        check_headers(response)
        assert response.content == served[name].body
        again = await anonymous.get(f"/ui/{name}",
                                    headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["ETag"] == response.headers["ETag"]
        other = await anonymous.get(f"/ui/{name}", headers={"If-None-Match": '"stale"'})
        assert other.status_code == 200
    head = await anonymous.head("/ui/js/main.js")
    assert head.status_code == 200 and head.content == b""


# Paths that must not resolve to anything (one gateway for them all).
UNSERVED = [
    b"/ui/../pyproject.toml",
    b"/ui/..%2f..%2fpyproject.toml",
    b"/ui/%2e%2e/%2e%2e/config.py",
    b"/ui/js/../../http/app.py",
    b"/ui/js/..%2F..%2F..%2Fvocabulary.py",
    b"/ui//etc/passwd",
    b"/ui/%2Fetc%2Fpasswd",
    b"/ui/index.html",
    b"/ui/js",
    b"/ui/js/",
    b"/ui/missing.js",
    b"/ui/app.css%00.js",
    b"/ui/APP.CSS",
    b"/index.html",
]


async def test_nothing_outside_the_dashboards_files_is_served(anonymous):
    for raw_path in UNSERVED:
        request = anonymous.build_request("GET", "/")
        request.url = request.url.copy_with(raw_path=raw_path)
        # Werkzeug answers "//" with a redirect to the path with one slash: followed, it is
        # a 404 like the others.
        response = await anonymous.send(request, follow_redirects=True)
        assert response.status_code == 404, (raw_path, response.text[:200])
        assert response.json()["error"]["code"] == "not_found"
        assert all(r.headers["Location"].split("/", 3)[-1].startswith("ui/")
                   for r in response.history)


async def test_the_dashboard_is_not_in_the_openapi_document(anonymous):
    document = (await anonymous.get("/openapi.json")).json()
    assert "/" not in document["paths"]
    assert not [path for path in document["paths"] if path.startswith("/ui")]


async def test_the_vocabulary_is_the_gateways(anonymous):
    served = (await anonymous.get("/ui/vocabulary.json")).json()
    assert served == {key: [str(v) for v in value] if isinstance(value, list) else
                      {verb: [str(s) for s in statuses] for verb, statuses in value.items()}
                      for key, value in vocabulary_document().items()}
    assert served["transitions"]["pause"] == ["running"]
    assert "agent_unavailable" in served["outcomes"]
