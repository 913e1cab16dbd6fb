"""4. SSE fan-out: 1,000 subscribers to one running campaign.

Subscribers live in load-generator processes (``sse_subscribers``, raw sockets on trio,
split over two processes), never in the gateway's or this process's event loop. The
gateway's tick is ``sse.tick_seconds = 1`` (twice the default rate: more ticks measured).

- Fan-out while dialing: campaigns of ring=talk=0 contacts are dialed four times, in turn
  without and with the subscribers (A B A B), so drift on a shared machine hits both.
  Throughput is attempts per second (started_at to the last ended_at, as in ``dispatch``);
  the ratio is with / without. In the B runs, every tick published after all subscribers
  were connected must reach every subscriber; the spread of a tick is the time between its
  first and last arrival across subscribers (arrival = when the generator read the bytes:
  it includes the generators' own scheduling, so it is an upper bound).
- CPU per tick: a campaign kept running by one endless call; the gateway's CPU
  (/proc utime+stime) over the same number of seconds without and then with the
  subscribers; the difference divided by the ticks delivered.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import trio

from tests.bench.dispatch import attempt_stats
from tests.bench.harness import (API_KEY, PROJECT, Api, Pg, Row, contacts_csv,
                                 fresh_database, gateway_process, maybe_profile, median,
                                 percentile, rule)

NAME = "sse"
PROCESSES = 2
TICK_SECONDS = 1.0
SPREAD_TARGET_MS = 250.0


class Subscribers:
    """The load-generator processes for one campaign."""

    def __init__(self, base_url: str, campaign_id: str, count: int, workdir: Path,
                 stop_after: float = 0) -> None:
        self.args = (base_url, campaign_id, count, workdir, stop_after)
        self.processes: list[trio.Process] = []
        self.outputs: list[Path] = []

    async def __aenter__(self) -> Subscribers:
        base_url, campaign_id, count, workdir, stop_after = self.args
        shares = [count // PROCESSES + (1 if i < count % PROCESSES else 0)
                  for i in range(PROCESSES)]
        for index, share in enumerate(s for s in shares if s):
            out = workdir / f"sse-{uuid.uuid4().hex[:8]}-{index}.json"
            command = [sys.executable, "-m", "tests.bench.sse_subscribers", base_url,
                       campaign_id, API_KEY, str(share), str(out)]
            if stop_after:
                command += ["--stop-after", str(stop_after)]
            process = await trio.lowlevel.open_process(command, cwd=str(PROJECT),
                                                       stdout=subprocess.PIPE)
            self.processes.append(process)
            self.outputs.append(out)
        with trio.fail_after(120):
            for process in self.processes:
                line = b""
                while not line.endswith(b"\n"):
                    data = await process.stdout.receive_some(64)
                    if not data:
                        raise RuntimeError("an SSE load generator exited before ready")
                    line += data
        return self

    async def results(self, timeout: float = 60) -> dict:
        """Wait for the generators to finish; merge their records."""
        with trio.fail_after(timeout):
            for process in self.processes:
                await process.wait()
        merged = {"ready_at": 0.0, "subscribers": []}
        for out in self.outputs:
            data = json.loads(out.read_text())
            merged["ready_at"] = max(merged["ready_at"], data["ready_at"])
            merged["subscribers"] += data["subscribers"]
        return merged

    async def __aexit__(self, *exc) -> None:
        with trio.CancelScope(shield=True):
            for process in self.processes:
                if process.poll() is None:
                    process.kill()
                    await process.wait()
                if process.stdout is not None:
                    await process.stdout.aclose()


def tick_figures(merged: dict, after: float, count: int) -> dict:
    """Ticks first seen after ``after`` (every subscriber connected): who got each, spread."""
    arrivals: dict[str, list[float]] = {}
    for subscriber in merged["subscribers"]:
        for key, at in subscriber["events"]:
            arrivals.setdefault(key, []).append(at)
    ticks = {key: times for key, times in arrivals.items() if min(times) > after}
    spreads = [1000 * (max(times) - min(times)) for times in ticks.values()]
    # updated_at is the gateway's wall clock when the snapshot was read: publish time.
    lags = [1000 * (max(times) - _epoch(key)) for key, times in ticks.items()]
    missing = sum(count - len(times) for times in ticks.values())
    errors = [s["error"] for s in merged["subscribers"] if s["error"]]
    return {"ticks": len(ticks), "missing": missing, "spreads": spreads, "lags": lags,
            "errors": errors, "subscribers": len(merged["subscribers"]),
            "ended": sum(1 for s in merged["subscribers"] if s["ended"])}


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def dial_run(ctx, api: Api, pg: Pg, gateway, contacts: bytes, subscribers: int,
                   workdir: Path, label: str) -> dict:
    campaign = await api.create_campaign(contacts, name=label)
    await trio.sleep(0.5)
    result: dict = {"subscribers": subscribers}
    if subscribers:
        async with Subscribers(gateway.base_url, campaign["id"], subscribers, workdir) as subs:
            cpu = gateway.cpu()
            await api.start(campaign["id"])
            await _wait_completed(api, campaign["id"])
            result["cpu"] = gateway.cpu() - cpu
            merged = await subs.results()
        result["ticks"] = tick_figures(merged, merged["ready_at"], subscribers)
    else:
        cpu = gateway.cpu()
        await api.start(campaign["id"])
        await _wait_completed(api, campaign["id"])
        result["cpu"] = gateway.cpu() - cpu
    result.update(await attempt_stats(pg, campaign["id"]))
    ctx.log(f"sse {label}: {subscribers} subscribers, {result['rate']:.0f} attempts/s")
    return result


async def _wait_completed(api: Api, campaign_id: str, limit: float = 300) -> None:
    with trio.fail_after(limit):
        while (await api.get(campaign_id))["status"] != "completed":
            await trio.sleep(0.2)


async def run(ctx) -> list[Row]:
    count = ctx.size(full=1000, quick=100)
    per_run = ctx.size(full=10_000, quick=2_500)
    window = ctx.size(full=15, quick=6)
    contacts = contacts_csv(per_run)
    rules = [rule("+1213*", talk=3600.0), rule("*")]
    with tempfile.TemporaryDirectory(prefix="bench-sse-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(NAME) as url, Pg.connect(url) as pg, \
                gateway_process(url, sim_rules=rules,
                                env={"GATEWAY_SSE_TICK_SECONDS": str(TICK_SECONDS)}) as gateway, \
                gateway.client() as client:
            api = Api(client)
            # CPU per tick: a campaign that stays running (one endless call).
            idle = await api.create_campaign(contacts_csv(1, area=213), name="sse idle",
                                             max_concurrent_calls=1)
            await api.start(idle["id"])
            await trio.sleep(2)
            cpu = gateway.cpu()
            await trio.sleep(window)
            cpu_without = gateway.cpu() - cpu
            async with maybe_profile(gateway, f"{NAME}-idle", ctx.profile_dir), \
                    Subscribers(gateway.base_url, idle["id"], count, workdir,
                                stop_after=window + 1) as subs:
                cpu = gateway.cpu()
                await trio.sleep(window)
                cpu_with = gateway.cpu() - cpu
                merged = await subs.results()
            idle_ticks = tick_figures(merged, merged["ready_at"], count)
            ctx.log(f"sse idle: {idle_ticks['ticks']} ticks to {count} subscribers, "
                    f"CPU {cpu_without:.2f} s without, {cpu_with:.2f} s with")

            runs = []
            async with maybe_profile(gateway, f"{NAME}-dialing", ctx.profile_dir):
                for index, subscribers in enumerate((0, count, 0, count)):
                    runs.append(await dial_run(ctx, api, pg, gateway, contacts, subscribers,
                                               workdir, f"run {index + 1}"))

    without = [r for r in runs if not r["subscribers"]]
    with_ = [r for r in runs if r["subscribers"]]
    rate_without = sum(r["recorded"] for r in without) / sum(r["seconds"] for r in without)
    rate_with = sum(r["recorded"] for r in with_) / sum(r["seconds"] for r in with_)
    ticks = sum(r["ticks"]["ticks"] for r in with_)
    missing = sum(r["ticks"]["missing"] for r in with_) + idle_ticks["missing"]
    errors = sum(len(r["ticks"]["errors"]) for r in with_) + len(idle_ticks["errors"])
    spreads = [s for r in with_ for s in r["ticks"]["spreads"]]
    lags = [s for r in with_ for s in r["ticks"]["lags"]]
    ended = sum(r["ticks"]["ended"] for r in with_)
    per_tick = (cpu_with - cpu_without) / max(idle_ticks["ticks"], 1)
    worst = max(spreads) if spreads else float("nan")
    return [
        Row(NAME, f"{count} subscribers got every tick (dialing + idle)",
            f"{ticks + idle_ticks['ticks']} ticks, {missing} missed", "", None, "",
            "none missed", missing == 0 and errors == 0 and ticks > 0,
            note=f"{ticks} ticks while dialing, {idle_ticks['ticks']} idle; connection "
                 f"errors {errors}; streams ended with 'end' {ended}/{count * len(with_)}"),
        Row(NAME, "tick delivery spread, worst tick (while dialing)", worst, "ms",
            median(spreads), "median tick", f"< {SPREAD_TARGET_MS:.0f} ms",
            worst < SPREAD_TARGET_MS,
            note=f"first to last arrival across {count} subscribers, {len(spreads)} ticks: "
                 f"p50 {median(spreads):.0f}, p90 {percentile(spreads, 90):.0f}, max "
                 f"{worst:.0f} ms; publish to last arrival p50 {median(lags):.0f} ms; idle "
                 f"campaign: spread p50 {median(idle_ticks['spreads']):.0f}, max "
                 f"{max(idle_ticks['spreads'], default=float('nan')):.0f} ms"),
        Row(NAME, f"gateway CPU per tick for {count} subscribers", 1000 * per_tick, "ms",
            1000 * TICK_SECONDS, "tick period",
            note=f"idle campaign, {window} s each: {cpu_without:.2f} CPU-s without, "
                 f"{cpu_with:.2f} CPU-s with subscribers, {idle_ticks['ticks']} ticks"),
        Row(NAME, f"dialing throughput with {count} subscribers", rate_with, "/s",
            rate_without, "no subscribers", "≥ 0.9× without", rate_with >= 0.9 * rate_without,
            note=f"runs A B A B of {per_run} contacts: "
                 + ", ".join(f"{r['rate']:.0f}" for r in runs) + " attempts/s; gateway CPU "
                 f"per attempt {1000 * sum(r['cpu'] for r in with_) / sum(r['recorded'] for r in with_):.2f}"
                 f" ms with, {1000 * sum(r['cpu'] for r in without) / sum(r['recorded'] for r in without):.2f}"
                 " ms without"),
    ]
