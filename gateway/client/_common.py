"""What the sync and async clients share: a call is described once, as data.

A resource method builds a ``Call`` (method, path, query, body, and how to read the
answer) and hands it to its client's ``_send``. The sync client's ``_send`` performs it and
returns the result; the async client's returns a coroutine. So every plain endpoint is
written once, in ``_resources``, and only the generators (page walkers, the event stream)
exist twice.

For type checkers, such a method is an ``Endpoint``: written as returning ``Call[T]``, it
reads as returning ``T`` on a ``Blocking`` object (``Client`` and its resources) and a
coroutine of ``T`` on an ``Awaiting`` one (``AsyncClient`` and its resources).
"""

from __future__ import annotations

import functools
import io
import json
import os
import types
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Concatenate, Generic, ParamSpec, TypeVar, overload
from urllib.parse import quote

import attrs
import httpx
from httpx_sse import ServerSentEvent

from gateway import __version__
from gateway.client.errors import GatewayError, error_from_response
from gateway.client.types import Snapshot

API = "/api/v1"
DEFAULT_TIMEOUT = 30.0
# Heartbeats come every 15 s by default; a stream silent for longer than this is dead.
STREAM_READ_TIMEOUT = 60.0
USER_AGENT = f"gateway-python/{__version__}"

# Anything that names an object: its id (str or UUID) or the object's dict.
Ref = str | uuid.UUID | Mapping[str, object]
# The contacts file: an open binary file, its bytes, or a path.
Contacts = BinaryIO | bytes | bytearray | str | os.PathLike[str]


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


T = TypeVar("T")
P = ParamSpec("P")
Mode = TypeVar("Mode")


@attrs.frozen
class Call(Generic[T]):
    """One HTTP request and how to read its response; ``T``: what reading it gives."""

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


class Blocking:
    """The mode of ``Client``: an endpoint returns its result."""


class Awaiting:
    """The mode of ``AsyncClient``: an endpoint returns a coroutine of its result."""


class Sender(Generic[Mode]):
    """A client, or a resource of one: what ``Endpoint`` methods hand their ``Call`` to."""

    _send: Callable[[Call[Any]], Any]


class Endpoint(Generic[P, T]):
    """A method that builds a ``Call[T]``, as its callers see it: the result ``T`` itself
    on a ``Sender[Blocking]``, a coroutine of it on a ``Sender[Awaiting]``."""

    def __init__(self, build: Callable[Concatenate[Any, P], Call[T]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Endpoint[P, T]: ...
    @overload
    def __get__(self, obj: Sender[Blocking], owner: type | None = None
                ) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: Sender[Awaiting], owner: type | None = None
                ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, obj: Sender[Any] | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        build = types.MethodType(self._build, obj)

        @functools.wraps(build)  # the method's name, docstring and signature
        def send(*args: Any, **kwargs: Any) -> Any:
            return obj._send(build(*args, **kwargs))

        return send


def endpoint(build: Callable[Concatenate[Any, P], Call[T]]) -> Endpoint[P, T]:
    """Decorate a resource method that returns a ``Call[T]`` (see ``Endpoint``)."""
    return Endpoint(build)


def http_options(base_url: str, api_key: str,
                 timeout: float | httpx.Timeout) -> dict[str, Any]:
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
    text = str(obj["id"] if isinstance(obj, Mapping) else obj)
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


def rfc3339(value: str | datetime | None, name: str = "scheduled_at") -> str | None:
    """A time for the API: an RFC 3339 string as given, or an aware datetime's ISO form
    (``name``: the argument, for errors)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware (RFC 3339 needs a zone)")
        return value.isoformat()
    raise TypeError(f"{name} must be a str or a datetime, not {type(value).__name__}")


def json_text(value: Any) -> str | None:
    """A form field holding JSON (``calling_window``, ``retry_policy``): the value's JSON
    text, None for None. Not checked here: the server's 400 names what is wrong in it."""
    return None if value is None else json.dumps(value, separators=(",", ":"))


def contacts_part(contacts: Contacts) -> tuple[str, Any, str]:
    """The multipart file tuple of the contacts CSV (see `csv_part`)."""
    return csv_part(contacts, "contacts")


def csv_part(source: Contacts, what: str) -> tuple[str, Any, str]:
    """The multipart file tuple of a CSV (``what``: its name in errors, and its file name
    when it has none). A path is read into memory here (at most ``limits.max_csv_bytes``,
    10 MiB by default); a file object is streamed by httpx."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return (f"{what}.csv", bytes(source), "text/csv")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return (path.name, path.read_bytes(), "text/csv")
    if isinstance(source, io.TextIOBase):
        raise TypeError(f"open the {what} file in binary mode: open(path, 'rb')")
    if hasattr(source, "read"):
        name = os.path.basename(str(getattr(source, "name", "") or f"{what}.csv"))
        return (name, source, "text/csv")
    raise TypeError(f"{what} must be a binary file object, bytes, or a path, "
                    f"not {type(source).__name__}")


def stream_kwargs(timeout: httpx.Timeout, read_timeout: float | None) -> dict[str, Any]:
    return {"timeout": httpx.Timeout(timeout.connect, read=read_timeout, write=timeout.write,
                                     pool=timeout.pool)}


# The event after the last snapshot: the campaign reached a terminal status (or was
# deleted), the stream is over.
END = "end"


def decode_event(sse: ServerSentEvent) -> Snapshot | None:
    """The snapshot an event carries, or None (``END``, heartbeat artefacts, unknown event
    types): check ``sse.event == END`` first."""
    if sse.event != "message" or not sse.data.strip():
        return None
    try:
        snapshot: Snapshot = json.loads(sse.data)
        return snapshot
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
