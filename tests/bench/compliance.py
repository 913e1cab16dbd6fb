"""8. Compliance dialing's cost: dispatch throughput with calling windows and a 100k-number
do-not-call list against without, in the same run on the same gateway.

Two accounts with the same caps (that do not bind) on one gateway process, the sim carrier
at zero ring and talk time, ``max_concurrent_calls`` 100. The *plain* account dials
campaigns with no window and an empty do-not-call list. The *compliance* account has
``DNC_NUMBERS`` numbers on its list (none of them among the contacts: every claim looks
each contact up and dials it) and its campaigns have a calling window that is open at every
hour of every day, so every claim computes which of the campaign's zones are open (the
contacts' numbers spread over ``AREAS``, area codes of every US zone: a dozen zone sets)
and filters on them, and every retry decision would be windowed. Campaigns of the two
kinds alternate (plain, compliance, compliance, plain...: each campaign dials on a database
grown by the ones before, and this order cancels that drift), ``ROUNDS`` of each, and the
medians of their attempts per second (from ``started_at`` to the last ``ended_at``, every
attempt recorded) are shown; the ratio is the geometric mean of each round's
compliance/plain ratio (the two campaigns of a round run back to back, so any drift from
round to round cancels): the target is ≥ 0.9x. The tables are vacuumed before each
campaign (see ``run``).
"""

from __future__ import annotations

import json
import math
import time

import httpx
import trio

from tests.bench.dispatch import attempt_stats, wait_done
from tests.bench.harness import (
    UNBOUNDED_RATE,
    Api,
    Pg,
    Row,
    expect,
    fresh_database,
    gateway_process,
    median,
    rule,
)
from tests.multipart_body import multipart

NAME = "compliance"
DNC_NUMBERS = 100_000
ROUNDS = 4
# New York, Chicago, Denver, Phoenix, Los Angeles, Anchorage, Honolulu, Boise+LA (two zones),
# Miami, Seattle, Dallas, Detroit.
AREAS = (212, 312, 303, 602, 213, 907, 808, 208, 305, 206, 214, 313)
ALWAYS_OPEN = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
               "start": "00:00", "end": "24:00"}


def spread_csv(count: int, offset: int) -> bytes:
    """``count`` distinct valid numbers over AREAS (``offset`` keeps campaigns apart)."""
    lines = ["phone_number,first_name"]
    for i in range(count):
        area = AREAS[i % len(AREAS)]
        lines.append(f"+1{area}{2000000 + offset + i // len(AREAS):07d},name{i}")
    return ("\n".join(lines) + "\n").encode()


async def _account(url: str, name: str) -> str:
    from gateway.db import Database
    from gateway.store.accounts import create_account

    db = await Database.open(url, min_size=1, max_size=1)
    try:
        new = await create_account(db, name=name, concurrent_max=100_000,
                                   calls_per_minute=UNBOUNDED_RATE)
    finally:
        await db.close()
    return new.api_key


async def _campaign(api: Api, csv: bytes, name: str, window: dict | None) -> dict:
    agent, number = await api.references()
    form = {"name": name, "agent_id": agent, "phone_number_id": number,
            "max_concurrent_calls": "100"}
    if window is not None:
        form["calling_window"] = json.dumps(window)
    body, content_type = multipart(form, {"contacts": csv})
    return expect(await api.client.post("/api/v1/campaigns", content=body,
                                        headers={"Content-Type": content_type}), 201)


async def run(ctx) -> list[Row]:
    total = ctx.size(full=30_000, quick=10_000)
    rates: dict[str, list[float]] = {"plain": [], "compliance": []}
    checks: list[str] = []
    async with fresh_database(NAME) as url, Pg.connect(url) as pg:
        async with gateway_process(url, sim_rules=[rule("*")]) as gateway:
            apis = {}
            for kind in rates:
                key = await _account(url, kind)
                apis[kind] = Api(httpx.AsyncClient(
                    base_url=gateway.base_url, timeout=120,
                    headers={"Authorization": f"Bearer {key}"}))
            account = await pg.fetchval("SELECT id FROM accounts WHERE name = 'compliance'")
            # Area 310 is not among AREAS: no contact is on the list.
            await pg.execute(
                "INSERT INTO dnc_numbers (account_id, number, source) "
                "SELECT $1, '+1310' || lpad(g::text, 7, '0'), 'api' "
                "FROM generate_series(1, $2) AS g", account, DNC_NUMBERS)
            listed = await pg.fetchval("SELECT count(*) FROM dnc_numbers WHERE account_id = $1",
                                       account)
            offset = 0
            for round_ in range(ROUNDS):
                # plain, compliance, compliance, plain...: each campaign is dialed on a
                # database that grows with the attempts before it; this order cancels the
                # drift.
                order = list(apis.items())
                for kind, api in order if round_ % 2 == 0 else reversed(order):
                    window = ALWAYS_OPEN if kind == "compliance" else None
                    campaign = await _campaign(api, spread_csv(total, offset),
                                               f"{kind} {round_}", window)
                    offset += total
                    # Each contact is updated twice and a run lasts about a minute, which
                    # autovacuum (60-s naptime) does not reach: without this, every campaign
                    # would dial on the dead rows of all those before it (468k on contacts
                    # by the last one), as no long-running deployment does.
                    await pg.execute("VACUUM (ANALYZE) contacts, attempts, contact_counts, "
                                     "attempt_counts")
                    await trio.sleep(1)
                    started = time.perf_counter()
                    await api.start(campaign["id"])
                    finished = await wait_done(api, pg, campaign["id"], total,
                                               ctx.size(full=240, quick=90), ctx.log)
                    stats = await attempt_stats(pg, campaign["id"])
                    rates[kind].append(stats["rate"])
                    if not (finished and stats["recorded"] == total and stats["open"] == 0):
                        checks.append(f"{kind} {round_}: {stats['recorded']}/{total} "
                                      f"recorded in {time.perf_counter() - started:.0f} s")
                    ctx.log(f"compliance: {kind} round {round_ + 1}: {stats['rate']:.0f} "
                            f"attempts/s")
            zones = await pg.fetchval(
                "SELECT count(*) FROM campaign_zones z JOIN campaigns cp "
                "ON cp.id = z.campaign_id WHERE cp.name = 'compliance 0'")
            for api in apis.values():
                await api.client.aclose()
    plain, compliant = median(rates["plain"]), median(rates["compliance"])
    # Each round's two campaigns ran one after the other: their ratio is free of the
    # drift between rounds (the database grows by every campaign's attempts).
    pairs = [c / p for p, c in zip(rates["plain"], rates["compliance"], strict=True)]
    ratio = math.prod(pairs) ** (1 / len(pairs))
    return [
        Row(NAME, f"attempts/s with a calling window and {DNC_NUMBERS // 1000}k do-not-call "
                  f"numbers, {total // 1000}k contacts", compliant, "/s", plain,
            "the same without (same run, alternating)", "≥ 0.9× without", ratio >= 0.9,
            ratio=ratio,
            note=f"ratio: geometric mean of the {ROUNDS} rounds' ratios "
                 f"({', '.join(f'{r:.2f}' for r in pairs)}); figures: medians; plain "
                 f"{', '.join(f'{r:.0f}' for r in rates['plain'])}"
                 f"; compliance {', '.join(f'{r:.0f}' for r in rates['compliance'])}; "
                 f"{zones} zone sets, {listed} numbers listed"
                 + (f"; NOT ALL RECORDED: {'; '.join(checks)}" if checks else "")),
    ]
