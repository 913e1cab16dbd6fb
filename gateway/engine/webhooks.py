"""The webhook delivery actor: sends the outbox's deliveries, signed, in order per campaign.

Every process runs one; they share the work through claims in the database. A queue is
one endpoint's deliveries of one campaign. The actor looks for due queues every
``poll_seconds``, claims a batch of a queue (its head must be due and nobody else's) and
sends it one delivery at a time: a 2xx is delivered, anything else (another status, a
timeout, a refused connection) is a failed attempt that holds the queue back until its
retry (exponential backoff with jitter). An endpoint failing for ``give_up_after_seconds``
is disabled. A claim is good for ``claim_seconds`` by the database's clock and no request
starts after half of it by this process's clock, so two processes never send one queue at
once, whatever their clocks or a cut-off database. Per endpoint, at most
``max_in_flight_per_endpoint`` requests are in flight: a slow receiver holds only its own
queues, never the dialing (this actor has its own connections) nor other endpoints.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NoReturn

import attrs
import trio
from standardwebhooks.webhooks import Webhook

from gateway import __version__
from gateway.clock import utcnow
from gateway.config import WebhooksSettings
from gateway.db import Database, DatabaseUnavailable
from gateway.engine.load import DialingLoad
from gateway.engine.webhook_http import Client, HttpError
from gateway.ids import uuid7
from gateway.logs import get_logger
from gateway.store import webhooks
from gateway.store.webhooks import Claimed, Queue, Target

log = get_logger(__name__)
FORGET_EVERY_SECONDS = 3600.0
ERROR_CHARS = 300


@attrs.frozen
class Sent:
    ok: bool
    status_code: int | None = None
    error: str | None = None


def retry_delay(settings: WebhooksSettings, attempts: int, rng: random.Random) -> float:
    """Seconds before the next try of a delivery that has failed ``attempts`` times."""
    exponent = min(max(attempts - 1, 0), 60)
    delay = min(settings.retry_base_seconds * 2.0 ** exponent, settings.retry_max_seconds)
    return delay * rng.uniform(0.5, 1.0)


def signed_headers(target: Target, delivery: Claimed, now: datetime) -> list[tuple[str, str]]:
    """The Standard Webhooks headers: webhook-id (the event's id, the same on every try
    and for every endpoint), webhook-timestamp (seconds) and webhook-signature."""
    msg_id = str(delivery.event_id)
    signature = Webhook(target.secret).sign(msg_id, now, delivery.payload)
    return [("webhook-id", msg_id), ("webhook-timestamp", str(int(now.timestamp()))),
            ("webhook-signature", signature), ("content-type", "application/json")]


async def send(http: Client, target: Target, delivery: Claimed, within: float) -> Sent:
    """One try. Total: whatever the receiver does, the answer is a :class:`Sent`."""
    try:
        status = await http.post(target.url, delivery.payload.encode(),
                                 signed_headers(target, delivery, utcnow()), within=within)
    except HttpError as exc:  # refused, reset, DNS, TLS, a malformed answer, too slow...
        return Sent(False, error=str(exc)[:ERROR_CHARS])
    return Sent(200 <= status < 300, status)


@attrs.define
class Deliverer:
    db: Database
    settings: WebhooksSettings
    load: DialingLoad = attrs.field(factory=DialingLoad)
    owner: uuid.UUID = attrs.field(factory=uuid7)
    rng: random.Random = attrs.field(factory=random.Random)
    _busy: set[Queue] = attrs.field(factory=set)
    _per_endpoint: Counter[uuid.UUID] = attrs.field(factory=Counter)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Deliver until cancelled; an outage is waited out."""
        http = Client(max_idle=self.settings.max_in_flight_per_endpoint,
                      user_agent=f"outbound-campaign-gateway/{__version__}",
                      deny=tuple(self.settings.deny_networks))
        try:
            async with trio.open_nursery() as senders:
                task_status.started()
                await self._poll(http, senders)
        finally:
            with trio.CancelScope(shield=True):
                await http.aclose()

    async def _poll(self, http: Client, senders: trio.Nursery) -> NoReturn:
        forget_at = trio.current_time()
        while True:
            try:
                self._start_due(await webhooks.due_queues(
                    self.db, 2 * self.settings.max_in_flight), http, senders)
                if trio.current_time() >= forget_at:
                    await webhooks.forget_delivered(self.db, self.settings.keep_seconds)
                    forget_at = trio.current_time() + FORGET_EVERY_SECONDS
            except DatabaseUnavailable:
                log.warning("webhooks.waiting_for_database")
            except Exception as exc:  # logged, tried again next poll: never fatal
                log.error("webhooks.poll_failed", exc_info=exc)
            await self._pause()

    def _start_due(self, queues: Sequence[Queue], http: Client,
                   senders: trio.Nursery) -> None:
        for queue in queues:
            if len(self._busy) >= self.settings.max_in_flight:
                return
            if (queue in self._busy or self._per_endpoint[queue.endpoint_id]
                    >= self.settings.max_in_flight_per_endpoint):
                continue
            self._busy.add(queue)
            self._per_endpoint[queue.endpoint_id] += 1
            senders.start_soon(self._send_queue, queue, http)

    async def _send_queue(self, queue: Queue, http: Client) -> None:
        try:
            await self._drain(queue, http)
        except DatabaseUnavailable:
            log.warning("webhooks.waiting_for_database", endpoint_id=str(queue.endpoint_id))
        except Exception as exc:  # this queue is tried again at the next poll
            log.error("webhooks.send_failed", endpoint_id=str(queue.endpoint_id), exc_info=exc)
        finally:
            self._busy.discard(queue)
            self._per_endpoint[queue.endpoint_id] -= 1
            if self._per_endpoint[queue.endpoint_id] <= 0:
                del self._per_endpoint[queue.endpoint_id]

    async def _drain(self, queue: Queue, http: Client) -> None:
        """Send the queue's batches until it is empty, fails, or is someone else's."""
        target = await webhooks.target(self.db, queue.endpoint_id)
        if target is None or target.disabled:
            return
        settings = self.settings
        behind: float | None = None  # how old the last event sent was, when it was sent
        while True:
            await self._yield_to_dialing(behind)
            # The claim runs out claim_seconds after the database's now(), which is never
            # before this moment: stopping at half of it by this clock is stopping early.
            asked = trio.current_time()
            until, batch = await webhooks.claim(self.db, queue, owner=self.owner,
                                                count=settings.claim_batch_size,
                                                seconds=settings.claim_seconds)
            if until is None or not batch:
                return
            outcome = await _Batch(self, target, batch, until,
                                   asked + settings.claim_seconds / 2).send(http)
            if not outcome:
                return
            # (A database clock ahead of this one counts as no lag: the wait stays bounded.)
            behind = max((utcnow() - batch[-1].created_at).total_seconds(), 0.0)

    async def _yield_to_dialing(self, behind: float | None) -> None:
        """Before a queue's next batch: while dialing is saturated, wait until the queue
        is ``yield_to_dialing_seconds`` behind (``behind``: how old its last event sent
        was; None: nothing sent yet, the first batch goes at once) or dialing calms down.
        A saturated dialer loses far more to deliveries running beside it than their own
        CPU; this way it runs alone for a burst, and a long one holds the events back no
        longer than that."""
        if behind is not None:
            await self._while_saturated(self.settings.yield_to_dialing_seconds - behind)

    async def _pause(self) -> None:
        """Between polls: ``poll_seconds``; while dialing is saturated, until it calms
        down or ``yield_to_dialing_seconds`` have passed (the queues being sent go on as
        :meth:`_yield_to_dialing` lets them; new ones wait for this)."""
        if self.load.saturated and self.settings.yield_to_dialing_seconds:
            await self._while_saturated(self.settings.yield_to_dialing_seconds)
        else:
            await trio.sleep(self.settings.poll_seconds)

    async def _while_saturated(self, seconds: float) -> None:
        """Wait while dialing is saturated, ``seconds`` at most."""
        if seconds > 0:
            with trio.move_on_after(seconds):
                while self.load.saturated:
                    await self.load.changed()

    async def record_failure(self, target: Target, delivery: Claimed, sent: Sent) -> None:
        at = utcnow()
        retry_at = at + timedelta(seconds=retry_delay(self.settings, delivery.attempts + 1,
                                                      self.rng))
        disabled = await webhooks.failed(
            self.db, target.id, delivery.id, at=at, status_code=sent.status_code, error=sent.error,
            retry_at=retry_at, give_up_after_seconds=self.settings.give_up_after_seconds)
        log.info("webhooks.delivery_failed", endpoint_id=str(target.id),
                 delivery_id=delivery.id, type=delivery.type, attempt=delivery.attempts + 1,
                 status_code=sent.status_code, error=sent.error,
                 retry_at=retry_at.isoformat())
        if disabled:
            log.warning("webhooks.endpoint_disabled", endpoint_id=str(target.id),
                        failing_for_seconds=self.settings.give_up_after_seconds)


@attrs.define
class _Batch:
    """One claim's deliveries, sent in order; what was sent is written in groups (and
    whatever happens, before the batch lets go: a cancelled sender releases the rest)."""

    deliverer: Deliverer
    target: Target
    claimed: list[Claimed]
    until: datetime  # the claim's end, by the database's clock
    stop_at: float   # no request starts after this (trio's clock): half the claim
    _done: list[tuple[int, datetime, int]] = attrs.field(factory=list)
    _next: int = 0

    async def send(self, http: Client) -> bool:
        """True when the whole batch was delivered (the queue may have more)."""
        try:
            while self._next < len(self.claimed):
                if trio.current_time() >= self.stop_at:
                    return False
                delivery = self.claimed[self._next]
                sent = await send(http, self.target, delivery,
                                  self.deliverer.settings.timeout_seconds)
                if not sent.ok:
                    await self._flush()
                    await self.deliverer.record_failure(self.target, delivery, sent)
                    self._next = len(self.claimed)  # the claim let go with the failure
                    return False
                assert sent.status_code is not None
                self._done.append((delivery.id, utcnow(), sent.status_code))
                self._next += 1
                if len(self._done) >= 50:
                    await self._flush()
            return True
        finally:
            with trio.CancelScope(shield=True) as shield:
                shield.deadline = trio.current_time() + 5
                await self._flush()
                await webhooks.release(self.deliverer.db, self.target.id,
                                       [d.id for d in self.claimed[self._next:]],
                                       self.deliverer.owner)
                self._next = len(self.claimed)

    async def _flush(self) -> None:
        """Write what was sent, and move the queue's claim to the next one to send."""
        if self._done:
            done, self._done = self._done, []
            following = self.claimed[self._next].id if self._next < len(self.claimed) else None
            await webhooks.delivered(self.deliverer.db, self.target.id, [d[0] for d in done],
                                     [d[1] for d in done], [d[2] for d in done],
                                     next_head=following, owner=self.deliverer.owner,
                                     until=self.until)
