"""A TCP proxy on 127.0.0.1 for fault-injection tests: the network between a client (the
gateway's pool) and its server (PostgreSQL) as a thing a test can break on purpose.

- ``blackhole()`` is a partition that drops packets: every byte either side sends is read
  and thrown away, no socket is closed, so both peers wait as they would on a dead link
  (the server keeps the session, its locks and transaction, as long as the link is down).
- ``restore()`` heals it: new connections are forwarded again, and those that lived through
  the partition are closed, as TCP timeouts would break them once the link came back.
- ``cut()`` closes every connection at once (what a server crash or a killed middlebox
  does), while new ones are still forwarded.

Each accepted connection runs in its own cancel scope with two pump tasks; closing it is
cancelling that scope.
"""

from __future__ import annotations

import functools

import trio

# One read per pump iteration: big enough that a bulk transfer (COPY) moves in few
# iterations, and receive_some returns whatever is there, so small messages are not delayed.
RECEIVE_BYTES = 65536


class _Connection:
    """One accepted connection: its cancel scope, and whether a partition has touched it."""

    def __init__(self, blackholed: bool) -> None:
        self.scope = trio.CancelScope()
        # Set once this connection lives through a partition; never cleared, because its
        # stream state is lost for good (bytes were dropped): restore() closes it.
        self.blackholed = blackholed


class TcpProxy:
    """Listens on 127.0.0.1:<port> (ephemeral), forwards every accepted connection to
    (target_host, target_port)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.port: int = 0  # set once started
        self._blackholed = False
        self._open: set[_Connection] = set()

    @property
    def connections(self) -> int:
        """Currently open proxied connections (accepted and not yet closed)."""
        return len(self._open)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve until cancelled: start with ``port = await nursery.start(proxy.run)``.
        Cancelling it closes the listener and every connection."""
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(functools.partial(
                trio.serve_tcp, self._handle, 0, host="127.0.0.1"))
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started(self.port)

    def blackhole(self) -> None:
        """From now on, drop every byte of every existing and new connection, both ways."""
        self._blackholed = True
        for conn in self._open:
            conn.blackholed = True

    def restore(self) -> None:
        """Forward new connections again; close those that were open while black-holed."""
        self._blackholed = False
        for conn in self._open:
            if conn.blackholed:
                conn.scope.cancel()

    def cut(self) -> None:
        """Close every existing connection now; new ones are still forwarded."""
        for conn in self._open:
            conn.scope.cancel()

    async def _handle(self, client: trio.SocketStream) -> None:
        conn = _Connection(self._blackholed)
        self._open.add(conn)
        try:
            with conn.scope:
                if conn.blackholed:
                    # Accepted during a partition: the server would never see this SYN, so
                    # nothing is connected upstream; the client's bytes go nowhere.
                    await self._pump(client, None, conn)
                    return
                try:
                    upstream = await trio.open_tcp_stream(*self._target)
                except OSError:
                    return  # the target is down: the client sees its connection closed
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, client, upstream, conn)
                        nursery.start_soon(self._pump, upstream, client, conn)
                finally:
                    await upstream.aclose()
        finally:
            self._open.discard(conn)
            # A handler that raises would end serve_tcp and so the whole proxy: closing
            # is all that is left to do, whatever state the socket is in.
            await client.aclose()

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream | None,
                    conn: _Connection) -> None:
        """Copy ``source`` to ``sink`` until ``source`` ends; drop the bytes while
        ``conn`` is black-holed (or always, without a sink)."""
        try:
            while data := await source.receive_some(RECEIVE_BYTES):
                if sink is not None and not conn.blackholed:
                    await sink.send_all(data)
        except trio.BrokenResourceError:
            # A reset from one peer: pass it on by closing both (unless the link is down,
            # then the other peer never hears of it, like a real partition).
            if not conn.blackholed:
                conn.scope.cancel()
            return
        except trio.ClosedResourceError:
            return  # the other pump's connection is being closed
        # A clean end (FIN) is passed on as a half-close, so a peer still sending its last
        # answer is not cut short; a partition drops the FIN like any other packet.
        if sink is not None and not conn.blackholed:
            try:
                await sink.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                conn.scope.cancel()
