"""Delivery yields to a saturated dialer: the load signal (from the recorder's busy time, on
trio's mock clock), the parent's news of it to the delivery child (over a real pipe's
stream), and a delivery actor against PostgreSQL and a real receiver holding back every
batch after the first while dialing is saturated, no longer than its bound."""

from __future__ import annotations

import uuid

import attrs
import pytest
import trio
import trio.testing
from webhook_receiver import receiving

from gateway import webhook_worker
from gateway.config import WebhooksSettings
from gateway.engine.load import SATURATED_SHARE, WINDOW_SECONDS, DialingLoad, watch
from gateway.engine.webhooks import Deliverer
from gateway.store import accounts, webhooks

pytestmark = pytest.mark.timeout(30)


@attrs.define
class _Busy:
    """A recorder's busy time, as the test says it goes: busy for ``share`` of each second
    from now on."""

    share: float = 0.0
    _total: float = 0.0
    _since: float = 0.0

    def set(self, share: float) -> None:
        self._total = self.busy_seconds()
        self._since = trio.current_time()
        self.share = share

    def busy_seconds(self) -> float:
        return self._total + self.share * (trio.current_time() - self._since)


def test_dialing_is_saturated_while_the_recorder_is_busy_most_of_each_window():
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> list[tuple[float, bool]]:
        load, busy, seen = DialingLoad(), _Busy(), []
        async with trio.open_nursery() as nursery:
            await nursery.start(watch, load, busy)

            async def record() -> None:
                while True:
                    await load.changed()
                    seen.append((trio.current_time(), load.saturated))

            nursery.start_soon(record)
            await trio.sleep(2)                        # idle: nothing changes
            busy.set(SATURATED_SHARE + 0.05)           # at 2 s: flat out
            await trio.sleep(2)
            busy.set(SATURATED_SHARE - 0.05)           # at 4 s: just below
            await trio.sleep(2)
            busy.set(1.0)                              # at 6 s: a burst
            await trio.sleep(2)
            busy.set(0.0)                              # at 8 s: the campaign is over
            await trio.sleep(2)
            nursery.cancel_scope.cancel()
        return seen

    seen = trio.run(main, clock=clock)
    # Each change is seen within one window (the first whole window after it), once.
    assert [s for _, s in seen] == [True, False, True, False]
    for (at, _), began in zip(seen, (2, 4, 6, 8), strict=True):
        assert began < at <= began + 2 * WINDOW_SECONDS + 1e-9


async def test_the_child_follows_the_parents_news_of_the_load_and_stops_at_its_end():
    parent_end, child_end = trio.testing.memory_stream_one_way_pair()
    load, followed = DialingLoad(), DialingLoad()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(webhook_worker._tell_load, parent_end, load)
        stopped, ended = trio.CancelScope(), trio.Event()

        async def child() -> None:
            with stopped:
                await webhook_worker._follow_parent(child_end, followed, stopped)
            ended.set()

        nursery.start_soon(child)
        for state in (True, False, True):
            load.set(state)
            with trio.fail_after(5):
                while followed.saturated != state:
                    await followed.changed()
        await parent_end.aclose()  # the parent goes: the child stops
        with trio.fail_after(5):
            await ended.wait()
        assert stopped.cancel_called
        nursery.cancel_scope.cancel()


def test_the_last_state_in_a_read_counts_whether_it_ends_a_line_or_not():
    followed = DialingLoad()
    webhook_worker._follow(followed, b"0\n1\n0\n1")  # a read ending mid-line
    assert followed.saturated
    webhook_worker._follow(followed, b"")
    assert followed.saturated
    webhook_worker._follow(followed, b"\n0\n")
    assert not followed.saturated


async def _queue(db, raw, receiver, events: int) -> uuid.UUID:
    """An endpoint of a new account, and ``events`` deliveries of one campaign for it."""
    account = await accounts.create_account(db, name="hooks", concurrent_max=5,
                                            calls_per_minute=100)
    endpoint, secret = await webhooks.create(db, account.account.id, url=receiver.url,
                                             description=None, events=["call.ended"])
    receiver.secret = secret
    campaign = uuid.uuid4()
    await raw.execute(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, campaign_id, type, payload) "
        "SELECT $1, gen_random_uuid(), $2, 'call.ended', json_build_object("
        "    'type', 'call.ended', 'timestamp', '2026-12-04T00:00:00.000000Z',"
        "    'data', json_build_object('n', n)) "
        "FROM generate_series(0, $3 - 1) AS n ORDER BY n", endpoint.id, campaign, events)
    return campaign


async def test_a_saturated_dialer_holds_back_every_batch_after_the_first_until_it_calms(
        db, raw):
    load = DialingLoad()
    load.set(True)
    settings = WebhooksSettings(poll_seconds=0.01, claim_batch_size=2,
                                yield_to_dialing_seconds=3600)
    async with receiving() as receiver, trio.open_nursery() as nursery:
        await _queue(db, raw, receiver, 6)
        await nursery.start(Deliverer(db, settings, load).run)
        with trio.fail_after(10):
            await receiver.until(lambda r: len(r.acked) == 2)
        # Every task parked (the sender waiting on the load, the poll too, the receiver
        # idle), and still two: unheld, the other four would be on their way.
        with trio.fail_after(10):
            await trio.testing.wait_all_tasks_blocked(cushion=0.1)
        assert len(receiver.acked) == 2
        load.set(False)
        with trio.fail_after(10):
            await receiver.until(lambda r: len(r.acked) == 6)
        nursery.cancel_scope.cancel()
    assert [r.event["data"]["n"] for r in receiver.acked] == list(range(6))
    assert all(r.verified for r in receiver.acked)


async def test_a_dialer_saturated_for_long_holds_events_back_no_longer_than_the_bound(
        db, raw):
    load = DialingLoad()
    load.set(True)
    hold = 1.0
    settings = WebhooksSettings(poll_seconds=0.01, claim_batch_size=2,
                                yield_to_dialing_seconds=hold)
    async with receiving() as receiver, trio.open_nursery() as nursery:
        written = trio.current_time()
        await _queue(db, raw, receiver, 6)
        await nursery.start(Deliverer(db, settings, load).run)
        with trio.fail_after(10):
            await receiver.until(lambda r: len(r.acked) == 6)
        nursery.cancel_scope.cancel()
    at = [r.at - written for r in receiver.acked]
    # The first batch at once; the second once the first's events were `hold` old; the
    # third right after (its events were as old).
    assert at[1] < hold <= at[2]
    assert at[5] - at[2] < hold
