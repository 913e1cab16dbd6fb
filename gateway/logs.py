"""Structured logs: one JSON object per line on standard error.

Every state change and call is an ``event`` with its ids as keys (``campaign_id``,
``contact_id``, ``call_id``...). Secrets never reach a log line: API keys are logged by their
prefix, database URLs through :func:`redact_url`.
"""

from __future__ import annotations

import logging
import re
import sys
import typing

import structlog
from structlog.typing import FilteringBoundLogger, Processor

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure_logging(level: str = "info", stream: typing.TextIO | None = None, *,
                      cache: bool = True) -> None:
    """Route structlog, and the standard library's logging (hypercorn, asyncpg, trio-asyncio),
    to JSON lines at ``level``.

    ``cache``: each module logger binds its configuration on first use instead of on every
    call (a few % of the dial loop's CPU); tests that swap the configuration later
    (``structlog.testing.capture_logs``) pass False."""
    stream = stream or sys.stderr
    numeric = _LEVELS[level]
    shared: list[Processor] = [structlog.processors.add_log_level,
                               structlog.processors.TimeStamper(fmt="iso", utc=True)]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared,
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=cache,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries are quieter than the gateway: their warnings and errors only.
    root.setLevel(max(numeric, logging.WARNING))


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """A structlog logger; :func:`configure_logging` decides where its lines go."""
    return structlog.get_logger(name)


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
