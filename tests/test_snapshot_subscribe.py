"""The snapshot subscription (Snapshots.subscribe): what a stream is told, in order.

Pure cell logic on trio's mock clock: the campaign's first value comes from a subscriber
already watching (so nothing is loaded from the database), then from publish()."""

from __future__ import annotations

import uuid

import trio
import trio.testing

from gateway.engine.snapshots import DELETED, End, Heartbeat, Snapshot, Snapshots, encode

CAMPAIGN = uuid.uuid4()


def _value(status: str, n: int = 0) -> dict:
    return {"campaign_id": str(CAMPAIGN), "status": status, "n": n}


def _run(main):
    async def bounded():
        with trio.fail_after(60):  # on the mock clock: far more than any wait below
            return await main()

    return trio.run(bounded, clock=trio.testing.MockClock(autojump_threshold=0))


async def _collect(snapshots: Snapshots, into: list, heartbeat: float = 100.0) -> None:
    async with snapshots.subscribe(CAMPAIGN, heartbeat) as updates:
        async for update in updates:
            into.append(update)


def test_snapshots_in_order_then_the_last_one_and_the_end():
    got: list = []

    async def main():
        snapshots = Snapshots(db=None, tick_seconds=1.0)
        with snapshots.watch(CAMPAIGN):  # another stream: its value is the first one
            await snapshots.publish(CAMPAIGN, _value("running", 1))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_collect, snapshots, got)
                await trio.sleep(1)
                await snapshots.publish(CAMPAIGN, _value("running", 2))
                await trio.sleep(1)
                await snapshots.publish(CAMPAIGN, None)  # a tick without a new value
                await trio.sleep(1)
                await snapshots.publish(CAMPAIGN, _value("completed", 3))

    _run(main)
    assert got == [Snapshot(_value("running", 1), encode(_value("running", 1))),
                   Snapshot(_value("running", 2), encode(_value("running", 2))),
                   Snapshot(_value("completed", 3), encode(_value("completed", 3))),
                   End("completed")]


def test_a_heartbeat_when_nothing_new_comes_for_its_interval():
    got: list = []

    async def main():
        snapshots = Snapshots(db=None, tick_seconds=10.0, heartbeat_seconds=2.0)
        with snapshots.watch(CAMPAIGN):
            await snapshots.publish(CAMPAIGN, _value("running"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_collect, snapshots, got, 2.0)
                await trio.sleep(5)  # two heartbeats due, no value
                await snapshots.publish(CAMPAIGN, _value("failed"))

    _run(main)
    assert [type(u) for u in got] == [Snapshot, Heartbeat, Heartbeat, Snapshot, End]
    assert got[-1] == End("failed")


def test_a_deleted_campaign_ends_without_a_snapshot_of_it():
    got: list = []

    async def main():
        snapshots = Snapshots(db=None, tick_seconds=1.0)
        with snapshots.watch(CAMPAIGN):
            await snapshots.publish(CAMPAIGN, _value("paused"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_collect, snapshots, got)
                await trio.sleep(1)
                await snapshots.publish(CAMPAIGN, {"campaign_id": str(CAMPAIGN),
                                                   "status": DELETED})

    _run(main)
    assert [type(u) for u in got] == [Snapshot, End] and got[-1] == End(DELETED)


def test_shutdown_stops_the_updates_without_an_end():
    got: list = []

    async def main():
        snapshots = Snapshots(db=None, tick_seconds=1.0)
        with snapshots.watch(CAMPAIGN):
            await snapshots.publish(CAMPAIGN, _value("running"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_collect, snapshots, got)
                await trio.sleep(1)
                snapshots.close()

    _run(main)
    assert [type(u) for u in got] == [Snapshot]


def test_a_subscriber_that_leaves_frees_its_seat():
    async def main():
        snapshots = Snapshots(db=None, tick_seconds=1.0)
        with snapshots.watch(CAMPAIGN):
            await snapshots.publish(CAMPAIGN, _value("running"))
            async with snapshots.subscribe(CAMPAIGN, 100.0) as updates:
                assert isinstance(await updates.__anext__(), Snapshot)
                assert snapshots._cells[CAMPAIGN].seated == [2]
            assert snapshots._cells[CAMPAIGN].seated == [1]
        assert CAMPAIGN not in snapshots._cells

    _run(main)
