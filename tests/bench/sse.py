"""4. SSE fan-out: 1,000 subscribers to one running campaign.

Subscribers live in load-generator processes (``sse_subscribers``: raw sockets on trio,
split over two processes), never in the gateway's or this process's event loop. The
gateway ticks at its default ``sse.tick_seconds`` (2 s): what a deployment pays. (At 1 s
ticks the gateway's cost per tick is the same, so its share of the CPU doubles; the
performance log in tests/bench/README.md gives that figure too.)

Two campaigns of ring=talk=0 contacts; each is dialed for four windows of equal length,
paused in between, two with the subscribers connected (B) and two without (A), in the
order A B B A (first campaign) B A A B (second): drift on a shared machine (a growing
database) hits both sides alike. Before each window the bench vacuums ``contacts`` and
``attempts`` (a few hundred ms): otherwise autovacuum starts in whichever window crosses
its threshold and takes most of a core for seconds on this 2-core machine, a step that
no window order cancels. The campaigns are large enough that no window reaches a
campaign's end (whose tail is slower).
- Throughput: attempts recorded in the window / its length; the ratio is with / without.
- Every tick: each snapshot published after every subscriber was connected (its
  ``updated_at`` is the gateway's publish time) must reach every subscriber.
- Spread: for each tick published while dialing, the time between its first and its last
  arrival across subscribers (arrival = when a generator read the bytes, so it includes
  the generators' own scheduling: an upper bound). "Publish to last arrival" is reported too.
- CPU per tick: the first campaign paused (nothing dialing), the gateway's CPU
  (/proc utime+stime) over the same number of seconds without and then with the
  subscribers connected; the difference divided by the ticks delivered in that window.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import trio

from gateway.config import SseSettings
from tests.bench.harness import (
    API_KEY,
    PROJECT,
    Api,
    Pg,
    Row,
    campaign_status,
    contacts_csv,
    cpu_seconds,
    expect,
    fresh_database,
    gateway_process,
    maybe_profile,
    median,
    percentile,
)

NAME = "sse"
PROCESSES = 2
TICK_SECONDS = SseSettings().tick_seconds
SPREAD_TARGET_MS = 250.0


class Subscribers:
    """The load-generator processes for one campaign: connected on entry (every
    subscriber has its first snapshot), stopped with SIGTERM by :meth:`stop`."""

    def __init__(self, base_url: str, campaign_id: str, count: int, workdir: Path) -> None:
        self.base_url, self.campaign_id, self.count, self.workdir = (base_url, campaign_id,
                                                                     count, workdir)
        self.processes: list[trio.Process] = []
        self.outputs: list[Path] = []

    async def __aenter__(self) -> Subscribers:
        shares = [self.count // PROCESSES + (1 if i < self.count % PROCESSES else 0)
                  for i in range(PROCESSES)]
        for index, share in enumerate(s for s in shares if s):
            out = self.workdir / f"sse-{uuid.uuid4().hex[:8]}-{index}.json"
            command = [sys.executable, "-m", "tests.bench.sse_subscribers", self.base_url,
                       self.campaign_id, API_KEY, str(share), str(out)]
            self.processes.append(await trio.lowlevel.open_process(
                command, cwd=str(PROJECT), stdout=subprocess.PIPE))
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

    def cpu(self) -> float:
        """CPU seconds the generators have used so far."""
        return sum(cpu_seconds(process.pid) for process in self.processes
                   if process.poll() is None)

    async def stop(self) -> dict:
        """Stop the generators; their records merged (``ready_at``: the last to be ready)."""
        with trio.fail_after(60):
            for process in self.processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in self.processes:
                await process.wait()
        merged = {"ready_at": 0.0, "stopped_at": float("inf"), "subscribers": []}
        for out in self.outputs:
            data = json.loads(out.read_text())
            merged["ready_at"] = max(merged["ready_at"], data["ready_at"])
            merged["stopped_at"] = min(merged["stopped_at"], data["stopped_at"])
            merged["subscribers"] += data["subscribers"]
        return merged

    async def __aexit__(self, *exc) -> None:
        with trio.CancelScope(shield=True):
            for process in self.processes:
                if process.poll() is None:
                    process.kill()
                    await process.wait()
                await process.stdout.aclose()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def ticks_of(merged: dict) -> dict[str, list[float]]:
    """Arrival times of each tick (by its updated_at) published after every subscriber was
    connected and at least 0.5 s before the generators stopped."""
    arrivals: dict[str, list[float]] = {}
    for subscriber in merged["subscribers"]:
        for key, at in subscriber["events"]:
            arrivals.setdefault(key, []).append(at)
    return {key: times for key, times in arrivals.items()
            if merged["ready_at"] < _epoch(key) < merged["stopped_at"] - 0.5}


def tick_figures(ticks: dict[str, list[float]], count: int,
                 window: tuple[float, float] | None = None) -> dict:
    if window is not None:
        ticks = {key: times for key, times in ticks.items()
                 if window[0] <= _epoch(key) <= window[1]}
    return {"ticks": len(ticks),
            "missing": sum(count - len(times) for times in ticks.values()),
            "spreads": [1000 * (max(times) - min(times)) for times in ticks.values()],
            "lags": [1000 * (max(times) - _epoch(key)) for key, times in ticks.items()]}


async def _recorded(pg: Pg, campaign_id: str) -> int:
    return await pg.fetchval("SELECT count(outcome) FROM attempts WHERE campaign_id = $1",
                             uuid.UUID(campaign_id))


async def dial_window(api: Api, pg: Pg, gateway, campaign_id: str, verb: str,
                      seconds: float) -> dict:
    """Start or resume the campaign, let it dial ``seconds`` (or until it completes),
    pause it and let its calls drain: attempts recorded per second of the window."""
    cid = uuid.UUID(campaign_id)
    before = await _recorded(pg, campaign_id)
    cpu = gateway.cpu()
    began, wall_began = time.perf_counter(), time.time()
    expect(await api.client.post(f"/api/v1/campaigns/{campaign_id}/{verb}"), 200)
    completed = False
    with trio.move_on_after(seconds):
        while not completed:
            await trio.sleep(0.1)
            completed = await campaign_status(pg, campaign_id) == "completed"
    if not completed:
        response = await api.client.post(f"/api/v1/campaigns/{campaign_id}/pause")
        if response.status_code != 200:  # it completed just now
            expect(await api.client.get(f"/api/v1/campaigns/{campaign_id}"), 200)
    ended, wall_ended = time.perf_counter(), time.time()
    while await pg.fetchval("SELECT count(*) FROM attempts WHERE campaign_id = $1 "
                            "AND outcome IS NULL", cid):
        await trio.sleep(0.05)
    attempts = await _recorded(pg, campaign_id) - before
    return {"attempts": attempts, "seconds": ended - began, "rate": attempts / (ended - began),
            "cpu": gateway.cpu() - cpu, "window": (wall_began, wall_ended),
            "completed": completed}


async def run(ctx) -> list[Row]:
    count = ctx.size(full=1000, quick=100)
    contacts = ctx.size(full=250_000, quick=100_000)
    window = ctx.size(full=5.0, quick=2.0)
    idle_window = ctx.size(full=10.0, quick=5.0)
    csv = contacts_csv(contacts)
    with tempfile.TemporaryDirectory(prefix="bench-sse-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(NAME) as url, Pg.connect(url) as pg, \
                gateway_process(url, env={"GATEWAY_SSE_TICK_SECONDS": str(TICK_SECONDS)}
                                ) as gateway, gateway.client() as client:
            api = Api(client)
            first = (await api.create_campaign(csv, name="sse 1"))["id"]
            second = (await api.create_campaign(csv, name="sse 2"))["id"]
            await trio.sleep(1)
            runs: list[tuple[int, dict]] = []
            sessions: list[tuple[dict, list[dict]]] = []  # (merged records, its windows)
            idle: dict = {}

            async def dial(campaign_id: str, verb: str, subs: Subscribers | None) -> dict:
                subscribers = subs.count if subs else 0
                await pg.execute("VACUUM contacts, attempts")
                generators = subs.cpu() if subs else 0.0
                result = await dial_window(api, pg, gateway, campaign_id, verb, window)
                result["generators_cpu"] = (subs.cpu() - generators) if subs else 0.0
                runs.append((subscribers, result))
                ctx.log(f"sse: {subscribers} subscribers, {result['attempts']} attempts in "
                        f"{result['seconds']:.1f} s ({result['rate']:.0f}/s)")
                return result

            async def watched(campaign_id: str, verbs: list[str], *, measure_idle=False):
                """Windows dialed with the subscribers connected (one connection for all)."""
                async with Subscribers(gateway.base_url, campaign_id, count, workdir) as subs:
                    if measure_idle:
                        async with maybe_profile(gateway, f"{NAME}-idle", ctx.profile_dir,
                                                 rate=1000):
                            idle["began"], cpu = time.time(), gateway.cpu()
                            await trio.sleep(idle_window)
                            idle["cpu_with"], idle["ended"] = gateway.cpu() - cpu, time.time()
                    results = []
                    for verb in verbs:
                        async with maybe_profile(gateway, f"{NAME}-dialing-{len(sessions)}",
                                                 ctx.profile_dir):
                            results.append(await dial(campaign_id, verb, subs))
                    await trio.sleep(1.5 * TICK_SECONDS)
                    sessions.append((await subs.stop(), results))

            # A = no subscribers, B = subscribers. First campaign A B B A (with the idle CPU
            # measured while it is paused, before and after the subscribers connect),
            # second B A A B: both conditions sit at the same mean position in the run.
            await dial(first, "start", None)
            cpu = gateway.cpu()
            await trio.sleep(idle_window)
            idle["cpu_without"] = gateway.cpu() - cpu
            await watched(first, ["resume", "resume"], measure_idle=True)
            await dial(first, "resume", None)
            await watched(second, ["start"])
            await dial(second, "resume", None)
            await dial(second, "resume", None)
            await watched(second, ["resume"])

    cpu_with, cpu_without = idle["cpu_with"], idle["cpu_without"]
    idle_figures = tick_figures(ticks_of(sessions[0][0]), count, (idle["began"], idle["ended"]))
    dialing = [tick_figures(ticks_of(merged), count, result["window"])
               for merged, results in sessions for result in results]
    every = [tick_figures(ticks_of(merged), count) for merged, _ in sessions]
    ticks = sum(f["ticks"] for f in every)
    missing = sum(f["missing"] for f in every)
    errors = [s["error"] for merged, _ in sessions
              for s in merged["subscribers"] if s["error"]]
    spreads = [s for f in dialing for s in f["spreads"]]
    lags = [s for f in dialing for s in f["lags"]]
    worst = max(spreads, default=float("nan"))
    without = [r for n, r in runs if not n]
    with_ = [r for n, r in runs if n]
    rate_without = sum(r["attempts"] for r in without) / sum(r["seconds"] for r in without)
    rate_with = sum(r["attempts"] for r in with_) / sum(r["seconds"] for r in with_)
    per_tick = (cpu_with - cpu_without) / max(idle_figures["ticks"], 1)
    generators_share = (sum(r["generators_cpu"] for r in with_)
                        / sum(r["seconds"] for r in with_))

    def cpu_per_attempt(results) -> float:
        return 1000 * sum(r["cpu"] for r in results) / max(sum(r["attempts"] for r in results), 1)

    return [
        Row(NAME, f"{count} subscribers got every tick", f"{ticks} ticks, {missing} missed",
            "", None, "", "none missed", missing == 0 and not errors and ticks > 0,
            note=f"ticks published after all {count} were connected: {ticks} "
                 f"({sum(f['ticks'] for f in dialing)} while dialing, "
                 f"{idle_figures['ticks']} while paused); connection errors {len(errors)}"
                 + (f" (first: {errors[0]})" if errors else "")),
        Row(NAME, "tick delivery spread while dialing, worst tick", worst, "ms",
            median(spreads), "median tick", f"< {SPREAD_TARGET_MS:.0f} ms",
            worst < SPREAD_TARGET_MS,
            note=f"first to last arrival across {count} subscribers, {len(spreads)} ticks: "
                 f"p50 {median(spreads):.0f}, p90 {percentile(spreads, 90):.0f}, max "
                 f"{worst:.0f} ms; publish to last arrival p50 {median(lags):.0f}, max "
                 f"{max(lags, default=float('nan')):.0f} ms; paused campaign: spread p50 "
                 f"{median(idle_figures['spreads']):.0f}, max "
                 f"{max(idle_figures['spreads'], default=float('nan')):.0f} ms",
            data={"spreads_ms_dialing": [round(x, 1) for x in spreads],
                  "spreads_ms_paused": [round(x, 1) for x in idle_figures["spreads"]],
                  "publish_to_last_ms_dialing": [round(x, 1) for x in lags]}),
        Row(NAME, f"gateway CPU per tick, {count} subscribers", 1000 * per_tick, "ms",
            1000 * TICK_SECONDS, "tick period",
            note=f"campaign paused, {idle_window:g} s each: {cpu_without:.2f} CPU-s without, "
                 f"{cpu_with:.2f} CPU-s with the subscribers, {idle_figures['ticks']} ticks"),
        Row(NAME, f"dialing throughput with {count} subscribers", rate_with, "/s",
            rate_without, "no subscribers", "≥ 0.9× without", rate_with >= 0.9 * rate_without,
            note=f"{window:g}-s windows, A B B A B A A B: "
                 + ", ".join(f"{r['rate']:.0f}{'' if n else ' (none)'}" for n, r in runs)
                 + f" attempts/s; gateway CPU per attempt {cpu_per_attempt(with_):.3f} ms "
                   f"with, {cpu_per_attempt(without):.3f} ms without; the load generators "
                   f"used {100 * generators_share:.0f}% of a core during the windows with "
                   "subscribers (same 2 cores)"),
    ]
