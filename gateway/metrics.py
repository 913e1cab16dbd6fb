"""The gateway's figures for Prometheus (``GET /metrics``): every metric is defined here.

One :class:`Metrics` per gateway (``serve`` makes it), with a registry of its own, so two
gateways in one process (the tests) never share a figure. Two kinds of figures:

- Counted as things happen: dials and call outcomes per account, claim and result-write
  latencies, the event loop's lag. On the dial path an account's counters are bound once
  (:meth:`Metrics.account`, kept by the campaign actor), so a call costs one increment
  (prometheus-client's own lock), and a latency is one observation per statement, not
  per call.
- Read when scraped, from what the actors keep anyway (nothing between scrapes): live
  calls, the budget's caps and what is used of them, the pools, SSE subscribers; and the
  webhook backlog, one query to PostgreSQL bounded by ``BACKLOG_TIMEOUT_SECONDS``: a slow
  or unreachable database leaves that figure out of the scrape and counts a scrape error,
  it never holds the scrape.

Labels are bounded: ``account_id`` at most (with ``outcome``, ``pool`` or ``source``, a
few values each), never a campaign, a contact or a number, so there are as many series
as accounts.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import attrs
import trio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from gateway import __version__
from gateway.db import Database, PoolFigures
from gateway.engine.budget import AccountStatistics
from gateway.logs import get_logger
from gateway.vocabulary import Outcome

log = get_logger(__name__)
T = TypeVar("T")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus reads
ACCOUNT = "account_id"
# A statement's round trip: most take a millisecond or two, a loaded database tens.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# How late a sleeping task wakes: under a millisecond when the loop keeps up.
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RESULT_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
LAG_PERIOD_SECONDS = 0.25
BACKLOG_TIMEOUT_SECONDS = 2.0
BACKLOG_SOURCE = "webhook_backlog"


@attrs.frozen
class AccountFigures:
    """An account's counters, bound to its label once: what the dial path increments."""

    label: str
    dials: Counter
    outcomes: Mapping[str, Counter]

    def ended(self, outcome: str) -> None:
        """A call's result was recorded with this outcome."""
        self.outcomes[outcome].inc()


@attrs.define(eq=False)
class _Read:
    done: trio.Event = attrs.field(factory=trio.Event)
    value: Any = None
    error: Exception | None = None


class BoundedReads:
    """Database reads that answer within a time or not at all: a scrape's, a readiness
    check's. A query given up on is not waited for: on a connection whose packets are
    dropped, cancelling it waits for the driver's own timeouts (seconds), so it runs on in
    this actor's nursery until it ends by itself, and the caller has its answer on time.
    One read of each name at a time: a caller that finds one in flight waits for it, so
    scrapes every few seconds through a partition never pile queries up."""

    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None
        self._reads: dict[str, _Read] = {}

    async def run(self, *, task_status: trio.TaskStatus[BoundedReads] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started(self)
            await trio.sleep_forever()

    async def read(self, name: str, seconds: float,
                   fn: Callable[[], Awaitable[T]]) -> T:
        """``fn()``'s value or exception; TimeoutError when it has not ended in
        ``seconds`` (it goes on in the background)."""
        if self._nursery is None:
            raise RuntimeError("BoundedReads.run is not running")
        pending = self._reads.get(name)
        if pending is None:
            pending = self._reads[name] = _Read()
            self._nursery.start_soon(self._run, name, pending, fn)
        with trio.move_on_after(seconds):
            await pending.done.wait()
        if not pending.done.is_set():
            raise TimeoutError(f"no answer within {seconds:g} s")
        if pending.error is not None:
            raise pending.error
        return pending.value

    async def _run(self, name: str, pending: _Read, fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            pending.value = await fn()
        except Exception as exc:  # its caller's to judge
            pending.error = exc
        finally:
            del self._reads[name]
            pending.done.set()


@attrs.define(eq=False)
class Metrics:
    """The metric objects of one gateway, and where its scrape-time figures are read."""

    registry: CollectorRegistry
    dials: Counter
    outcomes: Counter
    claim_seconds: Histogram
    record_seconds: Histogram
    record_batch: Histogram
    loop_lag: Histogram
    loop_lag_latest: Gauge
    scrape_errors: Counter
    reads: BoundedReads = attrs.field(factory=BoundedReads)  # started by serve
    _accounts: dict[uuid.UUID, AccountFigures] = attrs.field(factory=dict)
    # What a scrape reads (set by attach once the actors run; nothing until then).
    _budget: Callable[[], Iterable[AccountStatistics]] = list
    _live_calls: Callable[[], Mapping[uuid.UUID, int]] = dict
    _campaigns: Callable[[], Mapping[uuid.UUID, int]] = dict
    _subscribers: Callable[[], int] = int
    _pools: dict[str, Callable[[], PoolFigures]] = attrs.field(factory=dict)
    # The webhook backlog read for the scrape being rendered (None: left out).
    _backlog: Mapping[uuid.UUID, int] | None = None

    @classmethod
    def create(cls) -> Metrics:
        # No `_created` series beside every counter and histogram (prometheus-client's
        # default): twice the series for a figure Prometheus does not use. A setting of
        # the process's prometheus-client, which only the gateway uses.
        disable_created_metrics()
        registry = CollectorRegistry()
        metrics = cls(
            registry=registry,
            dials=Counter(
                "gateway_dials", "Dials started by this process: attempts claimed and "
                "handed to the telephony adapter.", [ACCOUNT], registry=registry),
            outcomes=Counter(
                "gateway_call_outcomes", "Calls dialed by this process whose result was "
                "recorded, by outcome.", [ACCOUNT, "outcome"], registry=registry),
            claim_seconds=Histogram(
                "gateway_claim_duration_seconds", "Time of one claim statement (a batch of "
                "due contacts made attempts), database round trip included.",
                registry=registry, buckets=LATENCY_BUCKETS),
            record_seconds=Histogram(
                "gateway_record_duration_seconds", "Time of one result-batch write by the "
                "recorder, database round trip included.",
                registry=registry, buckets=LATENCY_BUCKETS),
            record_batch=Histogram(
                "gateway_record_batch_results", "Call results written per recorder "
                "statement.", registry=registry, buckets=RESULT_BATCH_BUCKETS),
            loop_lag=Histogram(
                "gateway_event_loop_lag_seconds", "How late the event loop wakes a task "
                f"sleeping {LAG_PERIOD_SECONDS:g} s: the wait of every ready task for its "
                "turn.", registry=registry, buckets=LAG_BUCKETS),
            loop_lag_latest=Gauge(
                "gateway_event_loop_lag_latest_seconds", "The event loop's lag at its "
                "latest measure.", registry=registry),
            scrape_errors=Counter(
                "gateway_scrape_errors", "Figures left out of a scrape because reading "
                "them failed or took too long, by source.", ["source"], registry=registry),
        )
        metrics.scrape_errors.labels(BACKLOG_SOURCE)  # present at 0 from the start
        Info("gateway_build", "The gateway's version.", registry=registry).info(
            {"version": __version__})
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        PlatformCollector(registry=registry)
        registry.register(_Scraped(metrics))
        return metrics

    def account(self, account_id: uuid.UUID) -> AccountFigures:
        """The account's counters (bound once; each outcome's series exists from 0)."""
        figures = self._accounts.get(account_id)
        if figures is None:
            label = str(account_id)
            figures = AccountFigures(
                label, self.dials.labels(label),
                {outcome: self.outcomes.labels(label, outcome) for outcome in Outcome})
            self._accounts[account_id] = figures
        return figures

    def attach(self, *, budget: Callable[[], Iterable[AccountStatistics]],
               live_calls: Callable[[], Mapping[uuid.UUID, int]],
               campaigns: Callable[[], Mapping[uuid.UUID, int]],
               subscribers: Callable[[], int], pools: Mapping[str, Database]) -> None:
        """Where the scrape-time figures are read from, once the actors run."""
        self._budget, self._live_calls, self._subscribers = budget, live_calls, subscribers
        self._campaigns = campaigns
        self._pools = {name: db.pool_figures for name, db in pools.items()}

    async def scrape(self, db: Database) -> bytes:
        """The exposition text: the webhook backlog read now (or left out), then every
        figure rendered in one synchronous pass."""
        backlog = await self._read_backlog(db)
        self._backlog = backlog  # nothing awaits from here to the end of the rendering
        try:
            return generate_latest(self.registry)
        finally:
            self._backlog = None

    async def _read_backlog(self, db: Database) -> dict[uuid.UUID, int] | None:
        try:
            rows = await self.reads.read(BACKLOG_SOURCE, BACKLOG_TIMEOUT_SECONDS,
                                         lambda: db.fetch("ops.webhook_backlog"))
        except Exception as exc:  # a scrape answers whatever the database does
            log.warning("metrics.scrape_failed", source=BACKLOG_SOURCE, error=repr(exc))
            self.scrape_errors.labels(BACKLOG_SOURCE).inc()
            return None
        return {row["account_id"]: row["undelivered"] for row in rows}

    def _label(self, account_id: uuid.UUID) -> str:
        figures = self._accounts.get(account_id)
        return str(account_id) if figures is None else figures.label


class _Scraped:
    """The figures read at scrape time (a prometheus-client collector)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        families = self._families()
        running, live, slots, slots_max, window, window_max, left, waiting = families[:8]
        budget = list(metrics._budget())
        calls, campaigns = metrics._live_calls(), metrics._campaigns()
        # Every account dialed here, or known to the budget, or with an actor here: 0
        # when idle, so a series does not vanish between campaigns.
        for account_id in {*metrics._accounts, *campaigns, *(a.account_id for a in budget)}:
            label = [metrics._label(account_id)]
            running.add_metric(label, campaigns.get(account_id, 0))
            live.add_metric(label, calls.get(account_id, 0))
        for account in budget:
            label = [metrics._label(account.account_id)]
            slots.add_metric(label, account.live)
            slots_max.add_metric(label, account.concurrent_max)
            window.add_metric(label, account.in_window)
            window_max.add_metric(label, account.calls_per_minute)
            if account.dials_left_today is not None:
                left.add_metric(label, account.dials_left_today)
            waiting.add_metric(label, account.waiting_campaigns)
        size, in_use, most, subscribers, backlog = families[8:]
        for name, read in metrics._pools.items():
            figures = read()
            size.add_metric([name], figures.size)
            in_use.add_metric([name], figures.in_use)
            most.add_metric([name], figures.max_size)
        subscribers.add_metric([], metrics._subscribers())
        yield from families[:-1]
        if metrics._backlog is not None:
            for account_id, undelivered in metrics._backlog.items():
                backlog.add_metric([metrics._label(account_id)], undelivered)
            yield backlog

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        def gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, documentation, labels=list(labels))

        return [
            gauge("gateway_running_campaigns", "Campaign actors in this process: campaigns "
                  "it dials (running, or winding down their last calls).", ACCOUNT),
            gauge("gateway_live_calls", "Calls in flight dialed by this process (dialed, "
                  "result not yet recorded).", ACCOUNT),
            gauge("gateway_account_concurrent_calls", "Call slots of the account's "
                  "concurrency budget in use in this process.", ACCOUNT),
            gauge("gateway_account_concurrent_calls_max", "The account's concurrent_max "
                  "cap.", ACCOUNT),
            gauge("gateway_account_calls_last_minute", "Dials granted to the account in "
                  "the last 60 s (its rate window).", ACCOUNT),
            gauge("gateway_account_calls_per_minute_max", "The account's calls_per_minute "
                  "cap.", ACCOUNT),
            gauge("gateway_account_dials_left_today", "Dials the account's daily cap still "
                  "allows (accounts with a daily cap only).", ACCOUNT),
            gauge("gateway_budget_waiting_campaigns", "Campaign actors waiting for a call "
                  "slot of the account's budget (at a cap, or the rate window full).",
                  ACCOUNT),
            gauge("gateway_db_pool_connections", "Connections open in the pool.", "pool"),
            gauge("gateway_db_pool_connections_in_use", "Connections of the pool lent out "
                  "now.", "pool"),
            gauge("gateway_db_pool_connections_max", "The pool's size limit.", "pool"),
            gauge("gateway_sse_subscribers", "Server-Sent Events streams open on this "
                  "process."),
            gauge("gateway_webhook_backlog_deliveries", "Webhook deliveries not delivered "
                  "yet (pending, retries included), by account of the endpoint; left out "
                  "of a scrape when the database does not answer in time.", ACCOUNT),
        ]


async def watch_loop_lag(metrics: Metrics, period: float = LAG_PERIOD_SECONDS, *,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                         ) -> None:
    """Measure how late trio wakes a task that sleeps ``period``: what every ready task
    waits for its turn (a long synchronous step, a collection of the cyclic GC, a burst
    of work). Runs until cancelled."""
    task_status.started()
    while True:
        asleep = trio.current_time()
        await trio.sleep(period)
        lag = max(0.0, trio.current_time() - asleep - period)
        metrics.loop_lag.observe(lag)
        metrics.loop_lag_latest.set(lag)
