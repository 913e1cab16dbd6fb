"""Cancelled asyncio timers leave trio-asyncio's heap (gateway.aio_timers)."""

from __future__ import annotations

import asyncio

import trio
import trio_asyncio

from gateway import aio_timers
from gateway.aio_timers import sweep, sweep_timers


async def _queued(loop, count: int) -> None:
    """Wait until the loop has taken ``count`` timers into its heap (they travel through
    its queue)."""
    with trio.fail_after(5):
        while len(loop._timers) < count:
            await trio.sleep(0.001)
    assert len(loop._timers) == count


async def test_sweep_drops_cancelled_timers_and_keeps_live_ones():
    fired = []
    async with trio_asyncio.open_loop() as loop:
        dead = [loop.call_later(60, fired.append, "dead") for _ in range(1000)]
        live = [loop.call_later(0.5 + i / 1000, fired.append, i) for i in range(10)]
        await _queued(loop, 1010)
        for handle in dead:
            handle.cancel()
        assert sweep(loop) == 1000
        assert sorted(loop._timers) == sorted(live)
        assert sweep(loop) == 0  # nothing left to drop
        with trio.fail_after(5):
            while len(fired) < 10:
                await trio.sleep(0.01)
    assert fired == list(range(10))


async def test_a_minority_of_cancelled_timers_is_left_for_later():
    async with trio_asyncio.open_loop() as loop:
        handles = [loop.call_later(60, lambda: None) for _ in range(300)]
        await _queued(loop, 300)
        for handle in handles[:100]:
            handle.cancel()
        assert sweep(loop) == 0
        assert len(loop._timers) == 300
        for handle in handles:
            handle.cancel()


async def test_the_sweeper_actor_runs_beside_the_loop():
    async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
        await nursery.start(sweep_timers, 0.05)
        for handle in [loop.call_later(60, lambda: None) for _ in range(500)]:
            handle.cancel()
        with trio.fail_after(5):
            while len(loop._timers) != 0:
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()


async def test_asyncpg_style_timeouts_no_longer_pile_up():
    """What asyncpg does per query: wait_for with a long timeout that finishes at once."""
    async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
        await nursery.start(sweep_timers, 0.05)

        async def quick():
            for _ in range(2000):
                await asyncio.wait_for(asyncio.sleep(0), timeout=60)

        await trio_asyncio.aio_as_trio(quick)()
        # Without the sweeper all 2000 would stay for a minute; with it, never more than a
        # sweep's worth of them, and a heap this small is left alone.
        with trio.fail_after(5):
            while len(loop._timers) >= aio_timers._MIN_TIMERS:
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
