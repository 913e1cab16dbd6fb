"""3. Scale: 10,000 simultaneous live sim calls (one-hour talk time) in one gateway process.

A campaign dials at most 100 calls at once (the API's limit), so the run is 100 campaigns
of 100 concurrent calls (120 contacts each, so contacts are always waiting) on an account
whose ``concurrent_max`` is 10,000: both caps bind at once.

Measured from outside the process, sampled while the calls ramp up and for a steady window
after the cap is reached:
- live calls: attempts without an outcome in PostgreSQL (every 250 ms); must equal the cap
  in the steady window and never exceed it;
- resident memory: VmRSS (every 250 ms) and VmHWM;
- event-loop lag, by proxy: the gateway has no in-process lag probe, so the figures are
  request latencies, sampled from this process on one connection, one request every 20 ms
  (never two at once), in turn: ``GET /healthz`` (one database ping: it also waits for a
  pooled connection, so it shows pool contention too) and a request answered without the
  database (``/api/v1/call-limits`` with an empty API key: a 401 before any query, the
  closest thing to loop lag); once a second ``GET /openapi.json`` instead (CPU only, ~20 ms
  of work, so it is sampled rarely). The reference is the same sampling on the idle
  gateway just before.
"""

from __future__ import annotations

import time

import trio

from tests.bench.harness import (
    NO_DB_PROBE,
    Api,
    Pg,
    Row,
    contacts_csv,
    fresh_database,
    gateway_process,
    latency_summary,
    maybe_profile,
    rule,
    sample_in_turn,
)

NAME = "scale"
PER_CAMPAIGN = 100
RSS_TARGET = 500e6
LAG_TARGET_MS = 50.0
# Every 20 ms, in turn: /healthz and the no-database probe; once a second /openapi.json.
SCHEDULE = [("healthz", "/healthz"), NO_DB_PROBE] * 25
SCHEDULE[-1] = ("openapi", "/openapi.json")


async def _sample_live(pg: Pg, out: list[tuple[float, int]], every: float = 0.25) -> None:
    while True:
        count = await pg.fetchval("SELECT count(*) FROM attempts WHERE outcome IS NULL")
        out.append((time.perf_counter(), count))
        await trio.sleep(every)


async def _sample_rss(gateway, out: list[tuple[float, int]], every: float = 0.25) -> None:
    while True:
        out.append((time.perf_counter(), gateway.rss()))
        await trio.sleep(every)


async def run(ctx) -> list[Row]:
    cap = ctx.size(full=10_000, quick=1_000)
    steady_seconds = ctx.size(full=30, quick=10)
    campaigns = cap // PER_CAMPAIGN
    csv = contacts_csv(PER_CAMPAIGN + 20)
    async with fresh_database(NAME) as url, Pg.connect(url) as pg, \
            gateway_process(url, concurrent_max=cap,
                            sim_rules=[rule("*", ring=0.0, talk=3600.0)]) as gateway, \
            gateway.client() as client, gateway.client() as health_client:
        api = Api(client)
        ids = [(await api.create_campaign(csv, name=f"scale {i}",
                                          max_concurrent_calls=PER_CAMPAIGN))["id"]
               for i in range(campaigns)]
        await trio.sleep(1)
        idle_rss = gateway.rss()
        idle = {"healthz": [], "openapi": [], NO_DB_PROBE[0]: []}
        cpu_idle = gateway.cpu()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_in_turn, health_client, SCHEDULE, 0.02, idle, [])
            await trio.sleep(5)
            nursery.cancel_scope.cancel()
        cpu_idle = (gateway.cpu() - cpu_idle) / 5

        samples = {"healthz": [], "openapi": [], NO_DB_PROBE[0]: []}
        errors: list = []
        live: list[tuple[float, int]] = []
        rss: list[tuple[float, int]] = []
        reached_at = None
        started = time.perf_counter()
        cpu_steady = 0.0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_in_turn, health_client, SCHEDULE, 0.02, samples, errors)
            nursery.start_soon(_sample_live, pg, live)
            nursery.start_soon(_sample_rss, gateway, rss)
            async with maybe_profile(gateway, NAME, ctx.profile_dir):
                for campaign_id in ids:
                    await api.start(campaign_id)
                with trio.move_on_after(ctx.size(full=180, quick=60)):
                    while not live or live[-1][1] < cap:
                        await trio.sleep(0.05)
                    reached_at = live[-1][0]
                if reached_at is not None:
                    ctx.log(f"scale: {cap} live calls after {reached_at - started:.1f} s")
                    cpu_before = gateway.cpu()
                    await trio.sleep(steady_seconds)
                    cpu_steady = (gateway.cpu() - cpu_before) / steady_seconds
            nursery.cancel_scope.cancel()
        ended = time.perf_counter()
        peak = gateway.peak_rss()
        shutdown_seconds = await gateway.stop()

    if reached_at is None:
        most = max((n for _, n in live), default=0)
        raise RuntimeError(f"live calls never reached the cap of {cap} (at most {most})")
    steady_live = [n for t, n in live if t >= reached_at]
    steady_rss = max(r for t, r in rss if t >= reached_at)
    health = samples["healthz"]
    whole = latency_summary(health)
    steady = latency_summary([s for s in health if s[0] >= reached_at])
    api_whole, api_idle = latency_summary(samples["openapi"]), latency_summary(idle["openapi"])
    probe, probe_idle = (latency_summary(samples[NO_DB_PROBE[0]]),
                         latency_summary(idle[NO_DB_PROBE[0]]))
    probe_steady = latency_summary([s for s in samples[NO_DB_PROBE[0]] if s[0] >= reached_at])
    idle = latency_summary(idle["healthz"])
    live_ok = min(steady_live) == max(steady_live) == cap and max(n for _, n in live) <= cap
    return [
        Row(NAME, f"live calls in steady window (sampled {len(steady_live)}×)",
            f"{min(steady_live)}..{max(steady_live)}", "", None, "",
            f"= cap {cap}, never above", live_ok,
            note=f"{campaigns} campaigns × {PER_CAMPAIGN}; cap reached "
                 f"{reached_at - started:.1f} s after the first start; max ever "
                 f"{max(n for _, n in live)}"),
        Row(NAME, f"RSS with {cap:,} live calls", steady_rss / 1e6, "MB", idle_rss / 1e6,
            "idle gateway RSS", "< 500 MB", steady_rss < RSS_TARGET,
            note=f"VmHWM {peak / 1e6:.0f} MB; {(steady_rss - idle_rss) / cap / 1024:.1f} KiB "
                 f"per live call; gateway CPU in the steady window {100 * cpu_steady:.0f}% "
                 f"({100 * cpu_idle:.0f}% idle: the sampling's own cost)"),
        Row(NAME, "loop lag proxy: GET /healthz p99, ramp + steady", whole["p99_ms"], "ms",
            idle["p99_ms"], "idle p99", f"< {LAG_TARGET_MS:.0f} ms",
            whole["p99_ms"] < LAG_TARGET_MS,
            note=f"request latency as a proxy for loop lag (and pool waits), every 40 ms "
                 f"over {ended - started:.0f} s: n={whole['n']}, p50 {whole['p50_ms']:.1f} ms, "
                 f"max {whole['max_ms']:.0f} ms; steady window only: p50 "
                 f"{steady['p50_ms']:.1f}, p99 {steady['p99_ms']:.1f} ms; "
                 f"idle p50 {idle['p50_ms']:.1f} ms; failed requests {len(errors)}"),
        Row(NAME, "loop lag proxy: no-database request p99, ramp + steady", probe["p99_ms"],
            "ms", probe_idle["p99_ms"], "idle p99", f"< {LAG_TARGET_MS:.0f} ms",
            probe["p99_ms"] < LAG_TARGET_MS,
            note=f"401 before any query, every 40 ms: n={probe['n']}, p50 "
                 f"{probe['p50_ms']:.1f} ms, max {probe['max_ms']:.0f} ms; steady window "
                 f"only: p50 {probe_steady['p50_ms']:.1f}, p99 {probe_steady['p99_ms']:.1f} ms"),
        Row(NAME, "GET /openapi.json p99 (CPU only), ramp + steady", api_whole["p99_ms"], "ms",
            api_idle["p99_ms"], "idle p99",
            note=f"once a second: n={api_whole['n']}, p50 {api_whole['p50_ms']:.1f} ms, "
                 f"max {api_whole['max_ms']:.0f} ms"),
        Row(NAME, f"shutdown with {cap:,} live calls (SIGTERM → exit)", shutdown_seconds, "s",
            note="grace 1 s, then every call is cancelled and recorded as interrupted; "
                 "killed after 15 s"),
    ]
