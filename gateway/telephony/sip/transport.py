"""The UDP transport: one socket, one reader task, datagrams routed to their call.

Routing (RFC 3261 §17.1.3, §12.2): a response goes to the call that registered its client
transaction, by top Via branch + CSeq method; a 2xx to INVITE whose transaction is over (a
retransmission) and every request go to the call that owns the Call-ID. What is left:

- a retransmitted non-2xx final of a finished INVITE transaction is ACKed again from the
  Timer D table (:meth:`SipTransport.linger_invite`);
- a retransmitted request we already answered gets the same answer again
  (:meth:`SipTransport.remember_response`, the server side's Timer J);
- other requests get a stateless answer (OPTIONS 200, INVITE 603, else 481); stray
  responses are dropped.

What is accepted from where (anyone can send a UDP datagram with any source port, so the
transport only takes from a peer what that peer may legitimately send):

- A response is accepted only from the address its request was sent to: the proxy for
  INVITE and CANCEL (and for retransmitted 2xx, which come back along the INVITE's Via
  path), the dialog's next hop for BYE. The same response from anywhere else is dropped
  (``unexpected_source``), so a forged 486 or 200 from a third party cannot end or answer
  a call, nor feed it a digest challenge.
- A request for a live call (the far end's BYE) is accepted only from a host that
  dialog talks to: where its INVITE went (the proxy, or the agent), or the dialog's next
  hop (its first route, else its remote target). Hosts, not ports: RFC 3261 does not
  make a UA send requests from the port it listens on. From any other host it is
  dropped without an answer (no 481 to a probe).
- Requests for no live call get the stateless answers above, whoever sends them (they
  are no larger than the request, and reveal nothing about live calls).

Handling a datagram is total: what does not parse is counted ``malformed``; a reply that
cannot be built is counted ``unsendable``; every other drop has its counter too (see
:class:`TransportStatistics`), and is logged at debug level with its source. Nothing a
peer sends raises out of :meth:`SipTransport.dispatch` or :meth:`SipTransport.serve`; a
bug met on the way is logged at error level, counted in ``errors`` and the datagram
dropped. State keyed by what peers send is bounded: the Timer D and answered-request
tables hold at most ``MAX_TABLE`` entries each, with expiry (:mod:`.bounded`); a call's
inbox holds ``INBOX_SIZE`` messages, and a full inbox drops the datagram (UDP peers
retransmit); names are only resolved for the proxy, at start-up (:func:`resolve`).

Cost: the socket is a plain non-blocking one. A send is one ``sendto`` when the socket
takes it (UDP nearly always does), and waits for it to be writable only when it does not;
the reader waits for the socket to be readable, then reads what is queued (up to
``READ_BATCH`` datagrams) before it yields again. A trio socket would add two passes of the
scheduler per datagram each way, a third of the SIP stack's CPU at a few hundred calls a
second. Addresses given to :meth:`SipTransport.send` are numeric (the proxy is resolved at
start-up, an agent's name when its call starts, and a dialog next hop that is a name falls
back to the INVITE's peer), so a send never looks a name up.

Errors: a socket error while reading is logged and reading goes on.
:meth:`SipTransport.send` raises :class:`TransportError`. When :meth:`serve` ends
(cancelled at shutdown), every call inbox is closed, so calls still waiting see
:class:`TransportError` instead of waiting for their timers.
"""

from __future__ import annotations

import collections
import socket

import attrs
import trio

from gateway.logs import get_logger
from gateway.telephony.sip.bounded import ExpiringTable
from gateway.telephony.sip.headers import make_response, top_via
from gateway.telephony.sip.message import (
    MAX_DATAGRAM,
    SipParseError,
    SipRequest,
    SipResponse,
    parse,
)
from gateway.telephony.sip.pacing import Pacer

log = get_logger(__name__)
Address = tuple[str, int]
INBOX_SIZE = 64
MAX_TABLE = 4096
HANGUP_RATE, HANGUP_BURST = 1000.0, 100  # clean-ups of cancelled calls per second
READ_BATCH = 64  # datagrams read per wake-up of the reader before it yields
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE"


class TransportError(Exception):
    """The message cannot be sent, or the transport has stopped."""


@attrs.frozen
class TransportStatistics:
    """What the transport did with the datagrams it read (as trio's ``statistics()``).
    ``received == delivered + replied + dropped``."""

    received: int = 0           # datagrams read
    delivered: int = 0          # handed to a call
    replied: int = 0            # answered here: stateless, repeated answer, Timer D ACK
    malformed: int = 0          # not a SIP message this UA can read
    unexpected_source: int = 0  # a response or call request from an address that may not
    stray: int = 0              # for no live transaction or call (late retransmissions)
    inbox_full: int = 0         # the call had too many messages waiting
    unsendable: int = 0         # the reply could not be built
    errors: int = 0             # a bug met while handling it (logged at error level)

    @property
    def dropped(self) -> int:
        return (self.malformed + self.unexpected_source + self.stray + self.inbox_full
                + self.unsendable + self.errors)


@attrs.frozen
class Incoming:
    message: SipRequest | SipResponse
    source: Address


class CallInbox:
    """One call's mailbox. Use as a context manager: leaving it unregisters every route.

    A call may hold several dialogs (a bridged call: the contact's and the agent's), each
    with its own Call-ID: :meth:`add_call` routes another one here. ``peer`` is where that
    Call-ID's INVITE goes (the proxy, the agent): the only source of the 2xx
    retransmissions routed here by Call-ID, and the first host its requests may come from."""

    def __init__(self, transport: SipTransport, call_id: str, peer: Address) -> None:
        self._transport = transport
        self.call_id = call_id
        self.peer = peer
        self._request_hosts: dict[str, set[str]] = {call_id: {peer[0]}}
        self._send, self._receive = trio.open_memory_channel[Incoming](INBOX_SIZE)
        self._keys: set[tuple] = set()

    @property
    def request_hosts(self) -> set[str]:
        """The hosts requests of the first Call-ID may come from."""
        return self._request_hosts[self.call_id]

    def hosts_for(self, call_id: str) -> set[str]:
        return self._request_hosts.get(call_id, set())

    def add_call(self, call_id: str, peer: Address) -> None:
        """Route a second dialog's Call-ID here too (its INVITE goes to ``peer``)."""
        self._route(("call", call_id), peer)
        self._request_hosts[call_id] = {peer[0]}

    def watch_transaction(self, branch: str, method: str, peer: Address) -> None:
        """Route the responses of a client transaction sent to ``peer`` here."""
        self._route(("txn", branch, method.upper()), peer)

    def forget_transaction(self, branch: str, method: str) -> None:
        key = ("txn", branch, method.upper())
        self._keys.discard(key)
        self._unroute(key)

    def accept_requests_from(self, host: str, call_id: str | None = None) -> None:
        """Let requests for this call (for ``call_id``: that dialog) come from ``host``
        too (the dialog's next hop)."""
        self._request_hosts.setdefault(call_id or self.call_id, set()).add(host)

    def _unroute(self, key: tuple) -> None:
        route = self._transport._routes.get(key)
        if route is not None and route[0] is self:
            del self._transport._routes[key]

    def _route(self, key: tuple, peer: Address) -> None:
        if key in self._transport._routes:
            raise ValueError(f"route {key!r} is already taken")
        self._transport._routes[key] = (self, peer)
        self._keys.add(key)

    async def receive(self) -> Incoming:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportError("the SIP transport has stopped") from None

    def __enter__(self) -> CallInbox:
        if self._transport.closed:
            raise TransportError("the SIP transport is not running")
        self._route(("call", self.call_id), self.peer)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for key in self._keys:
            self._unroute(key)
        self._keys.clear()
        self._send.close()
        self._receive.close()


async def resolve(host: str, port: int | None) -> Address:
    """An IPv4 address for ``host`` (numeric, or looked up): for the proxy, at start-up."""
    try:
        infos = await trio.socket.getaddrinfo(host, port or 5060, trio.socket.AF_INET,
                                              trio.socket.SOCK_DGRAM)
    except OSError as exc:
        raise TransportError(f"cannot resolve {host!r}: {exc}") from exc
    address = infos[0][4]  # AF_INET: (host, port)
    return str(address[0]), int(address[1])


class SipTransport:
    def __init__(self, sock: socket.socket | None, local: Address, proxy: Address) -> None:
        """``sock``: bound and non-blocking (None for tests that only dispatch)."""
        self._sock = sock
        self.local_host, self.local_port = local
        self.proxy = proxy
        self._routes: dict[tuple, tuple[CallInbox, Address]] = {}
        self._lingering: ExpiringTable[str, tuple[bytes, Address]] = ExpiringTable(MAX_TABLE)
        self._answered: ExpiringTable[tuple, tuple[bytes, Address]] = ExpiringTable(MAX_TABLE)
        self._counts: collections.Counter[str] = collections.Counter()
        self._send_lock = trio.Lock()
        # Calls cancelled together end at this pace (see .pacing).
        self.hangups = Pacer(HANGUP_RATE, HANGUP_BURST)
        self.closed = False

    def statistics(self) -> TransportStatistics:
        return TransportStatistics(**self._counts)

    def open_inbox(self, call_id: str) -> CallInbox:
        return CallInbox(self, call_id, self.proxy)

    async def send(self, message: SipRequest | SipResponse | bytes, dest: Address) -> None:
        try:
            data = message if isinstance(message, bytes) else message.encode()
        except ValueError as exc:
            raise TransportError(f"cannot encode the message: {exc}") from exc
        if self.closed:
            raise TransportError("the SIP transport has stopped")
        sock = self._sock
        assert sock is not None, "a transport without a socket cannot send"
        try:
            try:
                sock.sendto(data, dest)
                return
            except BlockingIOError:
                pass
            async with self._send_lock:  # one task at a time may wait for writability
                while True:
                    await trio.lowlevel.wait_writable(sock)
                    try:
                        sock.sendto(data, dest)
                        return
                    except BlockingIOError:
                        continue
        except OSError as exc:
            raise TransportError(f"cannot send to {dest[0]}:{dest[1]}: {exc}") from exc

    def linger_invite(self, branch: str, ack: bytes, dest: Address, seconds: float) -> None:
        """Timer D: for ``seconds``, ACK retransmissions of this INVITE's non-2xx final."""
        now = trio.current_time()
        self._lingering.put(branch, (ack, dest), now + seconds, now)

    def remember_response(self, request: SipRequest, response: SipResponse | bytes,
                          dest: Address, seconds: float = 32.0) -> None:
        """Answer retransmissions of ``request`` from ``dest`` with ``response`` for
        ``seconds``. Raises ``ValueError`` if the response cannot be encoded."""
        data = response if isinstance(response, bytes) else response.encode()
        now = trio.current_time()
        key = (request.call_id, top_via(request).branch, request.method)
        self._answered.put(key, (data, dest), now + seconds, now)

    async def serve(self) -> None:
        """Read datagrams until cancelled; never raises for what a peer sends."""
        sock = self._sock
        assert sock is not None, "a transport without a socket cannot serve"
        try:
            while True:
                await trio.lowlevel.wait_readable(sock)
                for _ in range(READ_BATCH):
                    try:
                        data, source = sock.recvfrom(MAX_DATAGRAM + 1)
                    except BlockingIOError:
                        break
                    except OSError as exc:  # e.g. ICMP errors reported on the socket
                        log.warning("sip.socket_error", error=str(exc))
                        continue
                    reply = self.dispatch(data, source[:2])
                    if reply is not None:
                        try:
                            await self.send(*reply)
                        except TransportError as exc:
                            log.debug("sip.reply_failed", error=str(exc))
        finally:
            self.closed = True
            for inbox, _ in list(self._routes.values()):
                inbox._send.close()
            self._routes.clear()

    def dispatch(self, data: bytes, source: Address) -> tuple[bytes, Address] | None:
        """Route one datagram; returns a datagram to send back, if any. Never raises."""
        self._counts["received"] += 1
        try:
            message = parse(data)
            branch = top_via(message).branch
            method = message.cseq[1]
        except SipParseError as exc:
            self._drop("malformed", source, size=len(data), error=str(exc))
            return None
        try:
            if isinstance(message, SipResponse):
                return self._dispatch_response(message, branch, method, source)
            return self._dispatch_request(message, branch, source)
        except Exception as exc:  # a bug: it must not end the reader (and every call)
            self._counts["errors"] += 1
            log.error("sip.dispatch_failed", source=_show(source), exc_info=exc)
            return None

    def _drop(self, reason: str, source: Address, **details: object) -> None:
        self._counts[reason] += 1
        log.debug(f"sip.{reason}", source=_show(source), **details)

    def _dispatch_response(self, response: SipResponse, branch: str, method: str,
                           source: Address) -> tuple[bytes, Address] | None:
        route = self._routes.get(("txn", branch, method))
        if route is None and method == "INVITE" and response.status < 300:
            route = self._routes.get(("call", response.call_id))
        if route is not None:
            if source != route[1]:
                self._drop("unexpected_source", source, status=response.status,
                           call_id=response.call_id)
                return None
            self._deliver(route[0], Incoming(response, source))
            return None
        if method == "INVITE" and response.status >= 300:
            lingering = self._lingering.get(branch, trio.current_time())
            if lingering is not None:
                if source != lingering[1]:
                    self._drop("unexpected_source", source, status=response.status,
                               call_id=response.call_id)
                    return None
                self._counts["replied"] += 1
                return lingering
        self._drop("stray", source, status=response.status, call_id=response.call_id)
        return None

    def _dispatch_request(self, request: SipRequest, branch: str,
                          source: Address) -> tuple[bytes, Address] | None:
        answered = self._answered.get((request.call_id, branch, request.method),
                                      trio.current_time())
        if answered is not None and answered[1] == source:
            self._counts["replied"] += 1
            return answered
        route = self._routes.get(("call", request.call_id))
        if route is not None:
            if source[0] not in route[0].hosts_for(request.call_id):
                self._drop("unexpected_source", source, method=request.method,
                           call_id=request.call_id)
                return None
            self._deliver(route[0], Incoming(request, source))
            return None
        if request.method == "ACK":
            self._drop("stray", source, method="ACK", call_id=request.call_id)
            return None
        try:
            if request.method == "OPTIONS":
                response = make_response(request, 200, "OK", extra=(("Allow", ALLOW),))
            elif request.method == "INVITE":
                response = make_response(request, 603, "Decline")
            else:
                response = make_response(request, 481, "Call/Transaction Does Not Exist")
            data = response.encode()
        except ValueError as exc:  # SipParseError included
            self._drop("unsendable", source, method=request.method, error=str(exc))
            return None
        self._counts["replied"] += 1
        return data, source

    def _deliver(self, inbox: CallInbox, item: Incoming) -> None:
        try:
            inbox._send.send_nowait(item)
        except trio.WouldBlock:
            self._drop("inbox_full", item.source, call_id=inbox.call_id)
            return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The call ended between routing and delivery.
            self._drop("stray", item.source, call_id=inbox.call_id)
            return
        self._counts["delivered"] += 1


def _show(address: Address) -> str:
    return f"{address[0]}:{address[1]}"
