"""Structured logs: one JSON object per line on standard error.

Every state change and call is an ``event`` with its ids as keys (``campaign_id``,
``contact_id``, ``call_id``...). Secrets never reach a log line: API keys are logged by their
prefix, database URLs through :func:`redact_url`.
"""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit, urlunsplit

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure_logging(level: str = "info", stream=None) -> None:
    """Route structlog to JSON lines at ``level`` (stdlib logging from libraries too)."""
    stream = stream or sys.stderr
    numeric = _LEVELS[level]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Hypercorn and asyncpg log through the standard library: keep their warnings, quietly.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=stream,
                        format='{"event": "%(name)s", "level": "%(levelname)s", "message": "%(message)s"}')


def get_logger(name: str | None = None):
    return structlog.get_logger(name)


def redact_url(url: str) -> str:
    """A database URL fit for a log line: the password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
