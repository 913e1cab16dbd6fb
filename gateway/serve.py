"""``gateway serve``: the root of the process.

trio.run → the telephony adapter (telephony.open) → the asyncio loop (asyncio_loop) →
database (embedded or configured) → migrations → bootstrap → root nursery: the budget
actor, the supervisor (and its campaign actors), the HTTP server (and, with ``[metrics]
host`` set, the metrics listener; the figures are :mod:`gateway.metrics`'). SIGINT/SIGTERM
set the shutdown event: hypercorn stops taking requests, and in-flight calls and requests
get ``http.shutdown_grace_seconds`` to finish.
"""

from __future__ import annotations

import contextlib
import gc
import signal
from collections.abc import AsyncIterator

import hypercorn
import hypercorn.trio
import trio
from quart_trio import QuartTrio

from gateway import phone_fast, phone_national, webhook_worker
from gateway.aio_timers import sweep_timers
from gateway.asyncio_loop import open_loop
from gateway.bootstrap import bootstrap
from gateway.config import Settings
from gateway.db import Database, DatabaseUnavailable
from gateway.engine.budget import Budget
from gateway.engine.deps import EngineDeps
from gateway.engine.load import DialingLoad
from gateway.engine.load import watch as watch_load
from gateway.engine.recorder import Recorder
from gateway.engine.snapshots import Snapshots
from gateway.engine.supervisor import Supervisor
from gateway.http.app import create_app
from gateway.http.context import Services
from gateway.http.routes.ops import metrics_app
from gateway.logs import flush_logs, get_logger, log_flusher, redact_url
from gateway.metrics import Metrics, watch_loop_lag
from gateway.migrations import migrate
from gateway.startup_errors import database_refused, database_unreachable
from gateway.telephony.open import open_adapter

log = get_logger(__name__)


@contextlib.asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """The configured URL, or the embedded cluster's for as long as the context lasts."""
    if settings.database.url:
        yield settings.database.url
        return
    from gateway.embedded_pg import embedded_postgres

    async with embedded_postgres(settings.database.data_dir.resolve()) as url:
        yield url


async def open_database(url: str, settings: Settings, *,
                        wait_seconds: float | None = None) -> Database:
    """Connect, waiting up to ``wait_seconds`` (``database.connect_timeout_seconds``) for a
    PostgreSQL that does not answer yet (it may be starting beside the gateway), then
    :class:`StartupError` naming the URL (password masked). A server that answers and
    refuses (a wrong password, no such database) is a StartupError at once: waiting would
    not fix it. Start-up only: once the gateway runs, an outage is a 503, never an exit."""
    wait = settings.database.connect_timeout_seconds if wait_seconds is None else wait_seconds
    delay, last = 0.5, None
    with trio.move_on_after(wait):
        while True:
            try:
                return await Database.open(url, min_size=settings.database.pool_min_size,
                                           max_size=settings.database.pool_max_size)
            except DatabaseUnavailable as exc:
                last = exc
                log.warning("database.unavailable", url=redact_url(url),
                            error=str(exc.__cause__ or exc), retry_in_seconds=delay)
            except Exception as exc:
                refused = database_refused(exc, url)
                if refused is None:
                    raise
                raise refused from exc
            await trio.sleep(delay)
            delay = min(delay * 2, 10.0)
    raise database_unreachable(url, wait, last)


def hypercorn_config(settings: Settings) -> hypercorn.Config:
    config = hypercorn.Config()
    config.bind = [f"{settings.http.host}:{settings.http.port}"]
    config.graceful_timeout = settings.http.shutdown_grace_seconds
    config.accesslog = None
    config.errorlog = None  # errors reach the app's handlers and our JSON log
    return config


def metrics_hypercorn_config(settings: Settings) -> hypercorn.Config:
    """The metrics listener's (``[metrics] host`` set): its own address; it stops once the
    calls have drained, so a scrape sees the shutdown's last calls end."""
    config = hypercorn_config(settings)
    config.bind = [f"{settings.metrics.host}:{settings.metrics.port}"]
    return config


async def serve(settings: Settings, *, shutdown: trio.Event | None = None,
                handle_signals: bool = True, bootstrap_key: str | None = None,
                tune_gc: bool = False,
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the gateway until ``shutdown`` is set (or SIGINT/SIGTERM arrives).

    ``task_status.started`` reports the HTTP addresses once requests are being served.
    ``bootstrap_key`` is ``GATEWAY_BOOTSTRAP_API_KEY`` (see :func:`gateway.bootstrap.bootstrap`).
    ``tune_gc``: this process is the gateway (``gateway serve``): see :func:`_tune_gc`.
    """
    shutdown = trio.Event() if shutdown is None else shutdown
    phone_fast.prepare(settings.contacts.default_region)
    phone_national.prepare(settings.contacts.default_region)
    # The adapter is opened first and closed last: unusable SIP settings fail start-up
    # before the database is waited for, and calls cancelled at shutdown can still hang
    # up (their CANCEL/BYE answered) after everything that dials has ended.
    async with open_adapter(settings.telephony) as adapter, open_loop(), \
            database_url(settings) as url:
        db = await open_database(url, settings)
        try:
            log.info("database.connected", url=redact_url(url))
            await migrate(db)
            await bootstrap(db, settings, bootstrap_key)
            async with engine_database(db, settings) as engine_db, \
                    trio.open_nursery() as root:
                await root.start(log_flusher)  # buffered lines: written 0.2 s after the first
                watcher = await root.start(_watch_signals, shutdown) if handle_signals else None
                await root.start(sweep_timers)
                metrics = Metrics.create()
                if settings.metrics.loop_lag_interval_seconds:
                    await root.start(watch_loop_lag, metrics,
                                     settings.metrics.loop_lag_interval_seconds)
                await root.start(metrics.reads.run)
                budget = await root.start(Budget().run)
                recorder = await root.start(Recorder(engine_db, metrics).run)
                supervisor = await root.start(Supervisor(
                    EngineDeps(engine_db, budget, recorder, adapter, settings.engine,
                               agent_sip_uri_required=settings.telephony.adapter == "sip",
                               metrics=metrics)).run)
                load = DialingLoad()
                await root.start(watch_load, load, recorder)
                if settings.webhooks.worker == "process":
                    await root.start(webhook_worker.supervise, url, settings, load)
                else:
                    await root.start(webhook_worker.deliver_inline, db, settings, load)
                snapshots = await root.start(Snapshots(db, settings.sse.tick_seconds,
                                                          settings.sse.heartbeat_seconds,
                                                          handles=supervisor.handle).run)
                metrics.attach(budget=budget.accounts, live_calls=supervisor.live_calls,
                               campaigns=supervisor.running_campaigns,
                               subscribers=lambda: snapshots.subscribers,
                               pools={"api": db, "engine": engine_db})
                svc = Services(db=db, settings=settings, engine=supervisor,
                               snapshots=snapshots, metrics=metrics, adapter=adapter)
                app = create_app(svc)
                http_done = trio.Event()
                binds = await root.start(_serve_http, app, hypercorn_config(settings),
                                         shutdown, http_done)
                log.info("http.listening", addresses=binds)
                drained = trio.Event()  # the metrics listener serves through the drain
                if settings.metrics.host:
                    metrics_binds = await root.start(
                        _serve_http, metrics_app(svc), metrics_hypercorn_config(settings),
                        drained, trio.Event())
                    log.info("metrics.listening", addresses=metrics_binds)
                if tune_gc:
                    _tune_gc()
                task_status.started(binds)
                await shutdown.wait()
                log.info("gateway.stopping")
                if watcher is not None:
                    # A second signal now takes the default path: an immediate exit.
                    watcher.cancel()
                # hypercorn stops taking requests and drains on its own (shutdown_trigger);
                # SSE streams end now; in-flight calls get the grace period to finish.
                snapshots.close()
                await supervisor.drain(settings.http.shutdown_grace_seconds)
                drained.set()
                await http_done.wait()
                root.cancel_scope.cancel()
            log.info("gateway.stopped")
        finally:
            with trio.CancelScope(shield=True):
                await db.close()
            flush_logs()  # every line out, however serve ends


# The cyclic collector's young-generation threshold (CPython's default: 700 allocations).
# At 700, objects that live across one scheduler pass (a stream waiting for its next
# tick, a call in flight) survive two young collections and reach the old generation, and
# every full collection then walks every connection's objects: with 1,000 SSE subscribers
# that was ~140 ms per full collection, every few seconds, and ~30% of the gateway's CPU
# per tick. At 10,000 they mostly die young (python -m tests.bench --only sse: gateway
# CPU per tick with 1,000 subscribers went from ~110 ms to 45-65 ms, and the dispatch and
# SIP rates rose by a fifth). A young collection then takes a few ms instead of a
# fraction of one.
GC_YOUNG_THRESHOLD = 10_000


def _tune_gc() -> None:
    """Move everything start-up made (modules, classes, the app: ~80,000 objects that live
    as long as the process) out of the cyclic collector's reach, so the full collections
    walk only what the running gateway made (with :mod:`gateway.aio_timers`, they went from
    up to 117 ms to ~5 ms under full-speed dialing), and make them rarer
    (:data:`GC_YOUNG_THRESHOLD`)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


@contextlib.asynccontextmanager
async def engine_database(db: Database, settings: Settings) -> AsyncIterator[Database]:
    """The engine's own pool (claims, results, the supervisor), so uploads and API reads
    cannot take the connections the dial loop and the recorder need. Entered before the
    root nursery and closed after it, once every call has been recorded."""
    engine_db = await db.open_sibling(max_size=settings.engine.pool_max_size,
                                      name="gateway-engine")
    try:
        yield engine_db
    finally:
        with trio.CancelScope(shield=True):
            await engine_db.close()


async def _serve_http(app: QuartTrio, config: hypercorn.Config, shutdown: trio.Event,
                      done: trio.Event, *, task_status: trio.TaskStatus[list[str]]) -> None:
    try:
        await hypercorn.trio.serve(app, config, shutdown_trigger=shutdown.wait,
                                   task_status=task_status)
    finally:
        done.set()


async def _watch_signals(shutdown: trio.Event, *,
                         task_status: trio.TaskStatus[trio.CancelScope]) -> None:
    with trio.CancelScope() as scope, \
            trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started(scope)
        async for signum in signals:
            log.info("gateway.signal", signal=signal.Signals(signum).name)
            shutdown.set()
            return
