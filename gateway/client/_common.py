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

import contextlib
import contextvars
import functools
import io
import json
import os
import random
import re
import types
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Concatenate, Generic, Literal, ParamSpec, TypeVar, overload
from urllib.parse import quote

import attrs
import httpx
from httpx_sse import ServerSentEvent

from gateway import __version__
from gateway.client.errors import APIConnectionError, GatewayError, error_from_response
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
    # A POST's Idempotency-Key when its builder sets one; else the key of an enclosing
    # `idempotency_key(...)` block, else a fresh one (see `Attempts`).
    idempotency_key: str | None = None

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
            # The key is chosen now, not when a coroutine runs: `idempotency_key` blocks
            # apply to the calls made inside them.
            return obj._send(keyed(build(*args, **kwargs)))

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


# Retries. A call whose request failed in a way that is safe to repeat is sent again, up to
# the client's ``max_retries`` more times: a transport failure (refused, reset, timed out,
# closed before the answer), a 503 (the server's database is away), a 429 with Retry-After,
# and a 502 or 504 from a proxy in front of the gateway (the request may have reached it,
# so only the methods repeated after a lost answer: not PATCH).
# Each wait: the server's Retry-After, capped, else exponential backoff with jitter.
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_CHARS = 255  # the server's bounds, so a bad key fails before sending
IDEMPOTENCY_KEY_SHAPE = re.compile(r"[!-~]([ -~]*[!-~])?")
DEFAULT_MAX_RETRIES = 3
RETRY_BACKOFF = (0.25, 8.0)  # seconds: the first wait's ceiling, and the cap of any wait
MAX_RETRY_AFTER = 30.0  # a Retry-After above this is waited for this long, then retried
# Failures before the request went out (nothing reached the server): any method may retry.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Failures after it may have gone out, before a whole answer came back.
ANSWER_LOST = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
# The methods sent again after ANSWER_LOST: POST too, since it carries an idempotency key
# (the server answers a repeated key with the stored response). Not PATCH.
REPEATABLE = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST"})
PROXY_FAILURES = frozenset({502, 504})  # Bad Gateway, Gateway Timeout: the proxy's own


def backoff(attempt: int, first: float, cap: float) -> float:
    """The wait before retry ``attempt`` (1 for the first): ``first`` doubled each time up
    to ``cap``, then a random point in its upper half, so clients cut off together do not
    come back together."""
    ceiling = min(cap, first * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)


def transient(error: GatewayError, method: str, *, body_rewinds: bool = True) -> bool:
    """Whether sending the request again may succeed and cannot do harm
    (``body_rewinds``: the body can be sent again whole)."""
    if isinstance(error, APIConnectionError):
        cause = error.__cause__
        if isinstance(cause, NOT_SENT):
            return True
        return isinstance(cause, ANSWER_LOST) and method in REPEATABLE and body_rewinds
    if error.status_code == 503:
        return body_rewinds
    if error.status_code in PROXY_FAILURES:
        return method in REPEATABLE and body_rewinds
    return error.status_code == 429 and error.retry_after is not None and body_rewinds


def retry_wait(error: GatewayError, attempt: int) -> float:
    """The wait before retry ``attempt`` after ``error``."""
    if error.retry_after is not None:
        return min(error.retry_after, MAX_RETRY_AFTER)
    return backoff(attempt, *RETRY_BACKOFF)


def check_max(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0 (0 disables it), not {value!r}")
    return value


@attrs.define
class _ChosenKey:
    key: str
    used: bool = False


_chosen_key: contextvars.ContextVar[_ChosenKey | None] = contextvars.ContextVar(
    "gateway_idempotency_key", default=None)


@contextlib.contextmanager
def idempotency_key(key: str) -> Iterator[None]:
    """Send the POST made inside the block with ``key`` as its ``Idempotency-Key``, in
    place of a fresh random one: to repeat a call across processes, say, with the key
    stored beside the job. One key names one call: a second POST in the same block raises
    ``ValueError``. Works for ``Client`` and ``AsyncClient`` alike::

        with idempotency_key(f"create-{job.id}"):
            campaign = client.campaigns.create(...)
    """
    if not (isinstance(key, str) and len(key) <= IDEMPOTENCY_KEY_MAX_CHARS
            and IDEMPOTENCY_KEY_SHAPE.fullmatch(key)):
        raise ValueError("an idempotency key is 1 to 255 printable ASCII characters, "
                         f"spaces only inside, not {key!r}")
    token = _chosen_key.set(_ChosenKey(key))
    try:
        yield
    finally:
        _chosen_key.reset(token)


def keyed(call: Call[T]) -> Call[T]:
    """A POST with its Idempotency-Key (the same on each of its retries): the builder's,
    else the enclosing `idempotency_key` block's, else a fresh random one."""
    if call.method != "POST" or call.idempotency_key:
        return call
    chosen = _chosen_key.get()
    if chosen is None:
        return attrs.evolve(call, idempotency_key=uuid.uuid4().hex)
    if chosen.used:
        raise ValueError(f"idempotency key {chosen.key!r} was given to a call already: "
                         "one idempotency_key(...) block per call")
    chosen.used = True
    return attrs.evolve(call, idempotency_key=chosen.key)


def _rewinds(files: dict[str, Any] | None) -> bool:
    """Whether a multipart body can be sent again whole: bytes can, and files httpx seeks
    back to the start of (it does before each send); a stream that reads once cannot."""
    for part in (files or {}).values():
        source = part[1] if isinstance(part, tuple) else part
        if isinstance(source, (bytes, str)):
            continue
        seekable = getattr(source, "seekable", None)
        if not (seekable() if callable(seekable) else hasattr(source, "seek")):
            return False
    return True


class Attempts:
    """One call through its retries: the headers each attempt sends (the same
    Idempotency-Key every time) and the wait before the next one."""

    def __init__(self, call: Call[Any], max_retries: int) -> None:
        self.call = call = keyed(call)
        self.max_retries = max_retries
        self.made = 0
        self._rewinds = _rewinds(call.files)
        self.headers = ({IDEMPOTENCY_HEADER: call.idempotency_key}
                        if call.idempotency_key else {})
        if call.files:  # one boundary for every attempt: a retry sends the same bytes
            self.headers["Content-Type"] = f"multipart/form-data; boundary={uuid.uuid4().hex}"

    def request_kwargs(self) -> dict[str, Any]:
        """The ``httpx`` request's keyword arguments for the next attempt."""
        self.made += 1
        kwargs = self.call.request_kwargs()
        if self.headers:
            kwargs["headers"] = self.headers
        return kwargs

    def retry_wait(self, error: GatewayError) -> float | None:
        """Seconds to wait before sending it again after ``error``; None: raise it."""
        if self.made > self.max_retries or not transient(
                error, self.call.method, body_rewinds=self._rewinds):
            return None
        return retry_wait(error, self.made)


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


def stream_cut(campaign: str, reconnects: int = 0) -> str:
    tried = f" and {reconnects} reconnects in a row failed" if reconnects else ""
    return (f"the event stream of campaign {campaign} closed before the campaign ended"
            f"{tried} (the server may be down); call stream_events again to resume")


# Reconnecting streams. A stream cut before `end` (a restart, a proxy, a dead link: no
# heartbeat within the read timeout) connects again with Last-Event-ID; the server answers
# with the current snapshot at once, and ids keep rising.
DEFAULT_MAX_RECONNECTS = 5
RECONNECT_BACKOFF = (0.5, 10.0)  # seconds: the first wait's ceiling, and the cap


class Reconnects:
    """One ``stream_events`` across its connections: the last event id, sent back as
    ``Last-Event-ID``, and the failed attempts in a row.

    Until a first connection is made, a failure is retried as any request is (the client's
    ``max_retries``), then raised as it is. After, a cut or a transient failure is retried
    up to ``max_reconnects`` times in a row (an event received resets the count), then
    raises ``APIConnectionError`` code ``stream_closed``. Other errors (401, 404...) raise
    at once."""

    def __init__(self, campaign: str, max_retries: int, max_reconnects: int) -> None:
        self.campaign = campaign
        self.max_retries = max_retries
        self.max_reconnects = check_max(max_reconnects, "max_reconnects")
        self.last_id: str | None = None
        self.connected = False
        self.failures = 0

    def headers(self) -> dict[str, str]:
        return {"Last-Event-ID": self.last_id} if self.last_id else {}

    def opened(self) -> None:
        """The server answered with an event stream."""
        self.connected = True

    def seen(self, sse: ServerSentEvent) -> None:
        """An event came: the connection works."""
        if sse.id:
            self.last_id = sse.id
        self.failures = 0

    def wait(self, error: GatewayError | None) -> float:
        """Seconds to wait before connecting again after ``error`` (None: the stream
        closed without ``end``); raises when that is not worth it."""
        if error is not None and not transient(error, "GET"):
            raise error
        self.failures += 1
        if not self.connected:
            assert error is not None  # no stream yet, so it cannot have closed
            if self.failures > self.max_retries:
                raise error
            return retry_wait(error, self.failures)
        if self.failures > self.max_reconnects:
            raise APIConnectionError(stream_cut(self.campaign, self.max_reconnects),
                                     code="stream_closed") from error
        wait = backoff(self.failures, *RECONNECT_BACKOFF)
        if error is not None and error.retry_after is not None:
            wait = max(wait, min(error.retry_after, MAX_RETRY_AFTER))
        return wait


# Exports: every contact or call attempt of a campaign, as CSV or JSON lines, streamed. The
# request is retried as any GET until its answer starts; a body cut after that (a database
# failure on the server, the campaign deleted) raises APIConnectionError code
# stream_closed, never a short export that looks whole.
ExportWhat = Literal["contacts", "calls"]
ExportFormat = Literal["csv", "jsonl"]
EXPORT_WHATS: tuple[str, ...] = ("contacts", "calls")
EXPORT_FORMATS: tuple[str, ...] = ("csv", "jsonl")
# Where export_to writes: a path, or a binary file object (left open).
ExportTarget = str | os.PathLike[str] | BinaryIO


def export_call(campaign: Ref, what: str, format: str, status: str | None,
                outcome: str | None) -> Call[None]:
    """The export's request (``status`` filters contacts, ``outcome`` calls)."""
    if what not in EXPORT_WHATS:
        raise ValueError(f"what must be one of {', '.join(EXPORT_WHATS)}, not {what!r}")
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}")
    if what == "calls" and status is not None:
        raise ValueError("status filters contacts; a calls export takes outcome")
    if what == "contacts" and outcome is not None:
        raise ValueError("outcome filters calls; a contacts export takes status")
    return Call("GET", f"{API}/campaigns/{ref(campaign)}/{what}.{format}",
                params=compact(status=status, outcome=outcome) or None)


def check_export(response: httpx.Response) -> None:
    """Raise unless the export's answer started (call after reading an error body)."""
    if not response.is_success:
        raise error_from_response(response)


def export_chunks(chunks: Iterator[bytes], campaign: Ref, what: str) -> Iterator[bytes]:
    """The body's chunks; a cut body raises ``APIConnectionError`` code stream_closed."""
    try:
        yield from chunks
    except httpx.TransportError as exc:
        raise export_cut(campaign, what) from exc


def export_cut(campaign: Ref, what: str) -> APIConnectionError:
    shown = campaign["id"] if isinstance(campaign, Mapping) else campaign
    return APIConnectionError(
        f"the {what} export of campaign {shown} was cut before its end (a database "
        "failure on the server, or the campaign was deleted); what was received is "
        "incomplete: export again", code="stream_closed")


def export_destination(target: ExportTarget) -> BinaryIO | str:
    """The binary file object ``target`` is, or its path as text."""
    if isinstance(target, (str, os.PathLike)):
        return os.fspath(target)
    if isinstance(target, io.TextIOBase):
        raise TypeError("open the export's file in binary mode: open(path, 'wb')")
    if not hasattr(target, "write"):
        raise TypeError(f"target must be a path or a binary file object, not "
                        f"{type(target).__name__}")
    return target


@contextlib.contextmanager
def export_writer(target: ExportTarget) -> Iterator[Callable[[bytes], object]]:
    """``write(chunk)`` into ``target``: a path is created (replaced), and removed if the
    export fails, so no partial export is left under its name; a file is left open."""
    given = export_destination(target)
    if not isinstance(given, str):
        yield given.write
        return
    path = Path(given)
    with open(path, "wb") as file:
        try:
            yield file.write
        except BaseException:
            file.close()
            path.unlink(missing_ok=True)
            raise
