"""5. SIP: bridged calls per second the gateway completes, at 100 concurrent calls. Each
call is two dialogs (RFC 3725 third-party call control): the contact's, through a sipp
UAS as the trunk (``tests/bench/sip/uas.xml``: ring, answer with the offer, 200 to the
BYE), and the agent's, to a second sipp UAS (``tests/bench/sip/agent.xml``: answer the
offer at once, 200 to the BYE); the gateway hangs up both legs 100 ms after the contact's
answer. The reference is sipp's own UAC (``sipp -sn uac -l 100 -d 100 -r 5000``) driving
the same trunk scenario in the same run, one dialog per call: reference, gateway,
reference again. The reference figure is the faster of the two: a sipp run slowed by
retransmission timeouts (UDP drops while the machine is busy; it then also reports failed
calls) says nothing about what sipp can do, and would flatter the gateway. ``-r 5000`` is
far above what 100 concurrent calls of 100 ms allow, so the concurrency binds (a much
higher ``-r`` makes sipp abort calls on retransmission timeouts). The target is 0.5x the
reference: a bridged call is two dialogs, twice the messages of sipp's one.

The gateway runs the SIP adapter (``max_call_seconds = 0.1``: it sends the BYEs), one
campaign of N contacts with ``max_concurrent_calls = 100``, caps that do not bind, whose
agent's ``sip_uri`` is the sipp agent. Its rate: N / (campaign ``started_at`` to the last
attempt's ``ended_at``). sipp's: its final ``CallRate(C)`` statistic (calls / elapsed
time). Failed calls: every attempt whose outcome is not ``answered`` (connected to the
agent), plus the trunk's and the agent's ``FailedCall(C)``.

Then memory per live bridged call: 5,000 calls up at once (50 campaigns of 100, the
API's per-campaign limit, on an account capped at 5,000, one campaign started every 0.5 s), each two
dialogs held open
(``max_call_seconds`` far above the run), against the same two sipp peers. The figure is
the gateway's VmRSS once every call is connected (the trunk's and the agent's sipp count
them, and PostgreSQL's attempts without an outcome), minus its RSS with the campaigns
created but not started, divided by the calls. Then the gateway is stopped, which ends
both legs of every call (BYE), and sipp must report no failed call.
"""

from __future__ import annotations

import csv
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import trio

from tests.bench.dispatch import attempt_stats
from tests.bench.harness import (
    HERE,
    Api,
    Pg,
    Row,
    campaign_status,
    contacts_csv,
    expect,
    fresh_database,
    gateway_process,
    maybe_profile,
)
from tests.ports import free_udp_port, udp_port_bound

NAME = "sip"
CONCURRENT = 100
PER_CAMPAIGN = 100  # the API's limit on a campaign's max_concurrent_calls
# The live calls ramp up at ~200 dials/s (a campaign of 100 started every 0.5 s): a
# burst of 5,000 INVITEs at once is more than the sipp agent answers within the agent
# answer timeout (seen: 270 of 5,000 connected).
START_EVERY_SECONDS = 0.5
TALK_MS = 100
SCENARIO = HERE / "sip" / "uas.xml"
AGENT_SCENARIO = HERE / "sip" / "agent.xml"


def statistics(path: Path) -> dict[str, str]:
    """sipp's last ``-trace_stat`` row (written at exit)."""
    with open(path, newline="") as stats:
        rows = list(csv.reader(stats, delimiter=";"))
    # strict=False: a sipp stopped by a signal may leave its last row short; keep what pairs.
    return dict(zip(rows[0], rows[-1], strict=False))


class Uas:
    """``sipp`` as the UAS of ``scenario`` (the trunk's by default) for ``calls`` calls, on
    a free port of 127.0.0.1."""

    def __init__(self, workdir: Path, calls: int, timeout: int,
                 scenario: Path = SCENARIO) -> None:
        self.workdir, self.calls, self.timeout = workdir, calls, timeout
        self.scenario = scenario
        self.port = free_udp_port()
        self.stats = workdir / f"{scenario.stem}-{self.port}.csv"
        self.process: trio.Process | None = None

    async def __aenter__(self) -> Uas:
        command = ["sipp", "-sf", str(self.scenario), "-i", "127.0.0.1", "-p", str(self.port),
                   "-mp", str(free_udp_port()), "-m", str(self.calls),
                   "-timeout", f"{self.timeout}s", "-timeout_error", "-nostdin",
                   "-trace_stat", "-stf", str(self.stats), "-fd", "1",
                   # A carrier's or agent platform's socket, not sipp's 64 kB default: a
                   # shutdown sends 10,000 BYEs within milliseconds.
                   "-buff_size", str(4 * 1024 * 1024)]
        self.process = await trio.lowlevel.open_process(
            command, cwd=str(self.workdir), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with trio.fail_after(5):
            while not udp_port_bound(self.port):
                if self.process.poll() is not None:
                    raise RuntimeError(f"sipp UAS exited at once ({self.process.returncode})")
                await trio.sleep(0.01)
        return self

    async def wait(self, seconds: float) -> dict[str, str]:
        with trio.fail_after(seconds):
            await self.process.wait()
        return statistics(self.stats)

    async def settle(self, seconds: float) -> dict[str, str]:
        """Its statistics once it has finished its calls, or after ``seconds`` (then
        ``CurrentCall`` says how many it still holds; it is stopped)."""
        with trio.move_on_after(seconds):
            await self.process.wait()
        if self.process.poll() is None:
            await trio.sleep(1.5)  # the next -fd 1 row
            rows = statistics(self.stats)
            self.process.kill()
            return rows
        return statistics(self.stats)

    async def __aexit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            with trio.CancelScope(shield=True):
                await self.process.wait()


async def sipp_reference(workdir: Path, calls: int) -> dict:
    """sipp's UAC against the UAS: calls/s (its CallRate(C)), failures on both sides."""
    async with Uas(workdir, calls, timeout=120) as uas:
        stats_file = workdir / f"uac-{uuid.uuid4().hex[:6]}.csv"
        command = ["sipp", "-sn", "uac", f"127.0.0.1:{uas.port}", "-i", "127.0.0.1",
                   "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
                   "-m", str(calls), "-l", str(CONCURRENT), "-r", "5000",
                   "-d", str(TALK_MS), "-timeout", "120s", "-timeout_error", "-nostdin",
                   "-trace_stat", "-stf", str(stats_file)]
        started = time.perf_counter()
        result = await trio.run_process(command, cwd=str(workdir), check=False,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        uac = statistics(stats_file)
        uas_stats = await uas.wait(10)
    return {"rate": float(uac["CallRate(C)"]), "wall_rate": calls / wall,
            "successful": int(uac["SuccessfulCall(C)"]),
            "failed": int(uac["FailedCall(C)"]) + int(uas_stats["FailedCall(C)"]),
            "exit": result.returncode}


async def live_bridged_memory(ctx, workdir: Path) -> list[Row]:
    """RSS per live bridged call, with ``ctx.size(5,000)`` calls up at once."""
    live = ctx.size(full=5_000, quick=500)
    campaigns = live // PER_CAMPAIGN
    async with fresh_database(f"{NAME}_live") as url, Pg.connect(url) as pg, \
            Uas(workdir, live, timeout=600) as uas, \
            Uas(workdir, live, timeout=600, scenario=AGENT_SCENARIO) as agent, \
            gateway_process(url, concurrent_max=live, env={
                "GATEWAY_TELEPHONY_ADAPTER": "sip",
                "GATEWAY_TELEPHONY_SIP_PROXY": f"127.0.0.1:{uas.port}",
                "GATEWAY_TELEPHONY_SIP_BIND_HOST": "127.0.0.1",
                "GATEWAY_TELEPHONY_SIP_BIND_PORT": "0",
                "GATEWAY_TELEPHONY_SIP_RING_TIMEOUT_SECONDS": "30",
                "GATEWAY_TELEPHONY_SIP_MAX_CALL_SECONDS": "3600",
                # Calls are ended (BYE to both legs) once this grace is over.
                "GATEWAY_HTTP_SHUTDOWN_GRACE_SECONDS": "2",
            }) as gateway, gateway.client() as client:
        api = Api(client)
        agent_id, _ = await api.references()
        expect(await client.patch(f"/api/v1/agents/{agent_id}", json={
            "sip_uri": f"sip:agent@127.0.0.1:{agent.port}"}), 200)
        ids = [(await api.create_campaign(contacts_csv(PER_CAMPAIGN),
                                          name=f"live {i}",
                                          max_concurrent_calls=PER_CAMPAIGN))["id"]
               for i in range(campaigns)]
        await trio.sleep(1)
        idle_rss = gateway.rss()
        started = time.perf_counter()
        for campaign_id in ids:
            await api.start(campaign_id)
            await trio.sleep(START_EVERY_SECONDS)
        connected = 0
        with trio.move_on_after(ctx.size(full=240, quick=60)):
            while connected < live:
                await trio.sleep(0.5)
                # Connected: the agent answered (its sipp counts calls it has taken) and no
                # attempt has ended.
                open_attempts = await pg.fetchval(
                    "SELECT count(*) FROM attempts WHERE outcome IS NULL")
                connected = min(open_attempts, _current_calls(agent))
        ramp = time.perf_counter() - started
        await trio.sleep(2)
        live_rss = gateway.rss()
        ended = await pg.fetchval("SELECT count(*) FROM attempts WHERE outcome IS NOT NULL")
        shutdown = await gateway.stop(grace=60)
        outcomes = {row["outcome"]: row["n"] for row in await pg.fetch(
            "SELECT outcome, count(*) AS n FROM attempts GROUP BY outcome")}
        # Every call got its BYEs if both peers finish their calls; what they still hold
        # after 20 s was left open by the shutdown.
        uas_stats = await uas.settle(20)
        agent_stats = await agent.settle(20)
    per_call = (live_rss - idle_rss) / max(connected, 1)
    left_open = int(uas_stats["CurrentCall"]) + int(agent_stats["CurrentCall"])
    failed = int(uas_stats["FailedCall(C)"]) + int(agent_stats["FailedCall(C)"]) + ended
    return [
        Row(NAME, f"RSS per live bridged call ({connected:,} up at once, 2 dialogs each)",
            per_call / 1024, "KiB", None, "", "reported", connected == live,
            note=f"RSS {idle_rss / 1e6:.0f} MB idle, {live_rss / 1e6:.0f} MB with {connected} "
                 f"bridged calls ({campaigns} campaigns x {PER_CAMPAIGN}), all up "
                 f"{ramp:.1f} s after the first start; shutdown ended them in "
                 f"{shutdown:.1f} s, attempts then {outcomes}"),
        Row(NAME, "live bridged calls: calls ended early or failed at a peer", failed, "",
            None, "", "0", failed == 0,
            note=f"ended before the stop: {ended}; trunk failed {uas_stats['FailedCall(C)']}, "
                 f"agent failed {agent_stats['FailedCall(C)']}"),
        Row(NAME, "live bridged calls: dialogs left open at the peers after the shutdown",
            left_open, "", None, "", "0", left_open == 0,
            note=f"trunk {uas_stats['CurrentCall']}, agent {agent_stats['CurrentCall']} "
                 f"calls still up 20 s after the gateway stopped (its shutdown BYEs both "
                 f"legs of {connected} calls within its grace period)"),
    ]


def _current_calls(uas: Uas) -> int:
    """The calls sipp has taken so far (its statistics file, rewritten as it runs)."""
    try:
        return int(statistics(uas.stats).get("IncomingCall(C)", "0"))
    except (OSError, IndexError, ValueError):
        return 0


async def run(ctx) -> list[Row]:
    calls = ctx.size(full=5_000, quick=500)
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as tmp:
        workdir = Path(tmp)
        references = [await sipp_reference(workdir, calls)]
        ctx.log(f"sip: sipp UAC {references[0]['rate']:.0f} calls/s")
        async with fresh_database(NAME) as url, Pg.connect(url) as pg, \
                Uas(workdir, calls, timeout=300) as uas, \
                Uas(workdir, calls, timeout=300, scenario=AGENT_SCENARIO) as agent, \
                gateway_process(url, env={
                    "GATEWAY_TELEPHONY_ADAPTER": "sip",
                    "GATEWAY_TELEPHONY_SIP_PROXY": f"127.0.0.1:{uas.port}",
                    "GATEWAY_TELEPHONY_SIP_BIND_HOST": "127.0.0.1",
                    "GATEWAY_TELEPHONY_SIP_BIND_PORT": "0",
                    "GATEWAY_TELEPHONY_SIP_RING_TIMEOUT_SECONDS": "5",
                    "GATEWAY_TELEPHONY_SIP_MAX_CALL_SECONDS": str(TALK_MS / 1000),
                }) as gateway, gateway.client() as client:
            api = Api(client)
            agent_id, _ = await api.references()
            expect(await client.patch(f"/api/v1/agents/{agent_id}", json={
                "sip_uri": f"sip:agent@127.0.0.1:{agent.port}"}), 200)
            campaign = await api.create_campaign(contacts_csv(calls), name="sip",
                                                 max_concurrent_calls=CONCURRENT)
            cpu = gateway.cpu()
            async with maybe_profile(gateway, NAME, ctx.profile_dir):
                await api.start(campaign["id"])
                with trio.fail_after(ctx.size(full=300, quick=120)):
                    while await campaign_status(pg, campaign["id"]) != "completed":
                        await trio.sleep(0.25)
            cpu = gateway.cpu() - cpu
            stats = await attempt_stats(pg, campaign["id"])
            outcomes = {row["outcome"]: row["n"] for row in await pg.fetch(
                "SELECT outcome, count(*) AS n FROM attempts WHERE campaign_id = $1 "
                "GROUP BY outcome", uuid.UUID(campaign["id"]))}
            uas_stats = await uas.wait(30)
            agent_stats = await agent.wait(30)
        ctx.log(f"sip: gateway {stats['rate']:.0f} bridged calls/s")
        references.append(await sipp_reference(workdir, calls))
        ctx.log(f"sip: sipp UAC {references[1]['rate']:.0f} calls/s")

        memory = await live_bridged_memory(ctx, workdir)

    reference = max(r["rate"] for r in references)
    answered = outcomes.get("answered", 0)
    failed = stats["attempts"] - answered + int(uas_stats["FailedCall(C)"]) \
        + int(agent_stats["FailedCall(C)"])
    sipp_failed = sum(r["failed"] for r in references)
    return [
        Row(NAME, f"bridged calls/s (2 dialogs each), {CONCURRENT} concurrent, "
                  f"{TALK_MS} ms talk",
            stats["rate"], "/s", reference, "sipp -sn uac, same UAS (1 dialog)",
            "≥ 0.5× sipp",
            stats["rate"] >= 0.5 * reference,
            note=f"{calls} calls each; sipp runs before/after (the faster one counts): "
                 + ", ".join(f"{r['rate']:.0f} ({r['failed']} failed)" for r in references)
                 + f" calls/s; gateway {stats['seconds']:.1f} s, CPU "
                   f"{1000 * cpu / max(stats['attempts'], 1):.2f} ms per call"),
        Row(NAME, "failed calls (gateway outcomes ≠ answered + trunk and agent failures)",
            failed, "", sipp_failed, "sipp UAC runs", "0", failed == 0,
            note=f"gateway outcomes {outcomes}; trunk successful "
                 f"{uas_stats['SuccessfulCall(C)']}, failed {uas_stats['FailedCall(C)']}; "
                 f"agent successful {agent_stats['SuccessfulCall(C)']}, "
                 f"failed {agent_stats['FailedCall(C)']}"),
        *memory,
    ]
