"""The asyncio loop the database driver runs on, inside trio, with its reports kept local.

asyncpg is an asyncio library; trio-asyncio runs its loop inside trio's. That loop's
default exception handler raises every report asyncio makes into the loop's nursery, which
ends the whole process. Such reports are about nobody's work: asyncio makes them for a
future that finished with an exception nobody will read, e.g. asyncpg's probe of a new
connection's TLS support, orphaned when the connection attempt was cancelled and failing
once the socket closed ("Future exception was never retrieved"). One of those at shutdown
or under an acquire timeout took the gateway down with every live call. asyncio's own loops
log these reports and go on; so does this one, at warning level. Errors of work the
gateway awaits are not reports: they are raised where it awaits them, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import trio_asyncio  # type: ignore[import-untyped]  # trio-asyncio ships no type hints

from gateway.logs import get_logger

log = get_logger(__name__)

__all__ = ["open_loop"]


@contextlib.asynccontextmanager
async def open_loop() -> AsyncIterator[asyncio.AbstractEventLoop]:
    """``trio_asyncio.open_loop()`` whose unhandled-error reports are logged, not raised."""
    async with trio_asyncio.open_loop() as loop:
        loop.set_exception_handler(_log_report)
        yield loop


def _log_report(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exception = context.get("exception")
    log.warning("asyncio.unhandled_report", message=context.get("message"),
                error=None if exception is None else type(exception).__name__,
                detail=None if exception is None else str(exception)[:300])
