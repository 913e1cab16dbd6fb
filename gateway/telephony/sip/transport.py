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

Errors: a datagram that does not parse is logged (``sip.malformed``) and dropped; a full
call inbox drops the datagram (UDP peers retransmit); a socket error while reading is
logged and reading goes on. :meth:`SipTransport.send` raises :class:`TransportError`. When
:meth:`serve` ends (cancelled at shutdown), every call inbox is closed, so calls still
waiting see :class:`TransportError` instead of waiting for their timers.
"""

from __future__ import annotations

import attrs
import trio

from gateway.logs import get_logger
from gateway.telephony.sip.headers import make_response, split_host_port, top_via
from gateway.telephony.sip.message import (MAX_DATAGRAM, SipParseError, SipRequest,
                                           SipResponse, parse)

log = get_logger(__name__)
Address = tuple[str, int]
INBOX_SIZE = 64
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"


class TransportError(Exception):
    """The message cannot be sent, or the transport has stopped."""


@attrs.frozen
class Incoming:
    message: SipRequest | SipResponse
    source: Address


class CallInbox:
    """One call's mailbox. Use as a context manager: leaving it unregisters every route."""

    def __init__(self, transport: SipTransport, call_id: str) -> None:
        self._transport = transport
        self.call_id = call_id
        self._send, self._receive = trio.open_memory_channel[Incoming](INBOX_SIZE)
        self._keys: set[tuple] = set()

    def watch_transaction(self, branch: str, method: str) -> None:
        self._route(("txn", branch, method.upper()))

    def forget_transaction(self, branch: str, method: str) -> None:
        key = ("txn", branch, method.upper())
        self._keys.discard(key)
        self._unroute(key)

    def _unroute(self, key: tuple) -> None:
        if self._transport._routes.get(key) is self._send:
            del self._transport._routes[key]

    def _route(self, key: tuple) -> None:
        if key in self._transport._routes:
            raise ValueError(f"route {key!r} is already taken")
        self._transport._routes[key] = self._send
        self._keys.add(key)

    async def receive(self) -> Incoming:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportError("the SIP transport has stopped") from None

    def __enter__(self) -> CallInbox:
        if self._transport.closed:
            raise TransportError("the SIP transport is not running")
        self._route(("call", self.call_id))
        return self

    def __exit__(self, *exc_info) -> None:
        for key in self._keys:
            self._unroute(key)
        self._keys.clear()
        self._send.close()
        self._receive.close()


class SipTransport:
    def __init__(self, sock: trio.socket.SocketType, local: Address) -> None:
        self._sock = sock
        self.local_host, self.local_port = local
        self._routes: dict[tuple, trio.MemorySendChannel[Incoming]] = {}
        self._lingering: dict[str, tuple[bytes, Address, float]] = {}
        self._answered: dict[tuple, tuple[bytes, Address, float]] = {}
        self._send_lock = trio.Lock()
        self._resolved: dict[Address, Address] = {}
        self.closed = False

    def open_inbox(self, call_id: str) -> CallInbox:
        return CallInbox(self, call_id)

    async def send(self, message: SipRequest | SipResponse | bytes, dest: Address) -> None:
        data = message if isinstance(message, bytes) else message.encode()
        if self.closed:
            raise TransportError("the SIP transport has stopped")
        try:
            async with self._send_lock:
                await self._sock.sendto(data, dest)
        except OSError as exc:
            raise TransportError(f"cannot send to {dest[0]}:{dest[1]}: {exc}") from exc

    async def resolve(self, host: str, port: int | None) -> Address:
        """An IPv4 address for ``host`` (numeric, or looked up once and cached)."""
        key = (host, port or 5060)
        if key not in self._resolved:
            try:
                infos = await trio.socket.getaddrinfo(host, key[1], trio.socket.AF_INET,
                                                      trio.socket.SOCK_DGRAM)
            except OSError as exc:
                raise TransportError(f"cannot resolve {host!r}: {exc}") from exc
            self._resolved[key] = infos[0][4][:2]
        return self._resolved[key]

    async def resolve_uri_host(self, hostport: str) -> Address:
        return await self.resolve(*split_host_port(hostport))

    def linger_invite(self, branch: str, ack: bytes, dest: Address, seconds: float) -> None:
        """Timer D: for ``seconds``, ACK retransmissions of this INVITE's non-2xx final."""
        self._lingering[branch] = (ack, dest, trio.current_time() + seconds)
        _purge(self._lingering)

    def remember_response(self, request: SipRequest, response: SipResponse, dest: Address,
                          seconds: float = 32.0) -> None:
        """Answer retransmissions of ``request`` with ``response`` for ``seconds``."""
        key = (request.call_id, top_via(request).branch, request.method)
        self._answered[key] = (response.encode(), dest, trio.current_time() + seconds)
        _purge(self._answered)

    async def serve(self) -> None:
        """Read datagrams until cancelled; never raises for what a peer sends."""
        try:
            while True:
                try:
                    data, source = await self._sock.recvfrom(MAX_DATAGRAM + 1)
                except OSError as exc:  # e.g. ICMP errors reported on the socket
                    log.warning("sip.socket_error", error=str(exc))
                    continue
                reply = self.dispatch(data, source[:2])
                if reply is not None:
                    try:
                        await self.send(*reply)
                    except TransportError as exc:
                        log.warning("sip.reply_failed", error=str(exc))
        finally:
            self.closed = True
            for channel in list(self._routes.values()):
                channel.close()
            self._routes.clear()

    def dispatch(self, data: bytes, source: Address) -> tuple[bytes, Address] | None:
        """Route one datagram; returns a datagram to send back, if any."""
        try:
            message = parse(data)
            via = top_via(message)
            _, method = message.cseq
        except SipParseError as exc:
            log.warning("sip.malformed", source=f"{source[0]}:{source[1]}", size=len(data),
                        error=str(exc))
            return None
        if isinstance(message, SipResponse):
            return self._dispatch_response(message, via.branch, method, source)
        return self._dispatch_request(message, via.branch, source)

    def _dispatch_response(self, response: SipResponse, branch: str, method: str,
                           source: Address) -> tuple[bytes, Address] | None:
        channel = self._routes.get(("txn", branch, method))
        if channel is None and method == "INVITE" and response.status < 300:
            channel = self._routes.get(("call", response.call_id))
        if channel is not None:
            self._deliver(channel, Incoming(response, source))
            return None
        lingering = self._lingering.get(branch)
        if method == "INVITE" and response.status >= 300 and lingering is not None \
                and lingering[2] > trio.current_time():
            return lingering[0], lingering[1]
        log.debug("sip.stray_response", status=response.status, call_id=response.call_id)
        return None

    def _dispatch_request(self, request: SipRequest, branch: str,
                          source: Address) -> tuple[bytes, Address] | None:
        answered = self._answered.get((request.call_id, branch, request.method))
        if answered is not None and answered[2] > trio.current_time():
            return answered[0], source
        channel = self._routes.get(("call", request.call_id))
        if channel is not None:
            self._deliver(channel, Incoming(request, source))
            return None
        if request.method == "ACK":
            return None
        if request.method == "OPTIONS":
            response = make_response(request, 200, "OK", extra=(("Allow", ALLOW),))
        elif request.method == "INVITE":
            response = make_response(request, 603, "Decline")
        else:
            response = make_response(request, 481, "Call/Transaction Does Not Exist")
        return response.encode(), source

    def _deliver(self, channel: trio.MemorySendChannel[Incoming], item: Incoming) -> None:
        try:
            channel.send_nowait(item)
        except trio.WouldBlock:
            log.warning("sip.inbox_full", call_id=item.message.call_id)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the call ended between routing and delivery


def _purge(table: dict, now: float | None = None) -> None:
    if len(table) < 64:
        return
    now = trio.current_time() if now is None else now
    for key in [key for key, entry in table.items() if entry[2] <= now]:
        del table[key]

