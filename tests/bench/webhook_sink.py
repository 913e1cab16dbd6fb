"""The webhook benchmark's receiver, in a process of its own at the delivery worker's CPU
priority: on a small machine the receiver's CPU would otherwise be taken from the dialing
being measured (in production it runs elsewhere).

``python -m tests.bench.webhook_sink OUT``: prints its URL, reads the endpoint's secret
from stdin, then appends one JSON line per acknowledged delivery to OUT (``id``, ``type``,
``verified``, ``data``) until stdin closes.
"""

from __future__ import annotations

import json
import os
import sys

import trio

from gateway.webhook_worker import lower_priority
from tests.webhook_receiver import receiving


async def main(out_path: str) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    with open(out_path, "w", buffering=1) as out:
        def write(received) -> None:
            out.write(json.dumps({"id": received.headers["webhook-id"],
                                  "type": received.event["type"],
                                  "verified": received.verified, "at": received.at,
                                  "data": received.event["data"]}) + "\n")

        async with receiving(lambda n, event: 204, on_ack=write) as receiver:
            print(receiver.url, flush=True)
            line = b""
            while not line.endswith(b"\n"):
                line += await stdin.receive_some(4096)
            receiver.secret = line.decode().strip()
            while await stdin.receive_some(4096):
                pass


if __name__ == "__main__":
    lower_priority()
    trio.run(main, sys.argv[1])
