"""``/docs`` works without internet access: the page and every file it loads come from the
gateway itself (Swagger UI from the swagger-ui-bundle package), nothing inline, so a strict
Content-Security-Policy holds; the files directory answers nothing but its own files."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import trio

# name ending -> (content type, smallest plausible size in bytes)
EXPECTED = {
    ".css": ("text/css", 150),
    ".js": ("text/javascript", 500),
    ".png": ("image/png", 200),
}


class _References(HTMLParser):
    """Every src and href of a page, its scripts' inline text and its inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  # (tag, url)
        self.scripts: list[str | None] = []    # src of each <script>
        self.inline: list[str] = []            # inline script text, <style>, style=""
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name) is not None:
                self.urls.append((tag, values[name]))
        if "style" in values:
            self.inline.append(f"style attribute on <{tag}>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self.scripts.append(values.get("src"))
            self._in_script = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(data)


async def _page(gateway):
    async with gateway.client(None) as anonymous:
        page = await anonymous.get("/docs")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    refs = _References()
    refs.feed(page.text)
    return page, refs


async def test_docs_page_references_only_the_gateways_own_files(gateway):
    page, refs = await _page(gateway)
    assert refs.urls, page.text
    for tag, url in refs.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, (tag, url)
        assert url.startswith("/") and not url.startswith("//"), (tag, url)
    # Nothing inline: the page runs under default-src 'self' as sent.
    assert refs.inline == [], refs.inline
    assert refs.scripts and all(refs.scripts), refs.scripts
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy and "http" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_every_file_the_page_loads_is_served_with_its_type(gateway):
    _, refs = await _page(gateway)
    assets = [url for _, url in refs.urls if url.startswith("/docs/assets/")]
    names = {urlsplit(url).path.rsplit("/", 1)[1] for url in assets}
    assert {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-init.js"} <= names, names
    async with gateway.client(None) as anonymous:
        for url in assets:
            response = await anonymous.get(url)
            assert response.status_code == 200, (url, response.text[:200])
            ending = "." + urlsplit(url).path.rsplit(".", 1)[1]
            content_type, smallest = EXPECTED[ending]
            assert response.headers["content-type"].split(";")[0] == content_type, url
            assert len(response.content) >= smallest, (url, len(response.content))
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "max-age=" in response.headers["cache-control"], url
            if ending == ".css":
                # A stylesheet may still pull fonts or images from elsewhere.
                text = response.text.lower()
                assert "@import" not in text and "url(http" not in text, url
                assert "url(//" not in text and "url(\"http" not in text, url
            # The browser's copy is revalidated, not fetched again.
            again = await anonymous.get(url, headers={"If-None-Match": response.headers["etag"]})
            assert again.status_code == 304, url
        bundle = await anonymous.get("/docs/assets/swagger-ui-bundle.js")
        assert len(bundle.content) > 500_000  # the real Swagger UI, not a stub
        # The stand-alone preset is served too, for a page that wants the top bar.
        preset = await anonymous.get("/docs/assets/swagger-ui-standalone-preset.js")
        assert preset.status_code == 200 and len(preset.content) > 100_000


async def test_the_initialiser_points_the_ui_at_the_gateways_document(gateway):
    _, refs = await _page(gateway)
    [init] = [src for src in refs.scripts if "swagger-init.js" in src]
    # The bundle is loaded before the script that calls it.
    assert refs.scripts.index(init) == len(refs.scripts) - 1
    async with gateway.client(None) as anonymous:
        script = (await anonymous.get(init)).text
        spec = await anonymous.get("/openapi.json")
    assert 'const OPENAPI_PATH = "/openapi.json";' in script
    assert "url: OPENAPI_PATH" in script
    # No validator badge fetched from swagger.io, no other origin named at all.
    assert "validatorUrl: null" in script
    assert "http://" not in script and "https://" not in script
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
    # The docs' own routes are not part of the API's document.
    assert not [path for path in spec.json()["paths"] if path.startswith("/docs")]


TRAVERSALS = [
    "/docs/assets/../../gateway/http/app.py",
    "/docs/assets/..%2f..%2fapp.py",
    "/docs/assets/%2e%2e/swagger.py",
    "/docs/assets/%2e%2e%2fswagger.py",
    "/docs/assets/swagger-init.js/../swagger.py",
    "/docs/assets//etc/passwd",
    "/docs/assets/%2fetc%2fpasswd",
    "/docs/assets/..\\..\\app.py",
    "/docs/assets/swagger_init.js",       # the source file's own name: not listed
    "/docs/assets/swagger.py",
    "/docs/assets/index.html",             # in the bundle, not served
    "/docs/assets/swagger-ui.js.map",
    "/docs/assets/swagger-ui.css%00.py",
]


async def _raw_get(base_url: str, target: str) -> tuple[int, dict[str, str]]:
    """GET ``target`` exactly as written (an HTTP client would normalise the dots):
    the status and the headers."""
    parts = urlsplit(base_url)
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    async with stream:
        await stream.send_all(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                              "Connection: close\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            received += chunk
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
    return int(head[0].split(" ", 2)[1]), {k.lower(): v for k, v in headers.items()}


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_nothing_outside_the_listed_files_is_served(gateway, target):
    with trio.fail_after(10):
        status, headers = await _raw_get(gateway.base_url, target)
        if status in (301, 308):
            # Doubled slashes are merged by a redirect: to a path still under the
            # assets, which is not one of the files either.
            location = urlsplit(headers["location"]).path
            assert location.startswith("/docs/assets/"), (target, location)
            status, _ = await _raw_get(gateway.base_url, location)
    assert status == 404, (target, status)
