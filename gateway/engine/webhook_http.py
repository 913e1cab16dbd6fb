"""The webhook sender's HTTP/1.1 client: h11 over trio streams, connections kept alive.

Webhook delivery is one small POST after another to the same few receivers, in the same
process that dials. httpx (with httpcore under it) spent about 1 ms of CPU per request
on its pool, models and async backend layers, four fifths of delivery's cost, which came
straight out of the dialing it shares the event loop with; h11 itself, the protocol state
machine httpcore also uses, was under a tenth. This client is only what delivery needs:
POST with a body, the status of the answer, keep-alive per origin, TLS, a deadline for the
whole exchange, no redirects, no proxies, no cookies, and never an address in the denied
networks (``deny``): the receiver's name is resolved at each new connection and only its
other addresses are connected to, so a name that resolves into a denied network later
(DNS rebinding) is caught too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import attrs
import h11
import trio

# The most of a receiver's answer read to keep its connection for the next delivery; a
# longer answer is cut off with its connection.
MAX_ANSWER_BYTES = 64 * 1024
READ_BYTES = 16 * 1024
# A kept-alive connection unused this long is not reused (receivers close theirs after a
# few seconds: hypercorn after 5, nginx after 75).
IDLE_SECONDS = 4.0


class HttpError(Exception):
    """The exchange failed before an answer: the message says how (for the delivery log)."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def denied(address: str, networks: Iterable[Network]) -> bool:
    """Whether the IP address ``address`` lies in one of ``networks``; an IPv4-mapped IPv6
    address (``::ffff:169.254.169.254``) is checked as the IPv4 address it maps."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a link-local's %scope
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def literal_address(host: str) -> str | None:
    """``host`` if it is an IP address (not a name), else None."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return host


@attrs.frozen
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def split_url(url: str) -> tuple[Origin, str]:
    """The origin and the request target (path and query) of an http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise HttpError(f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError("invalid URL: not an absolute http(s) URL")
    port = port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Origin(parts.scheme, parts.hostname, port), target


@attrs.define
class _Connection:
    stream: trio.abc.Stream
    protocol: h11.Connection = attrs.field(factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0
    reused: bool = False  # it carried an exchange before: the receiver may have closed it

    async def exchange(self, request: h11.Request, body: bytes) -> int:
        """Send the request, read the answer; its status. Raises HttpError, OSError,
        trio errors or h11 errors when the exchange breaks."""
        send = self.protocol.send
        await self.stream.send_all(b"".join(
            bytes(send(event) or b"")
            for event in (request, h11.Data(data=body), h11.EndOfMessage())))
        status, read = 0, 0
        while True:
            event = self.protocol.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(READ_BYTES)
                self.protocol.receive_data(bytes(data))  # b"" is the end of the stream
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                read += len(event.data)
                if read > MAX_ANSWER_BYTES:
                    raise HttpError(f"answer longer than {MAX_ANSWER_BYTES} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return status
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpError("connection closed before an answer")

    @property
    def reusable(self) -> bool:
        return (self.protocol.our_state is h11.DONE
                and self.protocol.their_state is h11.DONE)


@attrs.define
class Client:
    """Keep-alive connections per origin, at most ``max_idle`` idle per origin."""

    max_idle: int = 8
    user_agent: str = "gateway"
    deny: tuple[Network, ...] = ()
    _idle: dict[Origin, list[_Connection]] = attrs.field(factory=dict)
    _tls: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, headers: Sequence[tuple[str, str]], *,
                   within: float) -> int:
        """POST ``body`` to ``url``; the answer's status. Raises HttpError (with why) when
        there is no answer within ``within`` seconds, or it cannot be had."""
        origin, target = split_url(url)
        request = h11.Request(method="POST", target=target, headers=[
            ("host", origin.host_header), ("user-agent", self.user_agent),
            ("content-length", str(len(body))), *headers])
        try:
            with trio.fail_after(within):
                connection = await self._take(origin)
                if connection is not None:
                    try:
                        return await self._exchange(origin, connection, request, body)
                    except _Stale:
                        pass  # the receiver closed it while idle: once more, afresh
                connection = _Connection(await self._connect(origin))
                return await self._exchange(origin, connection, request, body)
        except trio.TooSlowError:
            raise HttpError("timed out") from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError,
                h11.ProtocolError, ssl.SSLError) as exc:
            raise HttpError(f"{type(exc).__name__}: {exc}") from None

    async def _exchange(self, origin: Origin, connection: _Connection, request: h11.Request,
                        body: bytes) -> int:
        try:
            status = await connection.exchange(request, body)
        except BaseException as exc:
            await trio.aclose_forcefully(connection.stream)
            if connection.reused and isinstance(exc, (OSError, trio.BrokenResourceError,
                                                      h11.ProtocolError, HttpError)):
                raise _Stale from exc
            raise
        if connection.reusable:
            connection.protocol.start_next_cycle()
            connection.idle_since = trio.current_time()
            connection.reused = True
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.max_idle:
                idle.append(connection)
                return status
        await trio.aclose_forcefully(connection.stream)
        return status

    async def _take(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if trio.current_time() - connection.idle_since < IDLE_SECONDS:
                return connection
            await trio.aclose_forcefully(connection.stream)
        return None

    async def _addresses(self, origin: Origin) -> list[str]:
        """The receiver's addresses outside the denied networks, in the resolver's order.
        Raises HttpError naming the addresses when every one is denied."""
        infos = await trio.socket.getaddrinfo(origin.host, origin.port,
                                              type=trio.socket.SOCK_STREAM)
        resolved = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [address for address in resolved if not denied(address, self.deny)]
        if not allowed:
            raise HttpError(f"{origin.host} is at {', '.join(resolved)}, in the networks "
                            "webhooks are not sent to (webhooks.deny_networks)")
        return allowed

    async def _connect(self, origin: Origin) -> trio.abc.Stream:
        *others, last = await self._addresses(origin)
        for address in others:  # each in turn; the last one's failure is the error
            with contextlib.suppress(OSError):
                tcp = await trio.open_tcp_stream(address, origin.port)
                break
        else:
            tcp = await trio.open_tcp_stream(last, origin.port)
        if origin.scheme == "http":
            return tcp
        if self._tls is None:
            self._tls = ssl.create_default_context()
        tls = trio.SSLStream(tcp, self._tls, server_hostname=origin.host,
                             https_compatible=True)
        await tls.do_handshake()
        return tls

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await trio.aclose_forcefully(connection.stream)


class _Stale(Exception):
    """A kept-alive connection broke before its answer began: the receiver closed it."""
