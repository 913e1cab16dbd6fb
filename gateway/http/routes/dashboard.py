"""``/`` and ``/ui/<path>``: the web dashboard, plain files from ``gateway/web``.

The dashboard is HTML, CSS and JavaScript modules with no build step; it talks to the
``/api/v1`` endpoints like any client, with the API key the user signs in with. These routes
are public (the files hold no data and no secret) and left out of the OpenAPI document.

- **Which files.** Every file under ``gateway/web`` with a known type is read once, through
  ``importlib.resources`` (so an installed wheel serves its own copy), into a table by path;
  a request names a key of that table or gets a 404. No path from a request ever reaches
  the file system, so ``..``, encoded slashes or absolute paths cannot escape the folder.
- **vocabulary.json** is made here from :mod:`gateway.vocabulary` and the lifecycle's
  transitions: the page offers the statuses, outcomes and buttons the API has, defined once.
- **Caching.** Each response carries a strong ``ETag`` (a hash of the bytes) and
  ``Cache-Control: no-cache``: the browser keeps its copy but asks each time, and an
  unchanged file costs a 304 with no body. A new release's files are never mixed with an
  old page's.
- **Headers.** A strict ``Content-Security-Policy`` (the page's own scripts and styles only,
  no inline code, no framing, no form submission, Trusted Types for DOM sinks), and
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources
from importlib.resources.abc import Traversable

import attrs
from quart import Blueprint, Response, current_app, request
from quart_schema import hide

from gateway import vocabulary
from gateway.http.errors import not_found
from gateway.store.lifecycle import START_FROM, STOP_FROM
from gateway.vocabulary import CampaignStatus

bp = Blueprint("dashboard", __name__)

# The types served; a file of any other kind in the folder is not.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
INDEX = "index.html"
VOCABULARY = "vocabulary.json"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'; require-trusted-types-for 'script'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors, for browsers that predate it
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


@attrs.frozen
class Asset:
    body: bytes
    content_type: str
    etag: str


def _asset(body: bytes, name: str) -> Asset:
    suffix = name[name.rfind("."):]
    return Asset(body, CONTENT_TYPES[suffix], hashlib.sha256(body).hexdigest()[:32])


def _walk(folder: Traversable, prefix: str = "") -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for entry in folder.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            found.update(_walk(entry, name + "/"))
        elif "." in entry.name and entry.name[entry.name.rfind("."):] in CONTENT_TYPES:
            found[name] = entry.read_bytes()
    return found


def vocabulary_document() -> dict[str, object]:
    """What the page needs to know of the API's words, from their one definition."""
    return {
        "campaign_statuses": list(CampaignStatus),
        "terminal_statuses": [s for s in CampaignStatus if s in vocabulary.TERMINAL],
        "contact_statuses": list(vocabulary.ContactStatus),
        "outcomes": list(vocabulary.Outcome),
        "dispositions": list(vocabulary.Disposition),
        "rejection_reasons": list(vocabulary.RejectionReason),
        "agent_statuses": list(vocabulary.AgentStatus),
        "webhook_events": list(vocabulary.WebhookEvent),
        "delivery_statuses": list(vocabulary.DeliveryStatus),
        "weekdays": list(vocabulary.WEEKDAYS),
        # The statuses each operation is allowed from (docs/api.md, Lifecycle).
        "transitions": {
            "start": list(START_FROM),
            "pause": [CampaignStatus.RUNNING],
            "resume": [CampaignStatus.PAUSED],
            "stop": list(STOP_FROM),
            "delete": [CampaignStatus.DRAFT],
        },
    }


@functools.cache
def assets() -> dict[str, Asset]:
    """Every file the dashboard serves, by its path under ``/ui/`` (read once)."""
    files = _walk(resources.files("gateway") / "web")
    files[VOCABULARY] = json.dumps(vocabulary_document(), indent=1).encode()
    return {name: _asset(body, name) for name, body in files.items()}


def _send(asset: Asset) -> Response:
    headers = {**HEADERS, "ETag": f'"{asset.etag}"'}
    if request.if_none_match.contains(asset.etag):
        return current_app.response_class(b"", status=304, headers=headers)
    response = current_app.response_class(asset.body, status=200, headers=headers)
    response.headers["Content-Type"] = asset.content_type
    return response


@bp.get("/")
@hide
async def index() -> Response:
    """The dashboard's page."""
    return _send(assets()[INDEX])


@bp.get("/ui/<path:name>")
@hide
async def ui_file(name: str) -> Response:
    """One of the dashboard's files (its scripts, stylesheet, icon, vocabulary)."""
    found = assets().get(name)
    if found is None or name == INDEX:
        raise not_found("file")
    return _send(found)
