"""``/docs``: Swagger UI on the gateway's own ``/openapi.json``, every file served from here.

No CDN: the page, its stylesheet, scripts and icons come from this blueprint (the UI's
files from the ``swagger-ui-bundle`` package, its initialiser from ``swagger_init.js``
beside this module), so the documentation works on a machine without internet access
and under a strict Content-Security-Policy: the page has no inline script or style, and
says so in its header. Public, like ``/openapi.json``, and left out of the document.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle  # type: ignore[import-untyped]
from quart import Blueprint, Response, send_file
from quart_schema import hide

from gateway import __version__
from gateway.http.errors import not_found

bp = Blueprint("swagger", __name__)

_BUNDLE = Path(swagger_ui_bundle.swagger_ui_path)
_HERE = Path(__file__).resolve().parent
_JS, _CSS = "text/javascript", "text/css"  # send_file adds "; charset=utf-8"
# Every file /docs/assets/ serves: a name not listed here is a 404, whatever it holds
# (``..``, an encoded slash, a file of the bundle the page does not use).
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui.css": (_BUNDLE / "swagger-ui.css", _CSS),
    "index.css": (_BUNDLE / "index.css", _CSS),
    "swagger-ui-bundle.js": (_BUNDLE / "swagger-ui-bundle.js", _JS),
    "swagger-ui-standalone-preset.js": (_BUNDLE / "swagger-ui-standalone-preset.js", _JS),
    "favicon-16x16.png": (_BUNDLE / "favicon-16x16.png", "image/png"),
    "favicon-32x32.png": (_BUNDLE / "favicon-32x32.png", "image/png"),
    "swagger-init.js": (_HERE / "swagger_init.js", _JS),
}
# Asset URLs carry the gateway's and the UI's versions, so a browser's cached copy (a day)
# is never used with another release's page.
_VERSION = f"{__version__}-{_BUNDLE.name}"
ASSET_MAX_AGE_SECONDS = 86_400
# data: images: the UI's stylesheet draws its arrows and icons with them.
CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


def _asset(name: str) -> str:
    return f"/docs/assets/{name}?v={_VERSION}"


PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Outbound campaign gateway: API</title>
  <link rel="stylesheet" href="{_asset("swagger-ui.css")}">
  <link rel="stylesheet" href="{_asset("index.css")}">
  <link rel="icon" type="image/png" sizes="32x32" href="{_asset("favicon-32x32.png")}">
  <link rel="icon" type="image/png" sizes="16x16" href="{_asset("favicon-16x16.png")}">
</head>
<body>
  <noscript>This page needs JavaScript. The API's OpenAPI document is
    <a href="/openapi.json">/openapi.json</a>.</noscript>
  <div id="swagger-ui"></div>
  <script src="{_asset("swagger-ui-bundle.js")}"></script>
  <script src="{_asset("swagger-init.js")}"></script>
</body>
</html>
"""


@bp.get("/docs")
@hide
async def docs() -> Response:
    """The Swagger UI page."""
    response = Response(PAGE, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/docs/assets/<path:name>")
@hide
async def asset(name: str) -> Response:
    """One of :data:`ASSETS`, cached by the browser for a day (then revalidated)."""
    found = ASSETS.get(name)
    if found is None:
        raise not_found("asset")
    path, content_type = found
    response = await send_file(path, mimetype=content_type, conditional=True,
                               cache_timeout=ASSET_MAX_AGE_SECONDS)
    response.headers["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE_SECONDS}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
