"""SSE load generator: N subscribers to one campaign's ``/events``, in this process.

    python -m tests.bench.sse_subscribers BASE_URL CAMPAIGN_ID API_KEY COUNT OUT.json

Raw sockets on trio (no HTTP client: 1,000 of them must stay cheap). Each subscriber sends
its GET, reads the response head, then records, for every snapshot, its ``updated_at``
(the same for every subscriber of one tick: it is set once per refresh by the gateway's
snapshot actor) and the wall time (``time.time()``, comparable across processes) at which
the bytes were received. Prints ``ready`` once every subscriber has its first snapshot,
and writes the records as JSON when every stream has ended (``event: end``) or on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
import time
from urllib.parse import urlsplit

import trio

MARK = b'"updated_at":"'
CONNECTS_AT_ONCE = 25


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class Subscriber:
    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []
        self.ended = False
        self.error: str | None = None
        self.first = trio.Event()

    def scan(self, buffer: bytes, at: float) -> bytes:
        """Record every complete ``updated_at`` value in ``buffer``; return the rest."""
        while True:
            start = buffer.find(MARK)
            if start < 0:
                return buffer[-len(MARK):]
            stop = buffer.find(b'"', start + len(MARK))
            if stop < 0:
                return buffer[start:]
            self.events.append((buffer[start + len(MARK):stop].decode(), at))
            self.first.set()
            buffer = buffer[stop:]

    async def run(self, host: str, port: int, request: bytes, connects: trio.Semaphore) -> None:
        try:
            async with connects:
                stream = await trio.open_tcp_stream(host, port)
                await stream.send_all(request)
                head = b""
                while b"\r\n\r\n" not in head:
                    data = await stream.receive_some(65536)
                    if not data:
                        raise ConnectionError("closed before the response head")
                    head += data
                at = time.time()
                head, _, rest = head.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            async with stream:
                buffer = self.scan(rest, at)
                ended = b"event: end" in rest
                while not ended:
                    data = await stream.receive_some(65536)
                    at = time.time()
                    if not data:
                        break
                    buffer = self.scan(buffer + data, at)
                    ended = b"event: end" in data
                self.ended = ended
        except (OSError, ConnectionError, trio.BrokenResourceError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.first.set()


async def main(args: argparse.Namespace) -> None:
    url = urlsplit(args.base_url)
    request = (f"GET /api/v1/campaigns/{args.campaign_id}/events HTTP/1.1\r\n"
               f"Host: {url.netloc}\r\nAuthorization: Bearer {args.api_key}\r\n"
               "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n").encode()
    subscribers = [Subscriber() for _ in range(args.count)]
    connects = trio.Semaphore(CONNECTS_AT_ONCE)
    ready_at = stopped_at = None
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as outer:
            async def stop_on_signal() -> None:
                nonlocal stopped_at
                async for _ in signals:
                    stopped_at = time.time()
                    outer.cancel_scope.cancel()

            outer.start_soon(stop_on_signal)
            async with trio.open_nursery() as nursery:
                for subscriber in subscribers:
                    nursery.start_soon(subscriber.run, url.hostname, url.port, request,
                                       connects)
                for subscriber in subscribers:
                    await subscriber.first.wait()
                ready_at = time.time()
                print("ready", flush=True)
            outer.cancel_scope.cancel()  # every stream ended by itself
    records = [{"events": s.events, "ended": s.ended, "error": s.error} for s in subscribers]
    with open(args.out, "w") as out:
        json.dump({"ready_at": ready_at, "stopped_at": stopped_at or time.time(),
                   "subscribers": records}, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("campaign_id")
    parser.add_argument("api_key")
    parser.add_argument("count", type=int)
    parser.add_argument("out")
    _raise_open_files()
    trio.run(main, parser.parse_args())
    sys.exit(0)
