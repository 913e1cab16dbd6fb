"""A real webhook receiver for the tests: an HTTP server (hypercorn, 127.0.0.1, port 0)
that verifies every request's Standard Webhooks signature, answers as its ``plan`` says
(a status, a hang past the sender's timeout) and records what it acknowledged.

``plan(n, event)`` -> an int status (2xx acknowledges) or ``HANG``; ``n`` counts requests
from 0. ``acked`` is the events answered 2xx, in the order they were answered;
``requests`` every request; ``overlaps`` the times a campaign's next event arrived while
one of the same campaign was still being answered (ordering broken).
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import hypercorn
import hypercorn.trio
import trio
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HANG = "hang"
Plan = Callable[[int, dict], int | str]


@attrs.define
class Received:
    headers: dict[str, str]
    event: dict
    verified: bool
    at: float


@attrs.define
class Receiver:
    plan: Plan = lambda n, event: 204
    secret: str | None = None  # the endpoint's, once created
    url: str = ""
    requests: list[Received] = attrs.field(factory=list)
    acked: list[Received] = attrs.field(factory=list)
    overlaps: int = 0
    on_ack: Callable[[Received], None] | None = None
    _open: Counter[str] = attrs.field(factory=Counter)
    changed: trio.Event = attrs.field(factory=trio.Event)

    def types(self) -> list[str]:
        return [r.event["type"] for r in self.acked]

    def acked_ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.acked]

    async def until(self, check: Callable[[Receiver], bool]) -> None:
        """Wait until ``check(self)`` holds (the test's time limit bounds it)."""
        while not check(self):
            self.changed = trio.Event()
            await self.changed.wait()

    def _verify(self, body: bytes, headers: dict[str, str]) -> tuple[dict, bool]:
        try:
            event = Webhook(self.secret or "whsec_" + "A" * 32).verify(body, headers)
            return event, True
        except WebhookVerificationError:
            return json.loads(body), False

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        event, verified = self._verify(body, headers)
        received = Received(headers, event, verified, trio.current_time())
        campaign = str(event.get("data", {}).get("campaign_id")
                       or event.get("data", {}).get("campaign", {}).get("id"))
        n = len(self.requests)
        self.requests.append(received)
        if self._open[campaign]:
            self.overlaps += 1
        self._open[campaign] += 1
        try:
            answer = self.plan(n, event)
            if answer == HANG:  # never answered: the sender gives up on it and goes on
                self._open[campaign] -= 1
                campaign = ""
                await trio.sleep_forever()
            if 200 <= int(answer) < 300:
                self.acked.append(received)
                if self.on_ack is not None:
                    self.on_ack(received)
            self.changed.set()
            await send({"type": "http.response.start", "status": int(answer),
                        "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
        finally:
            self._open[campaign] -= 1
            self.changed.set()


@contextlib.asynccontextmanager
async def receiving(plan: Plan | None = None, **kwargs: Any) -> AsyncIterator[Receiver]:
    receiver = Receiver(**kwargs) if plan is None else Receiver(plan, **kwargs)
    config = hypercorn.Config()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = 0.1
    config.accesslog = config.errorlog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(lambda task_status: hypercorn.trio.serve(
            receiver, config, shutdown_trigger=stop.wait, task_status=task_status))
        receiver.url = binds[0] + "/hooks"
        yield receiver
        stop.set()
        nursery.cancel_scope.deadline = trio.current_time() + 2
