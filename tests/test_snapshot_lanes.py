"""The snapshot cell wakes its streams lane by lane, every tick (gateway.engine.snapshots)."""

from __future__ import annotations

import contextlib
import uuid

import trio
import trio.testing

from gateway.engine.snapshots import LANE_SIZE, Snapshots

CAMPAIGN = uuid.uuid4()


def _run(main, **kwargs):
    """trio.run with a time bound (10 s on the run's clock)."""

    async def bounded():
        with trio.fail_after(10):
            return await main()

    return trio.run(bounded, **kwargs)


def test_every_watcher_wakes_on_each_publish_in_lane_order():
    woken: list[tuple[int, int, int]] = []  # (watcher, version seen, its lane)
    watchers = 2 * LANE_SIZE + 7

    async def main():
        snapshots = Snapshots(db=None, tick_seconds=1.0)
        async with trio.open_nursery() as nursery:
            parked = trio.Semaphore(0)

            async def stream(number: int) -> None:
                with snapshots.watch(CAMPAIGN) as watch:
                    parked.release()
                    seen = watch.version
                    for _ in range(2):
                        assert await snapshots.newer(watch, seen, deadline=float("inf"))
                        seen = watch.version
                        woken.append((number, seen, watch.lane))

            for number in range(watchers):
                nursery.start_soon(stream, number)
            for _ in range(watchers):
                await parked.acquire()
            await trio.testing.wait_all_tasks_blocked()
            await snapshots.publish(CAMPAIGN, {"status": "running", "n": 1})
            await trio.testing.wait_all_tasks_blocked()
            await snapshots.publish(CAMPAIGN, {"status": "running", "n": 2})

    _run(main)
    assert sorted((n, v) for n, v, _ in woken) == sorted(
        (n, v) for n in range(watchers) for v in (1, 2))
    # Seats are given in the order the streams registered: lanes of LANE_SIZE.
    seated = sorted(lane for n, v, lane in woken if v == 1)
    assert seated == [i // LANE_SIZE for i in range(watchers)]
    for version in (1, 2):
        lanes = [lane for _, v, lane in woken if v == version]
        assert lanes == sorted(lanes)  # lane 0 ran before lane 1, before lane 2


def test_a_tick_without_a_new_value_still_wakes_streams_for_their_heartbeats():
    async def main():
        snapshots = Snapshots(db=None, tick_seconds=1.0, heartbeat_seconds=15.0)
        results = []
        async with trio.open_nursery() as nursery:
            async def stream() -> None:
                with snapshots.watch(CAMPAIGN) as watch:
                    results.append(await snapshots.newer(watch, watch.version, float("inf")))

            nursery.start_soon(stream)
            await trio.testing.wait_all_tasks_blocked()
            await snapshots.publish(CAMPAIGN, None)  # e.g. the database is unreachable
        return results

    assert _run(main) == [False]


def test_heartbeats_due_before_the_next_tick_use_their_own_deadline():
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main():
        snapshots = Snapshots(db=None, tick_seconds=5.0, heartbeat_seconds=1.0)
        with snapshots.watch(CAMPAIGN) as watch:
            began = trio.current_time()
            assert not await snapshots.newer(watch, watch.version, began + 1.0)
            return trio.current_time() - began

    assert _run(main, clock=clock) == 1.0


def test_close_wakes_every_lane():
    async def main():
        snapshots = Snapshots(db=None, tick_seconds=1.0)
        ended = []
        async with trio.open_nursery() as nursery:
            async def stream() -> None:
                with snapshots.watch(CAMPAIGN) as watch:
                    await snapshots.newer(watch, watch.version, float("inf"))
                    ended.append(snapshots.closing.is_set())

            for _ in range(3 * LANE_SIZE):
                nursery.start_soon(stream)
            await trio.testing.wait_all_tasks_blocked()
            snapshots.close()
        return ended

    assert _run(main) == [True] * (3 * LANE_SIZE)


def test_a_stream_that_ends_frees_its_seat_for_the_next():
    """Streams that come and go reuse the seats of those that ended: the lanes a tick
    walks stay as many as the streams need, however many have come and gone."""

    async def main():
        snapshots = Snapshots(db=None, tick_seconds=1.0)
        with snapshots.watch(CAMPAIGN) as first:  # keeps the cell alive throughout
            for _ in range(3 * LANE_SIZE):
                with snapshots.watch(CAMPAIGN):
                    pass
            with snapshots.watch(CAMPAIGN) as later:
                assert later.lane == first.lane == 0
            with contextlib.ExitStack() as crowd:
                lanes = [crowd.enter_context(snapshots.watch(CAMPAIGN)).lane
                         for _ in range(LANE_SIZE)]
            assert lanes == [0] * (LANE_SIZE - 1) + [1]  # the first lane fills, then one more
            return len(first.cell.lanes)

    assert _run(main) == 2
