"""The webhook benchmark's receiver: a process of its own, at the delivery worker's lower CPU
priority, as lean as an HTTP/1.1 server can be (h11 over trio sockets, one task per
connection, keep-alive). In production the receiver runs on another machine; here it
shares two cores with the gateway, so its CPU is CPU the dialing being measured loses.
Every request is still checked in full: its Standard Webhooks signature verified with the
``standardwebhooks`` package, its body parsed.

``python -m tests.bench.webhook_sink OUT``: prints its URL, reads the endpoint's secret
from stdin, then appends one JSON line per acknowledged delivery to OUT (``id``, ``type``,
``verified``, ``at``, ``data``) until stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
import typing

import h11
import trio
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.webhook_worker import lower_priority

_NO_CONTENT = h11.Response(status_code=204, headers=[("content-length", "0")])


class _Sink:
    def __init__(self, out: typing.TextIO) -> None:
        self.out = out
        self.webhook: Webhook | None = None

    def acknowledge(self, headers: dict[str, str], body: bytes) -> None:
        verified = False
        if self.webhook is not None:
            try:
                event = self.webhook.verify(body, headers)
                verified = True
            except WebhookVerificationError:
                event = json.loads(body)
        else:
            event = json.loads(body)
        self.out.write(json.dumps({"id": headers.get("webhook-id"), "type": event["type"],
                                   "verified": verified, "at": trio.current_time(),
                                   "data": event["data"]}) + "\n")

    async def connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        headers: dict[str, str] = {}
        body = bytearray()
        async with stream:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                    body.clear()
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self.acknowledge(headers, bytes(body))
                    await stream.send_all(conn.send(_NO_CONTENT)
                                          + conn.send(h11.EndOfMessage()))
                    conn.start_next_cycle()
                else:  # ConnectionClosed, PAUSED on a closed peer
                    return


async def main(out_path: str) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    with open(out_path, "w", buffering=1) as out:
        sink = _Sink(out)
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, sink.connection, listeners)
            print(f"http://127.0.0.1:{port}/hooks", flush=True)
            line = b""
            while not line.endswith(b"\n"):
                line += await stdin.receive_some(4096)
            sink.webhook = Webhook(line.decode().strip())
            while await stdin.receive_some(4096):
                pass
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    lower_priority()
    trio.run(main, sys.argv[1])
