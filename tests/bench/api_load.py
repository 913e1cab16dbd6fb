"""6. API under load: latency of ``GET /api/v1/campaigns/{id}`` and of a contacts page deep
in a 100k-contact campaign (page 900 of 1,000), while that campaign dials at full speed
(sim carrier, ring=talk=0, 100 concurrent).

One keep-alive connection sends one request every 25 ms, in turn to each endpoint, one at
a time (the samples never queue behind each other; a slow answer delays the next request,
none are skipped): first for 5 s on the idle gateway (the reference), then from the start
until the campaign completes (at most 30 s). Also sampled, one turn in seven,
informational: a page filtered by status (``?status=pending``), which counts the matching
contacts on every request.
"""

from __future__ import annotations

import time
import uuid

import trio

from tests.bench.harness import (
    Api,
    Pg,
    Row,
    campaign_status,
    contacts_csv,
    fresh_database,
    gateway_process,
    latency_summary,
    maybe_profile,
    sample_in_turn,
)

NAME = "api"
TARGET_MS = 50.0
EVERY = 0.025


async def run(ctx) -> list[Row]:
    contacts = ctx.size(full=100_000, quick=10_000)
    deep = int(contacts / 100 * 0.9)
    async with fresh_database(NAME) as url, Pg.connect(url) as pg, \
            gateway_process(url) as gateway, gateway.client() as client:
        api = Api(client)
        campaign = (await api.create_campaign(contacts_csv(contacts), name="api"))["id"]
        paths = {"campaign": f"/api/v1/campaigns/{campaign}",
                 "deep page": f"/api/v1/campaigns/{campaign}/contacts?page={deep}",
                 "status page": f"/api/v1/campaigns/{campaign}/contacts?status=pending&page=0"}
        schedule = [(name, paths[name]) for name in
                    ("campaign", "deep page", "campaign", "deep page", "campaign",
                     "deep page", "status page")]
        await trio.sleep(1)

        async def sample(seconds: float | None, profile: str | None = None) -> dict:
            samples: dict[str, list] = {name: [] for name in paths}
            errors: list = []
            async with gateway.client() as sampler, trio.open_nursery() as nursery:
                nursery.start_soon(sample_in_turn, sampler, schedule, EVERY, samples, errors)
                try:
                    if seconds is not None:
                        await trio.sleep(seconds)
                    else:
                        async with maybe_profile(gateway, NAME, ctx.profile_dir):
                            await api.start(campaign)
                            with trio.move_on_after(ctx.size(full=30, quick=10)):
                                while await campaign_status(pg, campaign) != "completed":
                                    await trio.sleep(0.1)
                finally:
                    nursery.cancel_scope.cancel()
            return {"samples": samples, "errors": errors}

        idle = await sample(5)
        began = time.perf_counter()
        loaded = await sample(None)
        seconds = time.perf_counter() - began
        recorded = await pg.fetchval("SELECT count(outcome) FROM attempts WHERE campaign_id = $1",
                                     uuid.UUID(campaign))
    ctx.log(f"api: {recorded} attempts recorded during the {seconds:.1f}-s window")
    rows = []
    for name, label in (("campaign", "GET /campaigns/{id}"),
                        ("deep page", f"GET /campaigns/{{id}}/contacts?page={deep}"),
                        ("status page", "GET .../contacts?status=pending&page=0")):
        under, quiet = latency_summary(loaded["samples"][name]), \
            latency_summary(idle["samples"][name])
        informational = name == "status page"
        rows.append(Row(
            NAME, f"{label} p99 while dialing", under["p99_ms"], "ms", quiet["p99_ms"],
            "idle p99", "" if informational else f"< {TARGET_MS:.0f} ms",
            None if informational else under["p99_ms"] < TARGET_MS,
            note=f"n={under['n']} over {seconds:.1f} s: p50 {under['p50_ms']:.1f}, p99 "
                 f"{under['p99_ms']:.1f}, max {under['max_ms']:.0f} ms; idle p50 "
                 f"{quiet['p50_ms']:.1f} ms; campaign dialing at "
                 f"{recorded / seconds:.0f} attempts/s ({recorded} of {contacts}); failed "
                 f"requests {len(loaded['errors'])}"))
    return rows
