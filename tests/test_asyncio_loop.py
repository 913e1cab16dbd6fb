"""An orphaned asyncio error is logged, never raised into trio (gateway.asyncio_loop)."""

from __future__ import annotations

import asyncio
import gc

import pytest
import structlog.testing
import trio
import trio.testing
import trio_asyncio

from gateway.asyncio_loop import open_loop


async def _orphan_a_failed_future(loop: asyncio.AbstractEventLoop) -> None:
    """What asyncpg's cancelled TLS probe leaves: a future failed after nobody waits on it."""
    future = loop.create_future()
    future.set_exception(ConnectionError("unexpected connection_lost() call"))
    del future
    gc.collect()  # its __del__ reports "Future exception was never retrieved"
    await trio.testing.wait_all_tasks_blocked()  # a raised report has reached the nursery


async def test_an_orphaned_future_error_is_logged_and_the_loop_goes_on():
    with trio.fail_after(5), structlog.testing.capture_logs() as logs:
        async with open_loop() as loop:
            await _orphan_a_failed_future(loop)
            # The loop still runs asyncio work after the report.
            assert await trio_asyncio.aio_as_trio(asyncio.sleep)(0, "alive") == "alive"
    reports = [e for e in logs if e["event"] == "asyncio.unhandled_report"]
    assert len(reports) == 1
    assert reports[0]["log_level"] == "warning"
    assert reports[0]["message"] == "Future exception was never retrieved"
    assert reports[0]["error"] == "ConnectionError"


async def test_trio_asyncio_alone_would_raise_it():
    """The reason for the handler: the plain loop ends its block with the report."""
    with trio.fail_after(5), pytest.raises(BaseExceptionGroup) as info:
        async with trio_asyncio.open_loop() as loop:
            await _orphan_a_failed_future(loop)
    assert info.group_contains(ConnectionError, match="unexpected connection_lost")
