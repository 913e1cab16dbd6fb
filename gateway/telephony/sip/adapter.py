"""The SIP adapter: :meth:`SipAdapter.run` owns the UDP socket, :meth:`SipAdapter.dial`
places calls through it.

Start it before anything dials and stop it after every call has ended (its reader must
outlive the calls' clean-up: a BYE or CANCEL at shutdown needs its response read);
:func:`gateway.telephony.open.open_adapter` does both::

    async with open_adapter(settings.telephony) as adapter:
        ...  # everything that dials, in a nursery of its own

Errors: the constructor raises :class:`~gateway.config.ConfigError` for an unusable
``proxy`` setting; ``run`` raises ``OSError`` when the socket cannot be bound, and
``TransportError`` when the proxy's name does not resolve, both before ``started``; after
that it only ends by cancellation. ``dial`` raises ``RuntimeError`` when ``run`` is not
running (the engine records that call as failed); everything a peer does is an outcome.
Cancelling ``dial`` hangs up or cancels the call first (see :mod:`.call`), then re-raises.
"""

from __future__ import annotations

import socket

import trio

from gateway.config import ConfigError, SipSettings
from gateway.logs import get_logger
from gateway.telephony.base import IGNORE_PROGRESS, AnswerCallback, CallResult, DialRequest
from gateway.telephony.sip.bridge import BridgedCall
from gateway.telephony.sip.headers import split_host_port
from gateway.telephony.sip.message import SipParseError
from gateway.telephony.sip.outgoing import SipProfile
from gateway.telephony.sip.transaction import Timers
from gateway.telephony.sip.transport import Address, SipTransport, TransportStatistics, resolve

log = get_logger(__name__)
# The socket's receive buffer, asked for (Linux caps it at net.core.rmem_max): thousands of
# calls ending at once (a shutdown, a stop) get thousands of responses back in one burst,
# and the default ~200 kB drops most of them (the peers have answered and moved on).
RECEIVE_BUFFER = 4 * 1024 * 1024


class SipAdapter:
    def __init__(self, settings: SipSettings) -> None:
        self._settings = settings
        self._proxy = self._parse_proxy()  # ConfigError now, not when serving starts
        self._transport: SipTransport | None = None
        self._profile: SipProfile | None = None
        self._final_statistics = TransportStatistics()

    @property
    def settings(self) -> SipSettings:
        """The ``[telephony.sip]`` settings it was made with (for error messages)."""
        return self._settings

    @property
    def local_address(self) -> Address:
        """The bound (host, port): useful with ``bind_port = 0``."""
        if self._transport is None:
            raise RuntimeError("the SIP adapter is not running")
        return self._transport.local_host, self._transport.local_port

    @property
    def ready(self) -> bool:
        """The socket is bound and its reader runs (between ``run``'s start and end)."""
        transport = self._transport
        return transport is not None and not transport.closed

    def statistics(self) -> TransportStatistics:
        """What the transport did with the datagrams it read (the last run's, once it
        ended): how many were delivered to calls, answered, and dropped, by reason."""
        transport = self._transport
        return self._final_statistics if transport is None else transport.statistics()

    async def run(self, *, task_status: trio.TaskStatus[SipAdapter] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Bind the socket, report ``started(self)``, read datagrams until cancelled."""
        proxy_host, proxy_port = self._proxy
        settings = self._settings
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind((settings.bind_host, settings.bind_port))  # once, at start-up
            port = sock.getsockname()[1]
            proxy_addr = await resolve(proxy_host, proxy_port)
            transport = SipTransport(sock, (settings.bind_host, port), proxy_addr)
            transport.local_host = await self._local_host(proxy_addr)
            self._profile = SipProfile(
                proxy_host=proxy_host, proxy_port=proxy_port, proxy_addr=proxy_addr,
                local_host=transport.local_host, local_port=port,
                username=settings.username,
                password=settings.password.get_secret_value(),
                ring_timeout=settings.ring_timeout_seconds,
                max_call=settings.max_call_seconds,
                agent_answer_timeout=settings.agent_answer_timeout_seconds,
                trunk_offer=settings.trunk_offer,
                timers=Timers(t1=settings.timer_t1_ms / 1000))
            self._transport = transport
            log.info("sip.listening", local=f"{transport.local_host}:{port}",
                     proxy=f"{proxy_host}:{proxy_port}")
            task_status.started(self)
            try:
                await transport.serve()
            finally:
                self._final_statistics = transport.statistics()
                self._transport = None

    def _parse_proxy(self) -> tuple[str, int]:
        try:
            host, port = split_host_port(self._settings.proxy)
        except SipParseError:
            raise ConfigError("telephony.sip.proxy must be 'host:port' (the trunk's outbound "
                              f"proxy), not {self._settings.proxy!r}") from None
        return host, port or 5060

    async def _local_host(self, proxy: Address) -> str:
        """The host for Via, Contact and From: the setting, else the bound address, else
        the address the OS would use to reach the proxy."""
        if self._settings.local_host:
            return self._settings.local_host
        if self._settings.bind_host not in ("", "0.0.0.0"):
            return self._settings.bind_host
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as probe:
            await probe.connect(proxy)  # UDP connect sends nothing
            return probe.getsockname()[0]

    async def dial(self, request: DialRequest, on_answer: AnswerCallback,
                   on_connect: AnswerCallback = IGNORE_PROGRESS) -> CallResult:
        """Place the call, bridge it to the agent, and return when it is over (see
        :class:`.bridge.BridgedCall`)."""
        transport, profile = self._transport, self._profile
        if transport is None or profile is None or transport.closed:
            raise RuntimeError("the SIP adapter is not running: start SipAdapter.run first")
        return await BridgedCall(transport, profile, request).run(on_answer, on_connect)
