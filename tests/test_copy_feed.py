"""A COPY's feed (gateway.copy_feed): the producer runs ahead in its own thread, never more
than AHEAD chunks past what was taken; its error reaches the COPY; closing waits for it.
And through PostgreSQL: a producer's error or a cancel mid-COPY aborts it, nothing is
stored, and a cancelled COPY ends only once the producer has returned."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
import trio
import trio_asyncio

from gateway.asyncio_loop import open_loop
from gateway.contacts_csv import COPY_COLUMNS, COPY_SIGNATURE, COPY_TRAILER
from gateway.copy_feed import AHEAD, Feed

WAIT = 5.0  # seconds: a bound on each wait for the other thread, never a sleep


class Producer:
    """Chunks b"0", b"1", ... then None; counts its calls against the chunks taken."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.calls = 0
        self.taken = 0
        self.most_ahead = 0
        self.called = threading.Condition()

    def __call__(self) -> bytes | None:
        with self.called:
            self.calls += 1
            self.most_ahead = max(self.most_ahead, self.calls - self.taken)
            self.called.notify_all()
        n = self.calls - 1
        if n == self.fail_at:
            raise ValueError(f"row {n} is broken")
        return None if n >= self.count else str(n).encode()

    def wait_for_calls(self, calls: int) -> None:
        with self.called:
            assert self.called.wait_for(lambda: self.calls >= calls, WAIT), self.calls


def in_asyncio(fn):
    """Run the asyncio coroutine function ``fn`` on the gateway's loop inside trio."""

    async def run():
        async with open_loop():
            with trio.fail_after(WAIT * 2):
                return await trio_asyncio.aio_as_trio(fn)()

    return run


async def test_the_chunks_arrive_in_order_and_the_producer_stays_bounded():
    producer = Producer(20)

    async def consume():
        got = []
        async with Feed(producer) as feed:
            async for chunk in feed.chunks():
                got.append(chunk)
                with producer.called:
                    producer.taken += 1
                await asyncio.sleep(0)
        return got

    got = await in_asyncio(consume)()
    assert got == [str(n).encode() for n in range(20)]
    assert producer.calls == 21  # the None included, and never called after it
    # Ahead of what was taken by at most AHEAD calls (+1: the one taken is counted as
    # taken only after the consumer got it).
    assert 1 <= producer.most_ahead <= AHEAD + 1


async def test_the_producer_runs_ahead_without_being_asked_and_then_waits():
    producer = Producer(100)

    async def fill():
        async with Feed(producer) as feed:
            # Nothing is taken: the thread still produces AHEAD chunks on its own.
            await asyncio.get_running_loop().run_in_executor(None, producer.wait_for_calls,
                                                             AHEAD)
            chunks = feed.chunks()
            first = await chunks.__anext__()
            # Taking one makes room for exactly one more.
            await asyncio.get_running_loop().run_in_executor(None, producer.wait_for_calls,
                                                             AHEAD + 1)
            await chunks.aclose()
        return first

    assert await in_asyncio(fill)() == b"0"
    # Closed with room for none: the producer was not called again.
    assert producer.calls == AHEAD + 1


async def test_the_producers_error_is_raised_after_the_chunks_before_it():
    producer = Producer(10, fail_at=4)

    async def consume():
        got = []
        async with Feed(producer) as feed:
            with pytest.raises(ValueError, match="row 4 is broken"):
                async for chunk in feed.chunks():
                    got.append(chunk)
        return got

    assert await in_asyncio(consume)() == [b"0", b"1", b"2", b"3"]
    assert producer.calls == 5


async def test_closing_waits_for_a_producer_in_the_middle_of_a_chunk():
    inside, release = threading.Event(), threading.Event()
    finished = []

    def slow() -> bytes | None:
        inside.set()
        assert release.wait(WAIT)
        finished.append(True)
        return b"late"

    async def close_early():
        loop = asyncio.get_running_loop()
        feed = Feed(slow, ahead=1)
        await feed.__aenter__()
        await loop.run_in_executor(None, inside.wait, WAIT)
        closing = asyncio.ensure_future(feed.close())
        for _ in range(10):  # a close that did not wait would be done after one tick
            await asyncio.sleep(0)
        early = closing.done()
        release.set()
        await asyncio.wait_for(closing, WAIT)
        return early

    assert await in_asyncio(close_early)() is False
    assert finished == [True]  # and called once: closed with the room taken


async def test_a_feed_never_started_closes_at_once():
    async def never():
        await Feed(lambda: None).close()
        return True

    assert await in_asyncio(never)() is True


async def test_a_producer_failing_mid_copy_aborts_it_and_stores_nothing(db, raw):
    """Through PostgreSQL: the chunks already sent are rolled back with the COPY; the same
    chunks ended by the trailer instead are stored (the payload itself was right)."""
    campaign = uuid.uuid4()

    def producer(fail: bool):
        produced: list[int] = []

        def produce() -> bytes | None:
            n = len(produced)
            produced.append(n)
            if n < 5:
                return (COPY_SIGNATURE if n == 0 else b"") + _row(campaign, n)
            if n == 5:
                if fail:
                    raise ValueError("the file broke at row 6")
                return COPY_TRAILER
            return None

        return produce, produced

    produce, produced = producer(fail=True)
    with pytest.raises(ValueError, match="broke at row 6"):
        await db.transaction(
            lambda tx: tx.copy_chunks("contacts", COPY_COLUMNS, produce), rerun=False)
    assert produced == [0, 1, 2, 3, 4, 5]  # and not called again once it raised
    stored = "SELECT count(*) FROM contacts WHERE campaign_id = $1"
    assert await raw.fetchval(stored, campaign) == 0

    produce, produced = producer(fail=False)
    copied = await db.transaction(
        lambda tx: tx.copy_chunks("contacts", COPY_COLUMNS, produce), rerun=False)
    assert copied == 5 and produced == [0, 1, 2, 3, 4, 5, 6]
    assert await raw.fetchval(stored, campaign) == 5


async def test_a_cancelled_copy_waits_for_the_producer_and_stores_nothing(db, raw):
    """A request cancelled mid-COPY (its client went away): the COPY and its transaction
    end, but only once the producer has returned, so the caller's file is never read after
    the upload is closed; it is not called again, and the pool still works."""
    campaign = uuid.uuid4()
    inside, release = threading.Event(), threading.Event()
    calls: list[int] = []
    returned: list[int] = []

    def produce() -> bytes | None:
        n = len(calls)
        calls.append(n)
        if n == 3:
            inside.set()
            assert release.wait(WAIT)
        chunk = _row(campaign, n)
        returned.append(n)
        return (COPY_SIGNATURE if n == 0 else b"") + chunk

    async def copy(tx):
        return await tx.copy_chunks("contacts", COPY_COLUMNS, produce)

    ended_while_producing = []
    ended = trio.Event()
    with trio.fail_after(WAIT * 2):
        async with trio.open_nursery() as nursery:
            cancel = trio.CancelScope()

            async def upload():
                with cancel:
                    await db.transaction(copy, rerun=False)
                ended_while_producing.append(3 not in returned)
                ended.set()

            nursery.start_soon(upload)
            await trio.to_thread.run_sync(inside.wait, WAIT)
            cancel.cancel()
            # A bounded look for a wrong early end (the COPY's abort is one round trip).
            with trio.move_on_after(0.5):
                await ended.wait()
            release.set()
    assert ended_while_producing == [False]
    assert calls == [0, 1, 2, 3]  # and never called after the cancel
    assert await raw.fetchval("SELECT count(*) FROM contacts WHERE campaign_id = $1",
                              campaign) == 0
    # The pool's connections are still good.
    produce_calls = iter([COPY_SIGNATURE + _row(campaign, 0), COPY_TRAILER, None])
    assert await db.transaction(
        lambda tx: tx.copy_chunks("contacts", COPY_COLUMNS, lambda: next(produce_calls)),
        rerun=False) == 1


def _row(campaign: uuid.UUID, seq: int) -> bytes:
    """One contacts row of binary COPY (the columns of COPY_COLUMNS)."""
    phone, fields = b"+1212555%04d" % seq, b"[]"
    return (len(COPY_COLUMNS).to_bytes(2, "big")
            + (16).to_bytes(4, "big") + campaign.bytes
            + (2).to_bytes(4, "big") + (0).to_bytes(2, "big")
            + (4).to_bytes(4, "big") + seq.to_bytes(4, "big")
            + (4).to_bytes(4, "big") + (seq + 1).to_bytes(4, "big")
            + len(phone).to_bytes(4, "big") + phone
            + len(fields).to_bytes(4, "big") + fields)
