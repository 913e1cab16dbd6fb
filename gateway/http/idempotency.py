"""``Idempotency-Key`` on every POST under ``/api/v1``: a retried request is answered, not
redone.

:func:`install` wraps each POST view of the API once, after authentication (a request
without a valid API key is a 401 and nothing is stored). A request with the header:

- claims ``(account, key)`` with one statement (``INSERT ... ON CONFLICT``), acts, and
  stores its answer (status, Content-Type, body) with the request's hash. Answers 5xx are
  not stored: the claim is deleted, so a retry acts again; 4xx are (a retried bad request
  gets the same answer). An answer whose request body could not be read to its end, a
  streamed one, or one over ``RESPONSE_MAX_BYTES`` is not stored either;
- finding the key held, waits (polling the row, up to ``WAIT_SECONDS``) for the claim's
  answer, then replays it with ``Idempotent-Replayed: true`` if its own hash is the
  stored one, else answers 409 ``idempotency_key_reused``;
- finding a claim whose heartbeat is older than ``STALE_AFTER`` (its process died, or its
  client went away and the release could not be written), takes it over and acts. The
  claimer refreshes its heartbeat every ``HEARTBEAT_SECONDS`` while it acts, so a long
  upload keeps its claim however long it takes.

The request's hash is sha256 over the method, the path with its query string, the media
type (without parameters) and the body. A JSON (or empty) body is read first, as the views
read it anyway. A ``multipart/form-data`` body is hashed as it streams into the view (the
campaign upload: 50 MB are never held twice), with its boundary taken out: clients such as
curl pick a new boundary at every run, and the same form sent again is the same request.
The places the boundary stood are hashed too, so two different forms cannot hash alike.

Keys are kept 24 hours (``TTL``) from their claim; an older one counts as absent. Expired
rows are deleted lazily: after a keyed request has stored its answer, at most once a
minute per process, ``SWEEP_BATCH`` of the oldest at a time.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from datetime import timedelta
from typing import Any, cast

import attrs
import trio
from quart import Response, current_app, request
from quart.wrappers.response import DataBody
from quart_schema import document_headers
from quart_schema.validation import QUART_SCHEMA_HEADERS_ATTRIBUTE
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException, RequestTimeout
from werkzeug.http import parse_options_header

from gateway.clock import utcnow
from gateway.db import Database, DatabaseUnavailable
from gateway.http.context import principal, services
from gateway.http.errors import RETRY_AFTER_SECONDS, ApiError
from gateway.http.openapi import errors
from gateway.http.schemas import IDEMPOTENCY_KEY_MAX_CHARS, IdempotencyHeaders
from gateway.logs import get_logger
from gateway.store import idempotency as store
from gateway.store.idempotency import StoredResponse

log = get_logger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL = timedelta(hours=24)
# The claimer's heartbeat, and the age past which a claim without one is dead: six
# heartbeats missed (a database outage that long fails the request anyway).
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = timedelta(seconds=30)
# How long a request waits for another with its key to answer before it is told to retry
# later: past a claim's takeover age, so a retry after a crash is answered, not refused.
WAIT_SECONDS = 60.0
POLL_FIRST_SECONDS = 0.02
POLL_MAX_SECONDS = 0.25
# Reading the rest of a streamed body after its view answered (to hash it whole).
DRAIN_SECONDS = 60.0
# The largest answer stored (a campaign's import report lists at most 1,000 rows: ~0.2 MB).
RESPONSE_MAX_BYTES = 4 * 1024 * 1024
SWEEP_EVERY_SECONDS = 60.0
SWEEP_BATCH = 1_000
_KEY = re.compile(f"[\\x20-\\x7e]{{1,{IDEMPOTENCY_KEY_MAX_CHARS}}}")
_WRAPPED = "_gateway_idempotent"
_SWEEPER = "gateway_idempotency_sweeper"

View = Callable[..., Awaitable[Any]]


def install(app: QuartTrio, prefix: str = "api.") -> None:
    """Wrap every POST view of the blueprint ``prefix`` names (registered already), and
    document the header, 400 and 409 on each."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(prefix) and "POST" in (rule.methods or ()):
            view = app.view_functions[rule.endpoint]
            if not getattr(view, _WRAPPED, False):
                app.view_functions[rule.endpoint] = idempotent(cast(View, view))
    app.extensions[_SWEEPER] = _Sweeper()


def idempotent(view: View) -> View:
    @functools.wraps(view)  # the view's OpenAPI attributes come along
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = key_of(request.headers) if request.method == "POST" else None
        if key is None:
            return await view(*args, **kwargs)
        digest = await _Digest.begin()
        return await _Keyed(services().db, principal().account.id, key, digest).respond(
            view, args, kwargs)

    setattr(wrapper, _WRAPPED, True)
    # A view that documents headers of its own keeps them (quart-schema takes one model).
    if getattr(view, QUART_SCHEMA_HEADERS_ATTRIBUTE, None) is None:
        wrapper = document_headers(IdempotencyHeaders)(wrapper)
    return errors(400, 409)(wrapper)


def key_of(headers: Headers) -> str | None:
    """The request's key, None without one; a 400 naming the header if it is not 1 to 255
    printable ASCII characters (HTTP has dropped its leading and trailing spaces)."""
    given = headers.getlist(HEADER)
    if not given:
        return None
    if len(given) > 1:
        raise _invalid_key(f"given {len(given)} times; send one key")
    key = given[0]
    if not _KEY.fullmatch(key):
        if not key:
            problem = "is empty"
        elif len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
            problem = f"has {len(key)} characters"
        else:
            problem = "has a character that is not printable ASCII"
        raise _invalid_key(f"must be 1 to {IDEMPOTENCY_KEY_MAX_CHARS} printable ASCII "
                           f"characters; this one {problem}")
    return key


def _invalid_key(message: str) -> ApiError:
    return ApiError(400, "invalid_idempotency_key", f"{HEADER}: {message}", field=HEADER)


def _reused() -> ApiError:
    return ApiError(409, "idempotency_key_reused",
                    f"{HEADER}: this key was used in the last 24 hours for another request "
                    "(method, path or body); send a new key with a new request",
                    field=HEADER)


def _in_progress() -> ApiError:
    return ApiError(409, "idempotency_key_in_progress",
                    f"{HEADER}: a request with this key is still being processed; retry "
                    "after a few seconds to get its answer", field=HEADER,
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@attrs.define
class _Keyed:
    """One request with a key: claim it and act, or wait for the claim's answer."""

    db: Database
    account_id: uuid.UUID
    key: str
    digest: _Digest

    async def respond(self, view: View, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Response:
        deadline = trio.current_time() + WAIT_SECONDS
        poll = POLL_FIRST_SECONDS
        while True:
            token = await store.claim(self.db, self.account_id, self.key, self.digest.value,
                                      utcnow(), ttl=TTL, stale_after=STALE_AFTER)
            if token is not None:
                return await self._act(token, view, args, kwargs)
            while True:  # held: by a live claim, or by an answer
                state = await store.get(self.db, self.account_id, self.key)
                now = utcnow()
                if state is None or state.created_at < now - TTL:
                    break  # released or expired since: claim it
                if state.response is not None:
                    if await self.digest.finish() != state.request_hash:
                        raise _reused()
                    return _replay(state.response)
                if (self.digest.value is not None and state.request_hash is not None
                        and state.request_hash != self.digest.value):
                    raise _reused()  # no need to wait for the answer to know
                if state.heartbeat_at < now - STALE_AFTER:
                    break  # its request died: take it over
                if trio.current_time() >= deadline:
                    raise _in_progress()
                await trio.sleep(poll)
                poll = min(poll * 2, POLL_MAX_SECONDS)

    async def _act(self, token: uuid.UUID, view: View, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Response:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeat, token)
                try:
                    response = await _dispatch(view, args, kwargs)
                finally:
                    nursery.cancel_scope.cancel()
            stored = await self._storable(response)
            try:
                if stored is None:
                    await store.release(self.db, self.account_id, self.key, token)
                elif not await store.complete(self.db, self.account_id, self.key, token,
                                              stored[0], stored[1], utcnow()):
                    log.warning("idempotency.claim_lost", account_id=str(self.account_id),
                                path=request.path)
            except DatabaseUnavailable:
                # The answer stands; the claim goes stale and a retry acts again.
                log.warning("idempotency.not_stored", account_id=str(self.account_id),
                            path=request.path, status=response.status_code)
        except BaseException:
            # Cancelled (the client went away, the server stops) or worse, with no answer
            # stored: the key is freed now, so a retry need not wait for the claim to go
            # stale (a completed claim is not released: see idempotency.release).
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._release(token)
            raise
        await _sweep_when_due(self.db)
        return response

    async def _storable(self, response: Response) -> tuple[bytes, StoredResponse] | None:
        if response.status_code >= 500 or not isinstance(response.response, DataBody):
            return None
        body = await response.get_data(as_text=False)
        if len(body) > RESPONSE_MAX_BYTES:
            return None
        try:
            request_hash = await self.digest.finish()
        except HTTPException:  # the rest of the body is too large, or never came
            return None
        return request_hash, StoredResponse(response.status_code,
                                            response.headers.get("Content-Type"), body)

    async def _release(self, token: uuid.UUID) -> None:
        try:
            await store.release(self.db, self.account_id, self.key, token)
        except DatabaseUnavailable:
            pass  # the claim goes stale instead

    async def _heartbeat(self, token: uuid.UUID) -> None:
        while True:
            await trio.sleep(HEARTBEAT_SECONDS)
            try:
                if not await store.heartbeat(self.db, self.account_id, self.key, token,
                                             utcnow()):
                    return  # taken over: the answer will not be stored
            except DatabaseUnavailable:
                log.warning("idempotency.heartbeat_failed", account_id=str(self.account_id))
            except Exception as exc:  # never take the request down with it
                log.error("idempotency.heartbeat_error", exc_info=exc)


async def _dispatch(view: View, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Response:
    """The view's answer as the client gets it: an error raised is turned into its answer
    here (by the app's handlers, as Quart would), so 4xx answers are stored too."""
    try:
        result = await view(*args, **kwargs)
    except Exception as error:
        result = await current_app.handle_user_exception(error)
    return cast(Response, await current_app.make_response(result))


def _replay(stored: StoredResponse) -> Response:
    response = current_app.response_class(stored.body, status=stored.status,
                                          content_type=stored.content_type)
    response.headers[REPLAYED_HEADER] = "true"
    return response


class _Digest:
    """The request's hash: known from the start for a body read whole, once the body has
    streamed to its end for a multipart one."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        for part in (request.method, request.path, request.query_string.decode("latin-1"),
                     request.mimetype):
            self._field(part.encode("utf-8", "surrogateescape"))
        self.value: bytes | None = None
        self._body: _HashedBody | None = None

    def _field(self, data: bytes) -> None:
        self._hash.update(len(data).to_bytes(8, "big"))
        self._hash.update(data)

    @classmethod
    async def begin(cls) -> _Digest:
        digest = cls()
        if request.mimetype == "multipart/form-data":
            _, options = parse_options_header(request.headers.get("Content-Type", ""))
            boundary = options.get("boundary")
            feed = _BoundaryBlind(digest._hash, boundary.encode("latin-1", "replace")
                                  if boundary else None)
            digest._body = _HashedBody(request.body, feed)
            request.body = cast(Any, digest._body)  # what the view streams from
        else:
            # Cached: the view reads it again.
            data = await request.get_data(cache=True, as_text=False, parse_form_data=False)
            digest._field(data)
            digest.value = digest._hash.digest()
        return digest

    async def finish(self) -> bytes:
        """The hash, reading whatever the view left of a streamed body (up to
        ``DRAIN_SECONDS``): werkzeug's 413 or 408 if it cannot."""
        body = self._body
        if self.value is None and body is not None:
            with trio.move_on_after(DRAIN_SECONDS):
                async for _ in body:
                    pass
            if not body.ended:
                raise RequestTimeout()
            body.feed.close()
            self.value = self._hash.digest()
        assert self.value is not None
        return self.value


class _HashedBody:
    """The request's body, fed to a hash as the view reads it (Quart appends to the body
    it wraps: everything else is the wrapped body's)."""

    def __init__(self, body: Any, feed: _BoundaryBlind) -> None:
        self._body = body
        self.feed = feed
        self.ended = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.ended:
            raise StopAsyncIteration
        try:
            chunk = await self._body.__anext__()
        except StopAsyncIteration:
            self.ended = True
            raise
        self.feed.update(chunk)
        return chunk

    def __await__(self) -> Generator[Any, None, bytes]:
        data = yield from self._body.__await__()
        if not self.ended:
            self.feed.update(data)
            self.ended = True
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)


class _BoundaryBlind:
    """Feeds a hash a multipart body with ``--<boundary>`` replaced by ``--``, and then the
    positions it stood at (so content that only looks like a delimiter hashes apart)."""

    def __init__(self, target: Any, boundary: bytes | None) -> None:
        self._target = target
        self._mark = b"--" + boundary if boundary else b""
        self._tail = b""
        self._written = 0
        self._places = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        if not self._mark:
            self._write(chunk)
            return
        data = self._tail + chunk
        view, mark, start = memoryview(data), self._mark, 0
        while (found := data.find(mark, start)) != -1:
            self._write(view[start:found])
            self._places.update(self._written.to_bytes(8, "big"))
            self._write(b"--")
            start = found + len(mark)
        # A mark may begin in the last len(mark) - 1 bytes: they wait for the next chunk.
        keep = max(start, len(data) - len(mark) + 1)
        self._write(view[start:keep])
        self._tail = data[keep:]

    def _write(self, data: bytes | memoryview) -> None:
        self._target.update(data)
        self._written += len(data)

    def close(self) -> None:
        self._write(self._tail)
        self._tail = b""
        self._target.update(self._places.digest())


@attrs.define
class _Sweeper:
    next_at: float = -math.inf


async def _sweep_when_due(db: Database) -> None:
    sweeper: _Sweeper = current_app.extensions[_SWEEPER]
    if trio.current_time() < sweeper.next_at:
        return
    sweeper.next_at = trio.current_time() + SWEEP_EVERY_SECONDS
    try:
        swept = await store.sweep(db, utcnow() - TTL, SWEEP_BATCH)
    except DatabaseUnavailable:
        return
    if swept:
        log.info("idempotency.swept", keys=swept)
