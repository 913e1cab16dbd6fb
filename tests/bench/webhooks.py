"""10. Webhooks: what delivering every event costs dialing, and how fast events go out.

Two accounts with the same caps (that do not bind) on one gateway process, the sim carrier
at zero ring and talk time, ``max_concurrent_calls`` 100. The *hooked* account has an
endpoint taking every event type, a real HTTP receiver in this process (hypercorn on
127.0.0.1, verifying every signature with the ``standardwebhooks`` package, answering 204,
in a process of its own at the delivery worker's lower CPU priority: ``webhook_sink``);
the *plain* account has none. Campaigns of the two kinds alternate (plain, hooked, hooked,
plain...: the drift of a growing database cancels), ``ROUNDS`` of each; each hooked
campaign's events are all delivered before the next campaign starts.

Figures: dialing rate (attempts/s, ``started_at`` to the last ``ended_at``, every attempt
recorded) with webhooks against without, as the geometric mean of each round's ratio
(target ≥ 0.9×); the delivery rate (events acknowledged per second while the campaign
dialed, and from the first to the last acknowledgement); the backlog when dialing ended;
every event delivered once, in order (``call.ended`` before its ``contact.finished``).
Where the time goes, per kind of round: the mean claim and result-batch statement times
(the gateway's ``/metrics`` histograms) and the WAL written per attempt
(``pg_current_wal_lsn`` before and after the dialing).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import attrs
import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.bench.compliance import _account, _campaign
from tests.bench.dispatch import attempt_stats, wait_done
from tests.bench.harness import (
    Api,
    Pg,
    Row,
    contacts_csv,
    expect,
    fresh_database,
    gateway_process,
    median,
    rule,
)

NAME = "webhooks"
ROUNDS = 3


@attrs.define
class Sink:
    """The receiver process: what it acknowledged, read from its file as it grows."""

    process: trio.Process
    out: Path
    url: str = ""
    acked: list[dict] = attrs.field(factory=list)
    _offset: int = 0

    async def set_secret(self, secret: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(secret.encode() + b"\n")

    def read(self) -> list[dict]:
        with open(self.out, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        self.acked += [json.loads(line) for line in complete.splitlines()]
        return self.acked

    async def until(self, count: int) -> None:
        while len(self.read()) < count:
            await trio.sleep(0.1)


@contextlib.asynccontextmanager
async def sink():
    out = Path(tempfile.mkdtemp(prefix="webhook-sink-")) / "acked.jsonl"
    out.touch()
    async with trio.open_nursery() as nursery:
        process = await nursery.start(functools.partial(
            trio.run_process, [sys.executable, "-m", "tests.bench.webhook_sink", str(out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, check=False))
        receiver = Sink(process, out)
        url = b""
        with trio.fail_after(30):
            while not url.endswith(b"\n"):
                url += await process.stdout.receive_some(4096)
        receiver.url = url.decode().strip()
        try:
            yield receiver
        finally:
            await process.stdin.aclose()


@attrs.frozen
class DialCost:
    """Sums so far: claim and record statements (count, seconds) and the WAL position."""

    claims: float
    claim_seconds: float
    records: float
    record_seconds: float
    wal: int

    @classmethod
    async def read(cls, base_url: str, pg: Pg) -> DialCost:
        async with httpx.AsyncClient(timeout=30) as client:
            text = (await client.get(f"{base_url}/metrics")).text
        samples = {sample.name: sample.value
                   for family in text_string_to_metric_families(text)
                   for sample in family.samples if not sample.labels}
        wal = await pg.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
        return cls(samples["gateway_claim_duration_seconds_count"],
                   samples["gateway_claim_duration_seconds_sum"],
                   samples["gateway_record_duration_seconds_count"],
                   samples["gateway_record_duration_seconds_sum"], int(wal))

    def since(self, before: DialCost, attempts: int) -> RoundCost:
        return RoundCost(1000 * (self.claim_seconds - before.claim_seconds)
                         / max(self.claims - before.claims, 1),
                         1000 * (self.record_seconds - before.record_seconds)
                         / max(self.records - before.records, 1),
                         (self.wal - before.wal) / max(attempts, 1))


@attrs.frozen
class RoundCost:
    """One round's mean claim and result-batch statement times, and WAL per attempt."""

    claim_ms: float
    record_ms: float
    wal_per_attempt: float


async def run(ctx) -> list[Row]:
    total = ctx.size(full=20_000, quick=5_000)
    rates: dict[str, list[float]] = {"plain": [], "hooked": []}
    costs: dict[str, list[RoundCost]] = {"plain": [], "hooked": []}
    during: list[float] = []
    overall: list[float] = []
    backlog: list[int] = []
    checks: list[str] = []
    async with fresh_database(NAME) as url, Pg.connect(url) as pg, \
            sink() as receiver, \
            gateway_process(url, sim_rules=[rule("*")]) as gateway:
        apis = {}
        for kind in rates:
            key = await _account(url, kind)
            apis[kind] = Api(httpx.AsyncClient(base_url=gateway.base_url, timeout=120,
                                               headers={"Authorization": f"Bearer {key}"}))
        endpoint = expect(await apis["hooked"].client.post(
            "/api/v1/webhooks", json={"url": receiver.url}), 201)
        await receiver.set_secret(endpoint["secret"])
        for round_ in range(ROUNDS):
            order = list(apis.items())
            for kind, api in order if round_ % 2 == 0 else reversed(order):
                campaign = await _campaign(api, contacts_csv(total),
                                           f"{kind} {round_}", None)
                await pg.execute("VACUUM (ANALYZE) contacts, attempts, contact_counts, "
                                 "attempt_counts, webhook_deliveries")
                await trio.sleep(1)
                acked_before = len(receiver.read())
                cost_before = await DialCost.read(gateway.base_url, pg)
                started = time.perf_counter()
                await api.start(campaign["id"])
                finished = await wait_done(api, pg, campaign["id"], total,
                                           ctx.size(full=240, quick=90), ctx.log)
                dialed_for = time.perf_counter() - started
                costs[kind].append((await DialCost.read(gateway.base_url, pg)).since(
                    cost_before, total))
                stats = await attempt_stats(pg, campaign["id"])
                rates[kind].append(stats["rate"])
                if not (finished and stats["recorded"] == total and stats["open"] == 0):
                    checks.append(f"{kind} {round_}: {stats['recorded']}/{total} recorded")
                if kind == "hooked":
                    got = len(receiver.read()) - acked_before
                    during.append(got / dialed_for)
                    expected = await pg.fetchval(
                        "SELECT count(*) FROM webhook_deliveries WHERE campaign_id = $1",
                        uuid.UUID(campaign["id"]))
                    backlog.append(expected - got)
                    with trio.move_on_after(ctx.size(full=600, quick=300)):
                        await receiver.until(acked_before + expected)
                    mine = receiver.read()[acked_before:]
                    if len(mine) != expected:
                        checks.append(f"hooked {round_}: {len(mine)}/{expected} delivered")
                    else:
                        overall.append(len(mine) / max(mine[-1]["at"] - mine[0]["at"], 1e-9))
                    checks += _order_problems(mine, round_)
                ctx.log(f"webhooks: {kind} round {round_ + 1}: {stats['rate']:.0f} "
                        f"attempts/s" + (f", {during[-1]:.0f} events/s delivered while "
                                         f"dialing, backlog {backlog[-1]}"
                                         if kind == "hooked" else ""))
        for api in apis.values():
            await api.client.aclose()
    pairs = [h / p for p, h in zip(rates["plain"], rates["hooked"], strict=True)]
    ratio = math.prod(pairs) ** (1 / len(pairs))
    unverified = sum(not r["verified"] for r in receiver.acked)
    if unverified:
        checks.append(f"{unverified} requests failed signature verification")
    problems = f"; PROBLEMS: {'; '.join(checks)}" if checks else ""
    return [
        Row(NAME, f"attempts/s with every event delivered to a webhook, {total // 1000}k "
                  "contacts", median(rates["hooked"]), "/s", median(rates["plain"]),
            "the same account kind without (same run, alternating)", "≥ 0.9× without",
            ratio >= 0.9 and not checks, ratio=ratio,
            note=f"ratio: geometric mean of the {ROUNDS} rounds' "
                 f"({', '.join(f'{r:.2f}' for r in pairs)}); plain "
                 f"{', '.join(f'{r:.0f}' for r in rates['plain'])}; hooked "
                 f"{', '.join(f'{r:.0f}' for r in rates['hooked'])}" + problems),
        Row(NAME, "webhook events delivered per second while dialing at full speed",
            median(during), "events/s", note="one receiver, one campaign: its events go one "
            f"at a time, in order; backlog when dialing ended: {backlog}; first to last "
            f"acknowledgement: {', '.join(f'{r:.0f}' for r in overall)} events/s"
            + problems),
        Row(NAME, "result-batch statement (50 results) while dialing, with webhooks",
            median([c.record_ms for c in costs["hooked"]]), "ms",
            median([c.record_ms for c in costs["plain"]]), "without (same run)",
            note="the outbox rows are written by the statement that records the results; "
                 "claim statement with "
                 f"{', '.join(f'{c.claim_ms:.1f}' for c in costs['hooked'])} ms, without "
                 f"{', '.join(f'{c.claim_ms:.1f}' for c in costs['plain'])} ms"),
        Row(NAME, "WAL written per attempt while dialing, with webhooks",
            median([c.wal_per_attempt for c in costs["hooked"]]), "B",
            median([c.wal_per_attempt for c in costs["plain"]]),
            "without (same run)", note="two outbox rows per attempt (call.ended, "
            "contact.finished), payloads built in SQL"),
    ]


def _order_problems(acked, round_: int) -> list[str]:
    """Each event once; each contact's calls before its contact.finished."""
    ids = [r["id"] for r in acked]
    problems = [] if len(set(ids)) == len(ids) else [f"hooked {round_}: duplicates"]
    finished: set[str] = set()
    for r in acked:
        data = r["data"]
        if r["type"] == "contact.finished":
            finished.add(data["contact"]["id"])
        elif r["type"] == "call.ended" and data["call"]["contact_id"] in finished:
            problems.append(f"hooked {round_}: a call.ended after its contact.finished")
            break
    return problems
