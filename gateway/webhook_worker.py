"""Webhook delivery in a child process of ``gateway serve``, at a lower CPU priority.

Delivery is background work that must never slow dialing: in the gateway's own process
every request it sends is CPU taken from the event loop that dials (measured: with every
event delivered to a local receiver, full-speed dialing fell to two thirds). So ``serve``
runs the delivery actor (:mod:`gateway.engine.webhooks`) in a child process, ``nice``-d so
that the kernel gives it only the CPU dialing and PostgreSQL leave; it catches up when the
dialing slows. The events are rows in PostgreSQL, so nothing is lost whatever the child
does: it is restarted if it exits, and claims make it safe beside the other processes'.

The parent writes the settings (the database URL resolved, the embedded cluster's
included) as one JSON line on the child's stdin, then a line at each change of its
dialing load (``1`` saturated, ``0`` not: :mod:`gateway.engine.load`; delivery yields to
a saturated dialer), and keeps the pipe open: the child stops (releasing its claims)
when the pipe closes, that is when the parent stops or dies, whatever the signal.

``webhooks.worker = "inline"`` runs the actor in the gateway's process instead (the
tests' in-process gateways, or a machine where a child process is unwanted).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import trio
import trio_asyncio  # type: ignore[import-untyped]  # trio-asyncio ships no type hints

from gateway.config import Settings
from gateway.db import Database
from gateway.engine.load import DialingLoad
from gateway.engine.webhooks import Deliverer
from gateway.logs import configure_logging, get_logger, log_flusher

log = get_logger(__name__)
# How much lower the child's CPU priority is (nice(2): 19 is the lowest).
NICENESS = 10
POOL_SIZE = 4
RESTART_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
STOP_GRACE_SECONDS = 5.0


async def deliver_inline(db: Database, settings: Settings, load: DialingLoad, *,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                         ) -> None:
    """The actor in this process, on connections of its own (a slow receiver never holds
    the ones dialing or the API needs)."""
    webhooks_db = await db.open_sibling(max_size=POOL_SIZE, name="gateway-webhooks")
    try:
        await Deliverer(webhooks_db, settings.webhooks, load).run(task_status=task_status)
    finally:
        with trio.CancelScope(shield=True):
            await webhooks_db.close()


async def supervise(url: str, settings: Settings, load: DialingLoad, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the child until cancelled, restarting it (with backoff) whenever it exits;
    it is told each change of ``load``."""
    line = json.dumps(settings.model_dump(mode="json")
                      | {"database": settings.database.model_dump(mode="json") | {"url": url}})
    task_status.started()
    failures = 0
    while True:
        started = trio.current_time()
        code = await _run_child(line.encode() + b"\n", load)
        if trio.current_time() - started > 60:
            failures = 0
        delay = RESTART_BACKOFF_SECONDS[min(failures, len(RESTART_BACKOFF_SECONDS) - 1)]
        failures += 1
        log.error("webhooks.worker_exited", returncode=code, restart_in_seconds=delay)
        await trio.sleep(delay)


async def _run_child(settings_line: bytes, load: DialingLoad) -> int | None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "gateway.webhook_worker"], stdin=subprocess.PIPE,
        preexec_fn=lower_priority)
    assert process.stdin is not None
    try:
        await process.stdin.send_all(settings_line)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_tell_load, process.stdin, load)
            code = await process.wait()
            nursery.cancel_scope.cancel()
        return code
    finally:
        with trio.CancelScope(shield=True):
            await process.stdin.aclose()  # the child's signal to stop
            with trio.move_on_after(STOP_GRACE_SECONDS):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def _tell_load(stdin: trio.abc.SendStream, load: DialingLoad) -> None:
    """One line per state, the current one first: ``1`` saturated, ``0`` not."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while True:
            await stdin.send_all(b"1\n" if load.saturated else b"0\n")
            await load.changed()


def lower_priority() -> None:
    """In the child, before it runs: the idle scheduling class where there is one (Linux:
    the kernel runs it only on CPU time nothing else wants, and any other task that wakes
    preempts it at once, so the dialing's round trips wait for nothing), else nice."""
    os.nice(NICENESS)
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is not None:
        try:
            os.sched_setscheduler(0, idle, os.sched_param(0))
        except OSError:
            pass  # nice alone


# -- the child --------------------------------------------------------------------------

async def _child_main() -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    received = b""
    while b"\n" not in received:
        chunk = await stdin.receive_some(65536)
        if not chunk:
            return  # the parent went away before saying anything
        received += chunk
    line, _, news = received.partition(b"\n")
    settings = Settings.model_validate(json.loads(line))
    load = DialingLoad()
    _follow(load, news)
    configure_logging(settings.log.level)
    async with trio_asyncio.open_loop():
        db = await Database.open(settings.database.url, min_size=1, max_size=POOL_SIZE,
                                 name="gateway-webhooks")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_follow_parent, stdin, load, nursery.cancel_scope)
                await nursery.start(log_flusher)
                await nursery.start(Deliverer(db, settings.webhooks, load).run)
                log.info("webhooks.worker_started", pid=os.getpid())
        finally:
            with trio.CancelScope(shield=True):
                await db.close()


async def _follow_parent(stdin: trio.lowlevel.FdStream, load: DialingLoad,
                         scope: trio.CancelScope) -> None:
    """The parent's news of the dialing load (the last line's state) until the pipe
    closes: then stop."""
    while data := await stdin.receive_some(4096):
        _follow(load, data)
    scope.cancel()


def _follow(load: DialingLoad, news: bytes) -> None:
    """The latest of the states in ``news`` (whole lines or not: each is one byte)."""
    states = news.split()
    if states:
        load.set(states[-1] == b"1")


def main() -> None:
    # The terminal's Ctrl-C reaches the whole process group: the parent decides when this
    # stops (by closing the pipe).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    trio.run(_child_main)


if __name__ == "__main__":
    main()
