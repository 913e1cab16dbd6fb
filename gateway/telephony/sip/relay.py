"""A re-INVITE or UPDATE from one leg of a bridged call, relayed to the other leg and its
answer relayed back (hold, resume, codec changes, RFC 4028 session refreshes, which trunks
send on long calls).

The request's SDP (if any) and its session-timer headers go to the other leg in a request
of that leg's dialog; the other leg's final response comes back with its status, its SDP
and its session-timer headers. One relay at a time: a second re-INVITE or UPDATE meanwhile
gets 491 Request Pending (RFC 3261 §14.2), so glare resolves itself by the peers' retries.

For a re-INVITE (RFC 3261 §13, §14), the gateway is the UAS of the source leg and the UAC
of the target leg:

- 100 Trying goes back at once (the source stops retransmitting its INVITE).
- A 2xx from the target: when the source made the offer, the target's 2xx has the answer:
  the target is ACKed at once and the 2xx relayed. When the source's re-INVITE had no
  offer, the target's 2xx has one: it is relayed, and the target's ACK waits for the
  source's, which carries the answer. The relayed 2xx is retransmitted (T1 doubling to T2)
  until the source ACKs it, for up to 64·T1.
- A final >= 300 is relayed as it is (the target's transaction ACKs its own); none within
  64·T1 (Timer B): 408.

An UPDATE (RFC 3311) is a non-INVITE transaction: its final is relayed, or 408 on Timer F.
"""

from __future__ import annotations

import math

import attrs
import trio

from gateway.logs import get_logger
from gateway.telephony.sip.headers import make_response
from gateway.telephony.sip.leg import Leg
from gateway.telephony.sip.message import SipRequest, SipResponse
from gateway.telephony.sip.sdp import SDP, session_of
from gateway.telephony.sip.transaction import (
    CallTransactions,
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
    Response,
    Timeout,
)
from gateway.telephony.sip.transport import Address, Incoming, TransportError

log = get_logger(__name__)
RELAYED = ("INVITE", "UPDATE")
# Headers that travel with the relayed request and response (session timers, RFC 4028).
_REQUEST_HEADERS = ("session-expires", "x", "min-se", "supported", "k")
_RESPONSE_HEADERS = ("session-expires", "x", "require", "supported", "k")


def _copied(message: SipRequest | SipResponse, names: tuple[str, ...]
            ) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name, value in message.headers if name.lower() in names)


@attrs.define
class Relay:
    txns: CallTransactions
    source: Leg
    target: Leg
    request: SipRequest            # the source's re-INVITE or UPDATE
    source_address: Address
    contact: str                   # our Contact, for a 2xx to INVITE
    transaction: ClientTransaction | None = None
    reply: bytes | None = None     # the final sent to the source
    retransmit_at: float = math.inf
    interval: float = 0.0
    give_up_at: float = math.inf
    target_final: SipResponse | None = None
    target_ack: SipRequest | None = None
    done: bool = False

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def deadline(self) -> float:
        return min(self.retransmit_at, self.give_up_at)

    async def start(self) -> None:
        """Relay the request to the target leg (a 100 Trying to the source first, for a
        re-INVITE)."""
        target = self.target
        assert target.dialog is not None
        if self.method == "INVITE":
            await self._send(make_response(self.request, 100, "Trying").encode())
        body = session_of(self.request) or b""
        target.cseq += 1
        request = target.dialog.request(self.method, target.cseq, body=body,
                                        extra=_copied(self.request, _REQUEST_HEADERS))
        if self.method == "INVITE":
            request = attrs.evolve(request, headers=(*request.headers,
                                                     ("Contact", self.contact)))
            self.transaction = InviteClientTransaction(request, target.dialog.destination(),
                                                       target.profile.timers)
        else:
            self.transaction = NonInviteClientTransaction(
                request, target.dialog.destination(), target.profile.timers)
        await self.txns.start(self.transaction)
        log.info("sip.relay_started", method=self.method, source=self.source.name,
                 sip_call_id=self.source.call_id)

    def takes(self, event: Response | Timeout | Incoming) -> bool:
        """Is this event the relay's: its transaction's, the source's ACK or a repeated
        2xx of the target?"""
        if isinstance(event, (Response, Timeout)):
            return event.transaction is self.transaction
        message = event.message
        if isinstance(message, SipResponse):
            return self.target_ack is not None and message.call_id == self.target.call_id \
                and message.cseq == (self.target_ack.cseq[0], "INVITE")
        return message.method == "ACK" and message.call_id == self.source.call_id \
            and message.cseq[0] == self.request.cseq[0]

    def repeats(self, request: SipRequest) -> bool:
        """Is this the source's request again (a retransmission, before our final)?"""
        return request.call_id == self.source.call_id and request.method == self.method \
            and request.cseq == self.request.cseq

    async def on_repeat(self) -> None:
        """Answer a retransmitted request: our final if it went, else 100 Trying again."""
        if self.reply is not None:
            await self._send(self.reply)
        elif self.method == "INVITE":
            await self._send(make_response(self.request, 100, "Trying").encode())

    async def on_event(self, event: Response | Timeout | Incoming) -> None:
        if isinstance(event, Timeout):
            await self._final(make_response(self.request, 408, "Request Timeout"))
            self.done = True
        elif isinstance(event, Response):
            if event.response.status >= 200:
                await self._target_final(event.response)
        elif isinstance(event.message, SipResponse):  # the target repeats its 2xx
            assert self.target_ack is not None and self.target.dialog is not None
            await self._send_target_ack()
        else:  # the source's ACK of our 2xx
            self.retransmit_at = math.inf
            if self.target_final is not None and self.target_ack is None:
                self.target_ack = self._ack(session_of(event.message) or b"")
                await self._send_target_ack()
            self.done = True

    async def on_timer(self, now: float) -> None:
        if now >= self.give_up_at:
            log.warning("sip.relay_unacknowledged", method=self.method,
                        sip_call_id=self.source.call_id)
            self.done = True
        elif now >= self.retransmit_at and self.reply is not None:
            await self._send(self.reply)
            self.interval = min(self.interval * 2, self.source.profile.timers.t2)
            self.retransmit_at = now + self.interval

    async def _target_final(self, final: SipResponse) -> None:
        headers = _copied(final, _RESPONSE_HEADERS)
        body = session_of(final)
        if body is not None:
            headers = (*headers, ("Content-Type", SDP))
        if self.method == "INVITE" and final.status < 300:
            headers = (*headers, ("Contact", self.contact))
        response = attrs.evolve(make_response(self.request, final.status, final.reason,
                                              extra=headers), body=body or b"")
        await self._final(response)
        if self.method != "INVITE" or final.status >= 300:
            self.done = True
            return
        self.target_final = final
        if session_of(self.request) is not None:  # the source offered: the target answered
            self.target_ack = self._ack(b"")
            await self._send_target_ack()
        timers = self.source.profile.timers
        now = trio.current_time()
        self.interval = timers.t1
        self.retransmit_at = now + timers.t1
        self.give_up_at = now + timers.timeout

    def _ack(self, body: bytes) -> SipRequest:
        assert self.target.dialog is not None and self.transaction is not None
        return self.target.dialog.request("ACK", self.transaction.request.cseq[0], body=body)

    async def _send_target_ack(self) -> None:
        assert self.target_ack is not None and self.target.dialog is not None
        await self.txns.transport.send(self.target_ack, self.target.dialog.destination())

    async def _final(self, response: SipResponse) -> None:
        try:
            data = response.encode()
        except ValueError as exc:  # a header the target sent cannot go out as it is
            log.debug("sip.relay_unsendable", error=str(exc))
            data = make_response(self.request, 500, "Server Internal Error").encode()
        self.reply = data
        self.txns.transport.remember_response(self.request, data, self.source_address)
        await self._send(data)

    async def _send(self, data: bytes) -> None:
        try:
            await self.txns.transport.send(data, self.source_address)
        except TransportError as exc:  # lost: the source retransmits its request
            log.debug("sip.reply_failed", error=str(exc))
