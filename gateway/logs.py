"""Structured logs: one JSON object per line on standard error.

Every state change and call is an ``event`` with its ids as keys (``campaign_id``,
``contact_id``, ``call_id``...). Secrets never reach a log line: API keys are logged by their
prefix, database URLs through :func:`redact_url`.

A line costs little: structlog's fast path (a filtering bound logger, loggers cached on
first use), orjson for the JSON, and no write per line. Lines go to a buffer in memory,
written out in one go:

- at once for a line at ``warning`` or above (what an operator watches for, and rare),
  with every line before it, in order;
- :data:`FLUSH_SECONDS` after the oldest line in it at the latest, by :func:`log_flusher`
  (an actor of ``gateway serve``) or by the next line logged;
- when it holds :data:`BUFFER_BYTES`;
- when the process ends: an ``atexit`` hook (a normal exit, an unhandled exception, the
  exit after a SIGINT/SIGTERM shutdown), and at the end of ``serve``.

A process killed outright (SIGKILL, a second SIGTERM during a shutdown) loses the
``info`` lines of its last :data:`FLUSH_SECONDS` at most.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import os
import re
import sys
import threading
import time
import typing
import weakref
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import structlog
import trio
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
FLUSH_SECONDS = 0.2
BUFFER_BYTES = 64 * 1024
# Non-string keys (a dict of ids by number, say) are written as strings, not refused.
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


class _Output:
    """The buffer in front of the log stream: lines from any thread, written out in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[bytes] = []
        self._size = 0
        self._due = 0.0  # time.monotonic() by which the oldest buffered line is written
        self._target: Callable[[bytes], object] = _stream_writer(sys.stderr)
        # Called (under the lock, from any thread) when a line goes into an empty buffer:
        # the flushers' wake-ups, so they sleep while nothing is buffered.
        self.on_first: set[Callable[[], None]] = set()

    def retarget(self, stream: typing.IO[typing.Any]) -> None:
        with self._lock:
            self._write_out()
            self._target = _stream_writer(stream)

    def write(self, line: bytes) -> None:
        with self._lock:
            self._lines.append(line)
            self._size += len(line)
            if self._size >= BUFFER_BYTES:
                self._write_out()
            elif len(self._lines) == 1:
                self._due = time.monotonic() + FLUSH_SECONDS
                for wake in self.on_first:
                    wake()
            elif time.monotonic() >= self._due:
                self._write_out()

    def write_now(self, line: bytes) -> None:
        with self._lock:
            self._lines.append(line)
            self._write_out()

    def flush(self) -> None:
        with self._lock:
            self._write_out()

    def watch(self, wake: Callable[[], None]) -> bool:
        """Call ``wake`` whenever a line goes into an empty buffer; whether lines are
        buffered already."""
        with self._lock:
            self.on_first.add(wake)
            return bool(self._lines)

    def unwatch(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self.on_first.discard(wake)

    def forget(self) -> None:
        """In a forked child: the parent writes what it had; a lock held there is not."""
        self._lock = threading.Lock()
        self._lines, self._size = [], 0
        self.on_first = set()  # the parent's flushers do not run here

    def _write_out(self) -> None:
        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines.clear()
        self._size = 0
        try:
            self._target(data)
        except (OSError, ValueError):
            pass  # stderr closed or gone: there is nowhere left to say so


def _stream_writer(stream: typing.IO[typing.Any]) -> Callable[[bytes], object]:
    """A function writing bytes to ``stream`` and flushing it: a binary stream, or a text
    stream (its own buffer, after any text written to it directly)."""
    binary = getattr(stream, "buffer", None)
    if binary is not None:
        def to_text_buffer(data: bytes) -> None:
            stream.flush()
            binary.write(data)
            binary.flush()
        return to_text_buffer
    if isinstance(stream, io.TextIOBase):
        def to_text(data: bytes) -> None:
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()
        return to_text

    def to_binary(data: bytes) -> None:
        stream.write(data)
        stream.flush()
    return to_binary


_output = _Output()
atexit.register(_output.flush)
os.register_at_fork(after_in_child=_output.forget)


class _BufferedLogger:
    """What structlog's ``BytesLogger`` is, writing into :data:`_output` instead of a file
    flushed for every line: warnings and above are written at once."""

    __slots__ = ("_now", "_write")

    def __init__(self, output: _Output) -> None:
        self._write = output.write
        self._now = output.write_now

    def msg(self, message: bytes) -> None:
        self._write(message)

    def at_once(self, message: bytes) -> None:
        self._now(message)

    log = debug = info = msg
    warn = warning = fatal = failure = err = error = critical = exception = at_once


def _logger_factory(*_args: object) -> _BufferedLogger:
    return _BufferedLogger(_output)


def _timestamp(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """``timestamp``: now, in UTC. orjson writes it as ISO 8601 with a ``Z``
    (``2026-12-03T09:47:30.442889Z``), as structlog's ``TimeStamper(fmt="iso", utc=True)``
    does, without formatting a string per line in Python."""
    event_dict["timestamp"] = datetime.now(UTC)
    return event_dict


def _exc_info(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    """structlog's ``format_exc_info`` (a traceback as the ``exception`` key), for the
    lines that carry one only."""
    if "exc_info" in event_dict:
        return structlog.processors.format_exc_info(logger, name, event_dict)
    return event_dict


def _dumps(event_dict: EventDict, default: Callable[[typing.Any], typing.Any]) -> bytes:
    """One line of JSON, its newline included."""
    try:
        return orjson.dumps(event_dict, default=default,
                            option=_OPTIONS | orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # an integer past 64 bits, a cycle...: the standard library's way
        return (json.dumps(event_dict, default=_plain, separators=(",", ":"))
                + "\n").encode()


def _dumps_text(event_dict: EventDict, default: Callable[[typing.Any], typing.Any]) -> str:
    """The same line as text, without its newline (the standard library's handlers)."""
    return _dumps(event_dict, default)[:-1].decode()


def _plain(value: object) -> object:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) \
        else repr(value)


class _Handler(logging.Handler):
    """The standard library's records (hypercorn, asyncpg, trio-asyncio), as JSON lines
    into the same buffer, on the same flush rules."""

    def __init__(self, output: _Output) -> None:
        super().__init__()
        self._output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode()
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self._output.write_now(line)
        else:
            self._output.write(line)


def configure_logging(level: str = "info", stream: typing.IO[typing.Any] | None = None, *,
                      cache: bool = True) -> None:
    """Route structlog, and the standard library's logging (hypercorn, asyncpg, trio-asyncio),
    to JSON lines at ``level`` on ``stream`` (standard error; text or binary).

    ``cache``: each module logger binds its configuration on first use instead of on every
    call (a few % of the dial loop's CPU); tests that swap the configuration later
    (``structlog.testing.capture_logs``) pass False."""
    _output.retarget(stream or sys.stderr)
    numeric = _LEVELS[level]
    shared: list[Processor] = [structlog.processors.add_log_level, _timestamp]
    structlog.configure(
        processors=[*shared, _exc_info, structlog.processors.JSONRenderer(serializer=_dumps)],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_logger_factory,
        cache_logger_on_first_use=cache,
    )
    handler = _Handler(_output)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(serializer=_dumps_text)]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries are quieter than the gateway: their warnings and errors only.
    root.setLevel(max(numeric, logging.WARNING))
    global _pinned
    _pinned = cache
    for handle in _handles:
        if cache:
            handle.pin()
        else:
            handle.unpin()


def flush_logs() -> None:
    """Write out every buffered line now."""
    _output.flush()


async def log_flusher(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """The actor that writes the buffered lines out :data:`FLUSH_SECONDS` after the first
    of them (one write for all, on the event loop: a few per second at most, however many
    lines), and once more when it is cancelled. With nothing buffered it sleeps until a
    line comes (told from whatever thread logged it): an idle gateway does not wake."""
    token = trio.lowlevel.current_trio_token()
    buffered = trio.Event()

    def wake() -> None:
        buffered.set()

    def on_first() -> None:
        try:
            token.run_sync_soon(wake)
        except trio.RunFinishedError:
            pass  # the run is over: serve's last flush and the exit hook write the rest

    if _output.watch(on_first):  # lines logged before this actor started
        buffered.set()
    task_status.started()
    try:
        while True:
            await buffered.wait()
            buffered = trio.Event()
            await trio.sleep(FLUSH_SECONDS)
            _output.flush()
    finally:
        _output.unwatch(on_first)
        _output.flush()


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """A structlog logger; :func:`configure_logging` decides where its lines go."""
    handle = _ModuleLogger(name)
    if _pinned:
        handle.pin()
    _handles.add(handle)
    return typing.cast(FilteringBoundLogger, handle)


# The methods a module logger takes straight from its configured logger.
_HOT = ("debug", "info", "warning", "error", "exception", "critical", "bind")
_handles: weakref.WeakSet[_ModuleLogger] = weakref.WeakSet()
_pinned = False


class _ModuleLogger:
    """What :func:`get_logger` returns, for ``log = get_logger(__name__)`` at import time,
    before logging is configured.

    structlog's own answer there is a proxy that finds the configured logger on every call
    (an attribute miss and a function call: ~1.5 µs, even for a ``debug`` line filtered
    out, as structlog's performance notes say). With ``cache``, :func:`configure_logging`
    pins the configured logger's methods on each of these (``log.debug`` is then the
    filtering logger's no-op itself); without, every call goes through a proxy, so tests
    can swap the configuration (``structlog.testing.capture_logs``)."""

    def __init__(self, name: str | None) -> None:
        self._name = name
        self._target: typing.Any = structlog.get_logger(name)

    def pin(self) -> None:
        # A new proxy's logger: built from the configuration in force now.
        self._target = structlog.get_logger(self._name).bind()
        for method in _HOT:
            self.__dict__[method] = getattr(self._target, method)

    def unpin(self) -> None:
        for method in _HOT:
            self.__dict__.pop(method, None)
        self._target = structlog.get_logger(self._name)

    def __getattr__(self, name: str) -> typing.Any:
        return getattr(self._target, name)


def redact_url(url: str) -> str:
    """A database URL fit for a log line or an error message: every password replaced by
    ``***``: the userinfo's (``postgresql://user:***@host/db``) and any ``password=`` or
    ``sslpassword=`` parameter of the query string, or of a ``key=value`` connection string.

    Plain string work, not :func:`urllib.parse.urlsplit`: a password typed with an
    unencoded ``/``, ``?``, ``#`` or ``@`` makes urlsplit see no password at all, and the
    URL would be printed whole. Here the userinfo runs to the last ``@``, so such a password
    is masked too (with, at worst, some of the host: too much is hidden, never too little)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _KEYWORD_PASSWORD.sub(r"\1***", url)
    userinfo, at, hostpart = rest.rpartition("@")
    if at and ":" in userinfo:  # a query password before the last "@" is masked with it
        rest = userinfo.split(":", 1)[0] + ":***@" + hostpart
    return scheme + "://" + _QUERY_PASSWORD.sub(r"\1***", rest)


_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)",
                               re.IGNORECASE)
