"""A COPY's feed: a blocking producer of chunks (the CSV parser) run ahead in its own
thread, a bounded number of chunks ahead of the database.

Calling the producer once per chunk from the event loop (``run_in_executor``, then await,
then call it again) leaves its thread idle between two chunks for as long as the loop
takes to notice the first one and ask for the next: 0.5-2.5 ms each, a tenth of a
100k-row import's parse, which is its critical path. Here the thread goes straight on to
the next chunk; it only waits when `AHEAD` chunks are ready and not yet taken, so memory
stays bounded (a chunk is about a megabyte).

The loop side is asyncio (the database driver's): chunks arrive through
``call_soon_threadsafe``. :meth:`Feed.close` stops the thread and waits until it has
returned, so the producer's source (the caller's file) is never read after the COPY ends.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

__all__ = ["AHEAD", "Feed"]

# Chunks produced and not yet taken: two keep the database busy while the parser runs
# (one being sent, one ready), and a third absorbs the event loop's slower moments.
AHEAD = 3


class _Failed:
    """The producer raised: the COPY is aborted with its exception."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Feed:
    """``produce`` called in a thread until it returns None; its chunks through
    :meth:`chunks`. Use as ``async with Feed(produce) as feed``; leaving the block stops
    the thread and waits for it."""

    def __init__(self, produce: Callable[[], bytes | None], ahead: int = AHEAD) -> None:
        self._produce = produce
        self._room = threading.Semaphore(ahead)
        self._stopped = False
        self._ready: asyncio.Queue[bytes | _Failed | None] = asyncio.Queue()
        self._finished = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="copy-feed", daemon=True)

    async def __aenter__(self) -> Feed:
        self._thread.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the producer after its current chunk and wait until its thread is done."""
        self._stopped = True
        self._room.release()  # a thread waiting for room wakes and sees the stop
        if self._thread.ident is not None:  # started
            await self._finished.wait()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The chunks in order; raises what the producer raised."""
        while True:
            item = await self._ready.get()
            self._room.release()
            if item is None:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def _run(self) -> None:
        try:
            while True:
                self._room.acquire()
                if self._stopped:
                    return
                try:
                    chunk = self._produce()
                except BaseException as exc:  # handed to the COPY, raised there
                    self._post(self._ready.put_nowait, _Failed(exc))
                    return
                self._post(self._ready.put_nowait, chunk)
                if chunk is None:
                    return
        finally:
            self._post(self._finished.set)

    def _post(self, callback: Callable[..., object], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed (the process is stopping): nobody waits
            self._stopped = True
