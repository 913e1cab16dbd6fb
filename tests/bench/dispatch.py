"""2. Dispatch throughput: the sim carrier with zero ring and talk time, one campaign of
100k contacts at the API's maximum ``max_concurrent_calls`` (100), account caps that do not
bind. The figure: attempts per second from the campaign's ``started_at`` to the last
attempt's ``ended_at``, every attempt durably recorded (an outcome in PostgreSQL, committed).

Reference, side by side: the database floor (``dispatch_floor``: the same claim/record
statements from a bare asyncpg client, run on a second campaign of the same size in the
same database after the gateway has stopped). Also reported: gateway and PostgreSQL CPU per attempt,
from /proc, which are less noisy than rates on a shared machine; and the rate of the same
kind of campaign while another campaign of the account sits at its own cap (one endless
call, ``max_concurrent_calls`` 1), a common production shape.

And the cost of the logs: the same dial at the default log level (``info``: a
``call.connected`` and a ``call.ended`` line for every answered call) against ``warning``
(none), ``LEVEL_ROUNDS`` campaigns at each level, alternating (info, warning, warning,
info...), each on its own fresh database and its own gateway process started at that
level. The medians of their attempts per second are compared (target: info within 10% of
warning, ≥ 0.9×), and their gateway CPU per attempt, which moves less with the machine.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

import trio

from tests.bench.harness import (
    PROJECT,
    Api,
    BackendCpu,
    Pg,
    Row,
    campaign_status,
    contacts_csv,
    fresh_database,
    gateway_process,
    maybe_profile,
    median,
    percentile,
    rule,
)

NAME = "dispatch"
TARGET = 1000.0
LEVEL_ROUNDS = 3  # campaigns at each log level
LEVELS = ("info", "warning")


async def wait_done(api: Api, pg: Pg, campaign_id: str, total: int, limit: float,
                    log) -> bool:
    """Wait for the campaign to complete; False (after pausing it and letting its calls
    end) past ``limit`` s."""
    deadline = trio.current_time() + limit
    last_log = trio.current_time()
    while trio.current_time() < deadline:
        if await campaign_status(pg, campaign_id) == "completed":
            return True
        if trio.current_time() - last_log >= 10:
            last_log = trio.current_time()
            recorded = await pg.fetchval("SELECT count(outcome) FROM attempts "
                                         "WHERE campaign_id = $1", uuid.UUID(campaign_id))
            log(f"  {recorded}/{total} attempts recorded")
        await trio.sleep(0.25)
    await api.client.post(f"/api/v1/campaigns/{campaign_id}/pause")
    while await pg.fetchval("SELECT count(*) FROM attempts WHERE campaign_id = $1 "
                            "AND outcome IS NULL", uuid.UUID(campaign_id)):
        await trio.sleep(0.1)
    return False


async def attempt_stats(pg: Pg, campaign_id: str) -> dict:
    cid = uuid.UUID(campaign_id)
    row = await pg.fetchrow(
        "SELECT cp.started_at, max(a.ended_at) AS last_end, count(a.id) AS attempts, "
        "count(a.outcome) AS recorded, count(*) FILTER (WHERE a.outcome IS NULL) AS open "
        "FROM campaigns cp LEFT JOIN attempts a ON a.campaign_id = cp.id "
        "WHERE cp.id = $1 GROUP BY cp.started_at", cid)
    per_second = [r["n"] for r in await pg.fetch(
        "SELECT date_trunc('second', ended_at) AS s, count(*) AS n FROM attempts "
        "WHERE campaign_id = $1 GROUP BY 1 ORDER BY 1", cid)]
    completed = await pg.fetchval("SELECT count(*) FROM contacts WHERE campaign_id = $1 "
                                  "AND status = 'completed'", cid)
    seconds = (row["last_end"] - row["started_at"]).total_seconds()
    inner = per_second[1:-1]  # whole seconds only
    return {"seconds": seconds, "attempts": row["attempts"], "recorded": row["recorded"],
            "open": row["open"], "completed_contacts": completed,
            "rate": row["recorded"] / seconds,
            "second_median": median(inner) if inner else None,
            "second_p10": percentile(inner, 10) if inner else None}


async def run_floor(url: str, campaign_id: str) -> dict:
    result = await trio.run_process(
        [sys.executable, "-m", "tests.bench.dispatch_floor", url, campaign_id],
        capture_stdout=True, cwd=str(PROJECT))
    return json.loads(result.stdout)


async def beside_capped(ctx, api: Api, pg: Pg, contacts: int, window: float) -> dict:
    """Dial a campaign for ``window`` s while another campaign of the account waits at its
    own cap (``max_concurrent_calls`` 1, one endless call): attempts per second."""
    blocker = await api.create_campaign(contacts_csv(2, area=213), name="at its cap",
                                        max_concurrent_calls=1)
    campaign = await api.create_campaign(contacts_csv(contacts, area=215), name="beside")
    await api.start(blocker["id"])
    await trio.sleep(1)
    started = time.perf_counter()
    await api.start(campaign["id"])
    with trio.move_on_after(window):
        while await campaign_status(pg, campaign["id"]) != "completed":
            await trio.sleep(0.25)
    seconds = time.perf_counter() - started
    recorded = await pg.fetchval("SELECT count(outcome) FROM attempts WHERE campaign_id = $1",
                                 uuid.UUID(campaign["id"]))
    # Left running: the gateway stops next (the measurement ends with the last attempt).
    return {"recorded": recorded, "seconds": seconds, "rate": recorded / seconds}


async def at_level(ctx, level: str, contacts: int) -> dict:
    """One campaign of ``contacts`` dialed by a gateway started at log level ``level``, on
    a fresh database: attempts per second, gateway CPU per attempt, and what it logged."""
    async with fresh_database(f"{NAME}_{level}") as url, Pg.connect(url) as pg:
        async with gateway_process(url, env={"GATEWAY_LOG_LEVEL": level},
                                   log_suffix=f"-{level}") as gateway, \
                gateway.client() as client:
            api = Api(client)
            campaign = await api.create_campaign(contacts_csv(contacts), name=level)
            await trio.sleep(1)
            cpu_before = gateway.cpu()
            log_before = _size(gateway.log_path)
            await api.start(campaign["id"])
            finished = await wait_done(api, pg, campaign["id"], contacts,
                                       ctx.size(full=120, quick=60), ctx.log)
            cpu = gateway.cpu() - cpu_before
            stats = await attempt_stats(pg, campaign["id"])
        # The gateway has stopped: everything it logged is in its file.
        lines, calls = _log_lines(gateway.log_path)
        log_bytes = _size(gateway.log_path) - log_before
    recorded = max(stats["recorded"], 1)
    return {"level": level, "rate": stats["rate"], "cpu_ms": 1000 * cpu / recorded,
            "finished": finished and stats["recorded"] == contacts,
            "lines": lines, "call_lines_per_attempt": calls / recorded,
            "log_bytes_per_attempt": log_bytes / recorded, "load": os.getloadavg()[0]}


def _size(path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _log_lines(path) -> tuple[int, int]:
    """(lines, lines of a call's events) in a gateway's log file."""
    lines = calls = 0
    try:
        with open(path, "rb") as log:
            for line in log:
                lines += 1
                calls += b'"event":"call.' in line or b'"event": "call.' in line
    except OSError:
        pass
    return lines, calls


async def log_levels(ctx) -> list[Row]:
    """Dispatch at ``info`` against ``warning``, alternating (see the module's docstring)."""
    contacts = ctx.size(full=30_000, quick=10_000)
    rounds: dict[str, list[dict]] = {level: [] for level in LEVELS}
    for index in range(LEVEL_ROUNDS):
        # info, warning, warning, info...: a drift of the machine over the run cancels.
        for level in LEVELS if index % 2 == 0 else reversed(LEVELS):
            measured = await at_level(ctx, level, contacts)
            rounds[level].append(measured)
            ctx.log(f"dispatch at {level}: {measured['rate']:.0f} attempts/s, "
                    f"{measured['cpu_ms']:.3f} ms gateway CPU per attempt, "
                    f"load {measured['load']:.2f}")
    info, warning = rounds["info"], rounds["warning"]
    rate_info, rate_warning = (median([r["rate"] for r in info]),
                               median([r["rate"] for r in warning]))
    cpu_info, cpu_warning = (median([r["cpu_ms"] for r in info]),
                             median([r["cpu_ms"] for r in warning]))
    ratio = rate_info / rate_warning
    unfinished = [f"{r['level']} {r['rate']:.0f}/s" for level in LEVELS
                  for r in rounds[level] if not r["finished"]]

    def each(level: str, key: str, fmt: str) -> str:
        return ", ".join(format(r[key], fmt) for r in rounds[level])

    return [
        Row(NAME, f"attempts/s at log level info, {contacts // 1000}k contacts",
            rate_info, "/s", rate_warning, "the same at warning (same run, alternating)",
            "≥ 0.9× warning", ratio >= 0.9, ratio=ratio,
            note=f"medians of {LEVEL_ROUNDS} campaigns at each level, a fresh database and "
                 f"gateway each; info {each('info', 'rate', '.0f')}; warning "
                 f"{each('warning', 'rate', '.0f')}; 1-min load "
                 f"{', '.join(format(r['load'], '.1f') for r in info + warning)}"
                 + (f"; NOT FINISHED: {', '.join(unfinished)}" if unfinished else "")),
        Row(NAME, "gateway CPU per attempt at info", cpu_info, "ms", cpu_warning,
            "at warning", ratio=cpu_info / cpu_warning,
            note=f"info {each('info', 'cpu_ms', '.3f')}; warning "
                 f"{each('warning', 'cpu_ms', '.3f')} ms"),
        Row(NAME, "log lines per attempt at info (call events)",
            median([r["call_lines_per_attempt"] for r in info]), "", None, "",
            note=f"{median([r['log_bytes_per_attempt'] for r in info]):.0f} bytes of log "
                 f"per attempt at info, "
                 f"{median([r['log_bytes_per_attempt'] for r in warning]):.1f} at warning"),
    ]


async def run(ctx) -> list[Row]:
    total = ctx.size(full=100_000, quick=10_000)
    floor_total = total  # the claim's cost grows with the campaign: same size, fair floor
    rules = [rule("+1213*", talk=3600.0), rule("*")]
    async with fresh_database(NAME) as url, Pg.connect(url) as pg:
        async with gateway_process(url, sim_rules=rules) as gateway, \
                gateway.client() as client:
            api = Api(client)
            campaign = await api.create_campaign(contacts_csv(total), name="dispatch")
            floor_campaign = await api.create_campaign(contacts_csv(floor_total, area=214),
                                                       name="dispatch floor")
            await trio.sleep(1)
            backends = BackendCpu(pg)
            await backends.start()
            cpu_before = gateway.cpu()
            wall = time.perf_counter()
            async with trio.open_nursery() as nursery, \
                    maybe_profile(gateway, NAME, ctx.profile_dir):
                nursery.start_soon(backends.run)
                await api.start(campaign["id"])
                finished = await wait_done(api, pg, campaign["id"], total,
                                           ctx.size(full=300, quick=90), ctx.log)
                nursery.cancel_scope.cancel()
            wall = time.perf_counter() - wall
            await backends.sample()
            gateway_cpu = gateway.cpu() - cpu_before
            db_cpu = backends.seconds()
            rss = gateway.rss()
            stats = await attempt_stats(pg, campaign["id"])
            beside_contacts = ctx.size(full=20_000, quick=5_000)
            beside = await beside_capped(ctx, api, pg, beside_contacts,
                                         ctx.size(full=15, quick=8))
        # The gateway has stopped: the floor client dials the second campaign alone.
        await pg.execute("UPDATE campaigns SET status = 'running', started_at = now() "
                         "WHERE id = $1", uuid.UUID(floor_campaign["id"]))
        floor = await run_floor(url, floor_campaign["id"])
    ctx.log(f"dispatch: {stats['recorded']} attempts in {stats['seconds']:.1f} s "
            f"({stats['rate']:.0f}/s); floor {floor['attempts'] / floor['seconds']:.0f}/s; "
            f"beside a capped campaign {beside['rate']:.0f}/s")

    rate, floor_rate = stats["rate"], floor["attempts"] / floor["seconds"]
    recorded_ok = (stats["recorded"] == stats["attempts"] == stats["completed_contacts"]
                   and stats["open"] == 0 and (not finished or stats["recorded"] == total))
    per_attempt = max(stats["recorded"], 1)
    levels = await log_levels(ctx)
    return [
        Row(NAME, f"attempts/s, {total // 1000}k contacts, ring=talk=0, 100 concurrent",
            rate, "/s", floor_rate, "SQL floor (same statements, bare asyncpg)",
            f"≥ {TARGET:.0f}/s", rate >= TARGET,
            note=f"{stats['recorded']} attempts in {stats['seconds']:.1f} s "
                 f"(wall {wall:.1f} s); 1-s buckets median {stats['second_median']}, "
                 f"p10 {stats['second_p10']}" + ("" if finished else
                                                 "; PAUSED at the time limit")),
        Row(NAME, "every attempt durably recorded (outcome committed)",
            f"{stats['recorded']}/{stats['attempts']}", "", None, "",
            "all, none open", recorded_ok,
            note=f"{stats['completed_contacts']} contacts completed, {stats['open']} open"),
        Row(NAME, "gateway CPU per attempt", 1000 * gateway_cpu / per_attempt, "ms",
            1000 * db_cpu / per_attempt, "PostgreSQL backends' CPU per attempt",
            note=f"gateway {gateway_cpu:.1f} CPU-s, backends {db_cpu:.1f} CPU-s; "
                 f"gateway RSS at the end {rss / 1e6:.0f} MB"),
        Row(NAME, "attempts/s while another campaign of the account is at its cap",
            beside["rate"], "/s", rate, "alone (row above)", f"≥ {TARGET:.0f}/s",
            beside["rate"] >= TARGET,
            note=f"{beside['recorded']} attempts in {beside['seconds']:.1f} s, a campaign of "
                 f"{beside_contacts} contacts (smaller than the row above's: the claim costs "
                 "more the more contacts are pending); the other campaign: "
                 "max_concurrent_calls 1, one endless call, a contact waiting"),
        *levels,
    ]
