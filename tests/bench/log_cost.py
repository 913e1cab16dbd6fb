"""What the logs of one call cost the gateway, in CPU time, in a process of their own.

The dispatch benchmark compares whole gateways at ``info`` and ``warning``; their CPU per
attempt moves by ±15% from round to round on a shared machine, more than the logs cost.
This times the log calls alone: the four that ``gateway.engine.call`` makes for every
answered sim call (``call.dialed`` and ``call.answered`` at debug, ``call.connected`` and
``call.ended`` at info, with the same keys), through ``gateway.logs`` configured as
``gateway serve`` configures it, into a file. CPU time of the thread (not wall time),
the best of several rounds. Run from the repository root:

    .venv/bin/python -m tests.bench.log_cost [--root PATH] [--calls 20000]

``--root`` points at another checkout (e.g. a ``git worktree`` of an older commit) to time
its logging instead. Each level runs in a fresh interpreter. A few seconds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import sys, time, uuid
sys.path.insert(0, sys.argv[1])
import gateway.logs as logs
log = logs.get_logger("gateway.engine.call")   # at import time, as the engine's is
out = open(sys.argv[4], "w")
logs.configure_logging(sys.argv[2], out)
ids = {"campaign_id": str(uuid.uuid4()), "contact_id": str(uuid.uuid4()),
       "call_id": str(uuid.uuid4()), "attempt": 1}

def one_call():
    log.debug("call.dialed", to="+12125550100", **ids)
    log.debug("call.answered", **ids)
    log.info("call.connected", **ids)
    log.info("call.ended", outcome="answered", duration_seconds=0.0,
             contact_status="completed", sip_status=None, hangup_by="contact",
             connected=True, agent_sip_status=None, agent_sip_call_id=None, **ids)

calls = int(sys.argv[3])
best = float("inf")
for _ in range(9):
    started = time.thread_time()
    for _ in range(calls):
        one_call()
    best = min(best, (time.thread_time() - started) / calls)
print(best)
"""


def cpu_per_call(root: Path, level: str, calls: int) -> float:
    """Seconds of CPU per call's log calls at ``level``."""
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(root), level, str(calls),
             str(Path(scratch) / "gateway.log")],
            capture_output=True, text=True, check=True, cwd=scratch)
    return float(done.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.log_cost",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                        help="the checkout whose gateway.logs to time (default: this one)")
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args(argv)
    figures = {level: cpu_per_call(args.root, level, args.calls)
               for level in ("info", "warning")}
    print(f"log calls of one answered call ({args.root}):")
    for level, seconds in figures.items():
        print(f"  at {level:8} {seconds * 1e6:6.2f} µs CPU")
    print(f"  info - warning: {(figures['info'] - figures['warning']) * 1e6:.2f} µs a call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
