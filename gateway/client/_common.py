"""What the sync and async clients share: a call is described once, as data.

A resource method builds a ``Call`` (method, path, query, body, and how to read the
answer) and hands it to its client's ``_send``. The sync client's ``_send`` performs it and
returns the result; the async client's returns a coroutine. So every plain endpoint is
written once, in ``_resources``, and only the generators (page walkers, the event stream)
exist twice.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Union
from urllib.parse import quote

import attrs
import httpx
from httpx_sse import ServerSentEvent

from gateway import __version__
from gateway.client.errors import GatewayError, error_from_response

API = "/api/v1"
DEFAULT_TIMEOUT = 30.0
# Heartbeats come every 15 s by default; a stream silent for longer than this is dead.
STREAM_READ_TIMEOUT = 60.0
USER_AGENT = f"gateway-python/{__version__}"

# Anything that names an object: its id (str or UUID) or the object's dict.
Ref = Union[str, Mapping[str, Any], Any]
# The contacts file: an open binary file, its bytes, or a path.
Contacts = Union[BinaryIO, bytes, bytearray, str, "os.PathLike[str]"]


def parse_json(response: httpx.Response) -> Any:
    """The decoded body of a success (None for 204), else the typed error."""
    if not response.is_success:
        raise error_from_response(response)
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise GatewayError("the server answered something that is not JSON",
                           status_code=response.status_code, code="invalid_response",
                           response=response) from None


@attrs.frozen
class Call:
    """One HTTP request and how to read its response."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    files: dict[str, Any] | None = None
    parse: Callable[[httpx.Response], Any] = parse_json

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for name in ("params", "json", "data", "files"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        return kwargs


def http_options(base_url: str, api_key: str, timeout: float | httpx.Timeout) -> dict:
    """The keyword arguments of ``httpx.Client`` / ``httpx.AsyncClient``."""
    if not api_key:
        raise ValueError("api_key is required (the gateway prints it on first start)")
    if not base_url:
        raise ValueError("base_url is required, e.g. http://127.0.0.1:8080")
    return {"base_url": base_url.rstrip("/"),
            "headers": {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT,
                        "Accept": "application/json"},
            "timeout": timeout}


def ref(obj: Ref) -> str:
    """An object's id, URL-quoted: accepts the id itself or the object's dict."""
    if isinstance(obj, Mapping):
        obj = obj["id"]
    text = str(obj)
    if not text:
        raise ValueError("an id is required")
    return quote(text, safe="")


def compact(**values: Any) -> dict[str, Any]:
    """The given values without the ones left as None."""
    return {key: value for key, value in values.items() if value is not None}


OMIT: Any = type("Omit", (), {"__repr__": lambda self: "OMIT"})()


def given(**values: Any) -> dict[str, Any]:
    """For PATCH bodies: the values passed, None included (None clears a nullable field)."""
    return {key: value for key, value in values.items() if value is not OMIT}


def rfc3339(value: str | datetime | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("scheduled_at must be timezone-aware (RFC 3339 needs a zone)")
        return value.isoformat()
    raise TypeError(f"scheduled_at must be a str or a datetime, not {type(value).__name__}")


def contacts_part(contacts: Contacts) -> tuple[str, Any, str]:
    """The multipart file tuple of the contacts CSV. A path is read into memory here (at
    most ``limits.max_csv_bytes``, 10 MiB by default); a file object is streamed by httpx."""
    if isinstance(contacts, (bytes, bytearray, memoryview)):
        return ("contacts.csv", bytes(contacts), "text/csv")
    if isinstance(contacts, (str, os.PathLike)):
        path = Path(contacts)
        return (path.name, path.read_bytes(), "text/csv")
    if isinstance(contacts, io.TextIOBase):
        raise TypeError("open the contacts file in binary mode: open(path, 'rb')")
    if hasattr(contacts, "read"):
        name = os.path.basename(str(getattr(contacts, "name", "") or "contacts.csv"))
        return (name, contacts, "text/csv")
    raise TypeError("contacts must be a binary file object, bytes, or a path, "
                    f"not {type(contacts).__name__}")


def stream_kwargs(timeout: httpx.Timeout, read_timeout: float | None) -> dict:
    return {"timeout": httpx.Timeout(timeout.connect, read=read_timeout, write=timeout.write,
                                     pool=timeout.pool)}


# What ``decode_event`` tells a stream to do.
SKIP, END = "skip", "end"


def decode_event(sse: ServerSentEvent) -> Any:
    """A snapshot dict to yield, ``SKIP`` (heartbeat artefacts, unknown event types) or
    ``END`` (the campaign reached a terminal status: the stream is over)."""
    if sse.event == "end":
        return END
    if sse.event != "message" or not sse.data.strip():
        return SKIP
    try:
        return json.loads(sse.data)
    except ValueError:
        raise GatewayError(f"an event's data is not JSON: {sse.data[:100]!r}",
                           code="invalid_response") from None


def check_stream(response: httpx.Response) -> None:
    """Raise unless the response is an event stream (call after reading an error body)."""
    if not response.is_success:
        raise error_from_response(response)
    content_type = response.headers.get("content-type", "").partition(";")[0].strip()
    if content_type != "text/event-stream":
        raise GatewayError(f"expected an event stream, got {content_type or 'no content type'}",
                           status_code=response.status_code, code="invalid_response",
                           response=response)


def stream_cut(campaign: str) -> str:
    return (f"the event stream of campaign {campaign} closed before the campaign ended "
            "(the server may be shutting down); call stream_events again to resume")
