"""Client transactions over UDP (RFC 3261 §17.1) and the loop that drives a call's set.

Transactions are state machines without tasks of their own: :class:`CallTransactions`
waits on the call's inbox until the earliest transaction timer, fires the timers
(retransmissions, timeouts) and hands the call what it must act on. So a call is one task,
and cancelling it leaves every transaction in a consistent state that its clean-up (CANCEL
or BYE at shutdown) can go on driving.

- INVITE (§17.1.1): Timer A retransmits from T1, doubling, until a response; Timer B
  (64·T1) ends a transaction that got no response at all (:class:`Timeout` event). No
  timer after a provisional: the call's ring timeout (CANCEL) bounds that wait. A non-2xx
  final is ACKed here (same branch) and Timer D is left to the transport's table; a 2xx
  ends the transaction and the call (the dialog) ACKs it, retransmissions included.
- non-INVITE (§17.1.2, BYE and CANCEL): Timer E retransmits from T1, doubling up to T2
  (every T2 once a provisional came); Timer F (64·T1) gives up. Timer K is not needed:
  once the route is forgotten the transport drops late retransmissions of the final.

Errors: :class:`~gateway.telephony.sip.transport.TransportError` from sending propagates
to the call, which treats it like a timeout.
"""

from __future__ import annotations

import math

import attrs
import trio

from gateway.telephony.sip.headers import top_via
from gateway.telephony.sip.message import SipRequest, SipResponse
from gateway.telephony.sip.transport import Address, CallInbox, Incoming, SipTransport


@attrs.frozen
class Timers:
    t1: float = 0.5
    t2: float = 4.0

    @property
    def timeout(self) -> float:
        """Timers B and F: 64·T1."""
        return 64 * self.t1

    @property
    def linger(self) -> float:
        """Timer D: at least 32 s over UDP."""
        return max(32.0, self.timeout)


class ClientTransaction:
    method = ""

    def __init__(self, request: SipRequest, dest: Address, timers: Timers) -> None:
        self.request = request
        self.dest = dest
        self.timers = timers
        self.branch = top_via(request).branch
        self.provisional: SipResponse | None = None
        self.final: SipResponse | None = None
        self.timed_out = False
        self._data = request.encode()
        self._interval = timers.t1
        self._retransmit_at = math.inf
        self._timeout_at = math.inf

    @property
    def done(self) -> bool:
        return self.final is not None or self.timed_out

    @property
    def deadline(self) -> float:
        return math.inf if self.done else min(self._retransmit_at, self._timeout_at)

    async def start(self, transport: SipTransport) -> None:
        now = trio.current_time()
        self._retransmit_at = now + self.timers.t1
        self._timeout_at = now + self.timers.timeout
        await transport.send(self._data, self.dest)

    async def on_timer(self, transport: SipTransport, now: float) -> None:
        if now >= self._timeout_at:
            self.timed_out = True
        elif now >= self._retransmit_at:
            await transport.send(self._data, self.dest)
            self._interval = self._next_interval()
            self._retransmit_at = now + self._interval

    def _next_interval(self) -> float:
        raise NotImplementedError

    async def on_response(self, transport: SipTransport, response: SipResponse) -> bool:
        """Take a response; True if the call should see it (False: a retransmission)."""
        if self.done:
            return False
        if response.status < 200:
            first = self.provisional is None
            self.provisional = response
            return first or response.status > 100
        self.final = response
        return True


class InviteClientTransaction(ClientTransaction):
    method = "INVITE"

    def _next_interval(self) -> float:
        return self._interval * 2  # Timer A: no cap

    async def on_response(self, transport: SipTransport, response: SipResponse) -> bool:
        if not self.done and response.status < 200:
            self._retransmit_at = math.inf  # proceeding: no retransmission, no Timer B
            self._timeout_at = math.inf
        seen = await super().on_response(transport, response)
        if seen and response.status >= 300:
            ack = ack_for_non_2xx(self.request, response).encode()
            await transport.send(ack, self.dest)
            transport.linger_invite(self.branch, ack, self.dest, self.timers.linger)
        return seen


class NonInviteClientTransaction(ClientTransaction):
    method = "NON-INVITE"

    def _next_interval(self) -> float:
        if self.provisional is not None:
            return self.timers.t2
        return min(self._interval * 2, self.timers.t2)


def ack_for_non_2xx(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK inside the INVITE transaction (§17.1.1.3): same Request-URI, top Via,
    From, Call-ID, CSeq number and Route; the To of the response."""
    keep = ("call-id", "i", "from", "f", "route", "max-forwards")
    headers = [("Via", invite.get("via") or "")]
    headers += [(name, value) for name, value in invite.headers if name.lower() in keep]
    headers += [("To", response.get("to") or ""), ("CSeq", f"{invite.cseq[0]} ACK")]
    return SipRequest(tuple(headers), b"", method="ACK", uri=invite.uri)


@attrs.frozen
class Response:
    transaction: ClientTransaction
    response: SipResponse


@attrs.frozen
class Timeout:
    transaction: ClientTransaction


Event = Response | Timeout | Incoming


class CallTransactions:
    """A call's live client transactions, multiplexed on its inbox."""

    def __init__(self, transport: SipTransport, inbox: CallInbox, timers: Timers) -> None:
        self.transport = transport
        self.inbox = inbox
        self.timers = timers
        self._live: dict[tuple[str, str], ClientTransaction] = {}

    async def start(self, transaction: ClientTransaction) -> ClientTransaction:
        key = (transaction.branch, transaction.request.method)
        self.inbox.watch_transaction(*key, transaction.dest)  # its responses: from dest only
        self._live[key] = transaction
        try:
            await transaction.start(self.transport)
        except BaseException:
            self._end(transaction)
            raise
        return transaction

    def _end(self, transaction: ClientTransaction) -> None:
        key = (transaction.branch, transaction.request.method)
        if self._live.pop(key, None) is not None:
            self.inbox.forget_transaction(*key)

    async def next(self, until: float = math.inf) -> Event | None:
        """The next event for the call, or None when ``until`` comes first.

        Cancellation: safe at any point; timers are deadlines, so the next call picks up
        where this one stopped."""
        while True:
            now = trio.current_time()
            for transaction in list(self._live.values()):
                if transaction.deadline <= now:
                    await transaction.on_timer(self.transport, now)
                    if transaction.timed_out:
                        self._end(transaction)
                        return Timeout(transaction)
            if now >= until:
                return None
            deadline = min([until, *(t.deadline for t in self._live.values())])
            incoming = None
            with trio.move_on_at(deadline):
                incoming = await self.inbox.receive()
            if incoming is not None:
                event = await self._route(incoming)
                if event is not None:
                    return event

    async def _route(self, incoming: Incoming) -> Event | None:
        message = incoming.message
        if isinstance(message, SipResponse):
            key = (top_via(message).branch, message.cseq[1])
            transaction = self._live.get(key)
            if transaction is not None:
                if not await transaction.on_response(self.transport, message):
                    return None
                if transaction.done:
                    self._end(transaction)
                return Response(transaction, message)
        return incoming  # a request, or a 2xx retransmission for the dialog
