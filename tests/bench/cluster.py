"""7. Several gateway processes on one database (account leases).

Three measurements, each on its own fresh database:

1. **Dispatch throughput with 1, 2 and 3 processes.** The same workload each time:
   ``ACCOUNTS`` accounts (the bootstrap one and others created with
   ``gateway.store.accounts.create_account``, caps that do not bind), each with an agent, a
   number and a campaign of N contacts, the sim carrier at zero ring and talk time,
   ``max_concurrent_calls`` 100. Leases exist only for accounts with something to dial, so
   each account first gets a *holder* campaign (one contact, one endless call,
   ``max_concurrent_calls`` 1): once every account's lease is held by a live process and
   spread ``ceil(accounts / processes)`` a process, the measured campaigns are started (all
   at once, each through a different process's API). The figure: attempts per second of all
   of them, from the first campaign's ``started_at`` to the last attempt's ``ended_at``,
   every attempt durably recorded, and every attempt made under its account's one lease
   (its ``owner`` and ``lease_epoch``). Also gateway CPU per attempt summed over the
   processes, and the PostgreSQL backends' CPU per attempt (``BackendCpu``: every backend
   of the database), from /proc. On a 2-vCPU machine with PostgreSQL on the same cores,
   more processes share the same two cores: this shows what the leases cost, not scaling.
2. **Takeover after kill -9.** Two processes at the default ``engine.lease_seconds``
   (15 s), ``TAKEOVER_ACCOUNTS`` accounts dialing 30-s calls. Once the leases are spread,
   the owner of an account is killed with SIGKILL just after one of its renewals (so its
   leases expire a whole lease after the kill: the worst case of the kill's timing);
   measured from the kill to the first attempt another process dials for each of its
   accounts (``dialed_at``, ``owner`` not the killed one), and to the lease's new
   ``acquired_at``. The survivor notices the expiry at its next look, at most one renewal
   period (``lease_seconds / 5``) later: how far its looks are from the killed process's
   is reported.
3. **Idle cost.** One process, no campaign, twice: at the shipped
   ``engine.scheduler_poll_seconds`` (1 s; the other benchmarks run at 0.2), and with the
   supervisor's poll loop parked (3600 s), which leaves the lease actor (a renewal and a
   look at the demand every ``lease_seconds / 5``, 3 s) and the orphan sweep (every 10 s).
   Gateway CPU per second, from /proc, and the database's transactions per second
   (``xact_commit + xact_rollback`` of ``pg_stat_database``, read from another database so
   the reads do not count; ``pg_stat_statements`` is not loaded on this server). asyncpg
   resets a pooled connection when it is released, in a transaction of its own: each
   statement of the gateway counts twice. The reference: the lease actor's share alone.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from datetime import UTC, datetime

import httpx
import trio

from tests.bench.harness import (
    ADMIN_URL,
    API_KEY,
    UNBOUNDED_RATE,
    Api,
    BackendCpu,
    Pg,
    Row,
    contacts_csv,
    cpu_seconds,
    fresh_database,
    gateway_process,
    maybe_profile,
    rule,
)

NAME = "cluster"
ACCOUNTS = 6
TAKEOVER_ACCOUNTS = 4
LEASE_SECONDS = 15.0  # engine.lease_seconds' default: the takeover runs at it
RENEWALS_PER_LEASE = 5  # gateway.engine.leases: a renewal every lease_seconds / 5
TAKEOVER_SLACK = 5.0  # target: takeover within the lease + 5 s
PARKED_POLL_SECONDS = 3600.0  # the supervisor's poll loop out of the way
SETTLE_SECONDS = 12.0  # an idle process is measured from this long after start
HOLDER_AREA = 213  # the holder campaigns' numbers: calls that never end
RULES = [rule(f"+1{HOLDER_AREA}*", talk=3600.0), rule("*")]


# -- helpers ------------------------------------------------------------------------------

async def create_accounts(url: str, count: int) -> list[str]:
    """API keys of ``count`` accounts: the bootstrap one and ``count - 1`` new ones."""
    from gateway.db import Database
    from gateway.store.accounts import create_account

    keys = [API_KEY]
    db = await Database.open(url, min_size=1, max_size=1)
    try:
        for index in range(1, count):
            new = await create_account(db, name=f"bench {index}", concurrent_max=100_000,
                                       calls_per_minute=UNBOUNDED_RATE)
            keys.append(new.api_key)
    finally:
        await db.close()
    return keys


def api_for(gateway, key: str) -> Api:
    return Api(httpx.AsyncClient(base_url=gateway.base_url, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}))


async def peers(pg: Pg) -> dict[int, uuid.UUID]:
    """Live processes by pid (``gateway_peers.name`` is ``host:pid``)."""
    rows = await pg.fetch("SELECT id, name FROM gateway_peers "
                          "WHERE expires_at > now() AND NOT stopping")
    return {int(row["name"].rsplit(":", 1)[1]): row["id"] for row in rows}


async def held_leases(pg: Pg) -> dict[uuid.UUID, uuid.UUID]:
    """Account → owner, for the live leases of live processes."""
    rows = await pg.fetch(
        "SELECT l.account_id, l.owner FROM account_leases l "
        "JOIN gateway_peers p ON p.id = l.owner "
        "WHERE l.expires_at > now() AND p.expires_at > now()")
    return {row["account_id"]: row["owner"] for row in rows}


async def wait_registered(pg: Pg, processes: int, limit: float = 30) -> None:
    with trio.move_on_after(limit):
        while len(await peers(pg)) < processes:
            await trio.sleep(0.1)
        return
    raise RuntimeError(f"fewer than {processes} processes registered in {limit:.0f} s")


async def wait_spread(pg: Pg, accounts: int, processes: int, limit: float) -> tuple[
        dict[uuid.UUID, uuid.UUID], float]:
    """Wait until every account's lease is held by a live process, at most
    ``ceil(accounts / processes)`` a process, every process holding some: the leases and
    the seconds it took."""
    share = math.ceil(accounts / processes)
    started = time.perf_counter()
    leases: dict[uuid.UUID, uuid.UUID] = {}
    with trio.move_on_after(limit):
        while True:
            leases = await held_leases(pg)
            counts = per_owner(leases)
            if (len(leases) == accounts and len(counts) == processes
                    and max(counts.values()) <= share):
                return leases, time.perf_counter() - started
            await trio.sleep(0.1)
    raise RuntimeError(f"leases not spread in {limit:.0f} s: "
                       f"{sorted(per_owner(leases).values())} of {accounts} accounts held")


def per_owner(leases: dict[uuid.UUID, uuid.UUID]) -> dict[uuid.UUID, int]:
    counts: dict[uuid.UUID, int] = {}
    for owner in leases.values():
        counts[owner] = counts.get(owner, 0) + 1
    return counts


async def wait_all_done(pg: Pg, apis: list[Api], campaign_ids: list[str], total: int,
                        limit: float, log) -> bool:
    """Wait for every campaign to complete; False (after pausing them and letting their
    calls end, bounded) past ``limit`` s."""
    ids = [uuid.UUID(c) for c in campaign_ids]
    deadline = trio.current_time() + limit
    last_log = trio.current_time()
    while trio.current_time() < deadline:
        done = await pg.fetchval("SELECT count(*) FROM campaigns WHERE id = ANY($1) "
                                 "AND status = 'completed'", ids)
        if done == len(ids):
            return True
        if trio.current_time() - last_log >= 10:
            last_log = trio.current_time()
            recorded = await pg.fetchval("SELECT count(outcome) FROM attempts "
                                         "WHERE campaign_id = ANY($1)", ids)
            log(f"  {recorded}/{total} attempts recorded, {done}/{len(ids)} campaigns done")
        await trio.sleep(0.25)
    for api, campaign_id in zip(apis, campaign_ids, strict=True):
        await api.client.post(f"/api/v1/campaigns/{campaign_id}/pause")
    with trio.move_on_after(30):
        while await pg.fetchval("SELECT count(*) FROM attempts WHERE campaign_id = ANY($1) "
                                "AND outcome IS NULL", ids):
            await trio.sleep(0.1)
    return False


async def throughput_stats(pg: Pg, campaign_ids: list[str]) -> dict:
    ids = [uuid.UUID(c) for c in campaign_ids]
    row = await pg.fetchrow(
        "SELECT min(cp.started_at) AS first_start, max(cp.started_at) AS last_start, "
        "max(a.ended_at) AS last_end, count(a.id) AS attempts, "
        "count(a.outcome) AS recorded, "
        "count(a.id) FILTER (WHERE a.outcome IS NULL) AS open "
        "FROM campaigns cp LEFT JOIN attempts a ON a.campaign_id = cp.id "
        "WHERE cp.id = ANY($1)", ids)
    completed = await pg.fetchval("SELECT count(*) FROM contacts WHERE campaign_id = ANY($1) "
                                  "AND status = 'completed'", ids)
    # Every attempt under its account's one lease: the owner and epoch it holds now.
    unfenced = await pg.fetchval(
        "SELECT count(*) FROM attempts a LEFT JOIN account_leases l USING (account_id) "
        "WHERE a.campaign_id = ANY($1) AND (a.owner IS DISTINCT FROM l.owner "
        "OR a.lease_epoch IS DISTINCT FROM l.epoch)", ids)
    owners = await pg.fetch(
        "SELECT count(DISTINCT owner) AS n FROM attempts WHERE campaign_id = ANY($1) "
        "GROUP BY account_id", ids)
    by_owner = sorted((r["n"] for r in await pg.fetch(
        "SELECT count(*) AS n FROM attempts WHERE campaign_id = ANY($1) GROUP BY owner",
        ids)), reverse=True)
    seconds = (row["last_end"] - row["first_start"]).total_seconds()
    return {"seconds": seconds, "attempts": row["attempts"], "recorded": row["recorded"],
            "open": row["open"], "completed_contacts": completed,
            "rate": row["recorded"] / seconds, "unfenced": unfenced,
            "max_owners_per_account": max((r["n"] for r in owners), default=0),
            "attempts_by_owner": by_owner,
            "start_spread_s": (row["last_start"] - row["first_start"]).total_seconds()}


# -- 1. throughput ------------------------------------------------------------------------

async def throughput(ctx, processes: int, per_account: int) -> dict:
    total = ACCOUNTS * per_account
    async with fresh_database(f"{NAME}{processes}") as url, Pg.connect(url) as pg, \
            contextlib.AsyncExitStack() as stack:
        gateways = [await stack.enter_async_context(
            gateway_process(url, sim_rules=RULES, log_suffix=f"-p{index + 1}"))
            for index in range(processes)]
        await wait_registered(pg, processes)
        keys = await create_accounts(url, ACCOUNTS)
        # Account i is driven through process i % processes (any process serves any call).
        apis = [api_for(gateways[i % processes], key) for i, key in enumerate(keys)]
        for api in apis:
            await stack.enter_async_context(api.client)
        campaigns, holders = [], []
        for index, api in enumerate(apis):
            campaigns.append((await api.create_campaign(
                contacts_csv(per_account), name=f"cluster {index}"))["id"])
            holders.append((await api.create_campaign(
                contacts_csv(1, area=HOLDER_AREA), name=f"holder {index}",
                max_concurrent_calls=1))["id"])
        for api, holder in zip(apis, holders, strict=True):
            await api.start(holder)
        leases, spread_seconds = await wait_spread(pg, ACCOUNTS, processes, limit=60)
        await trio.sleep(1)
        backends = BackendCpu(pg)
        await backends.start()
        cpu_before = [gateway.cpu() for gateway in gateways]
        wall = time.perf_counter()
        async with trio.open_nursery() as nursery, contextlib.AsyncExitStack() as profiles:
            for index, gateway in enumerate(gateways):
                await profiles.enter_async_context(maybe_profile(
                    gateway, f"{NAME}-{processes}p-{index + 1}", ctx.profile_dir))
            nursery.start_soon(backends.run)
            async with trio.open_nursery() as starts:
                for api, campaign in zip(apis, campaigns, strict=True):
                    starts.start_soon(api.start, campaign)
            finished = await wait_all_done(pg, apis, campaigns, total,
                                           ctx.size(full=150, quick=60), ctx.log)
            nursery.cancel_scope.cancel()
        wall = time.perf_counter() - wall
        await backends.sample()
        gateway_cpu = sum(g.cpu() - before for g, before in zip(gateways, cpu_before,
                                                                  strict=True))
        stats = await throughput_stats(pg, campaigns)
        # The lease table is read again: nothing moved while the campaigns dialed.
        leases_after = await held_leases(pg)
    ctx.log(f"cluster: {processes} process{'es' if processes > 1 else ''}: "
            f"{stats['recorded']} attempts in "
            f"{stats['seconds']:.1f} s ({stats['rate']:.0f}/s), by owner "
            f"{stats['attempts_by_owner']}")
    return {**stats, "processes": processes, "total": total, "finished": finished,
            "wall": wall, "gateway_cpu": gateway_cpu, "db_cpu": backends.seconds(),
            "spread": sorted(per_owner(leases).values(), reverse=True),
            "spread_seconds": spread_seconds, "leases_moved": leases_after != leases}


# -- 2. takeover --------------------------------------------------------------------------

async def takeover(ctx) -> dict:
    per_account = 100  # 10 calls of 30 s at once: contacts are waiting long after the kill
    async with fresh_database(f"{NAME}_takeover") as url, Pg.connect(url) as pg, \
            contextlib.AsyncExitStack() as stack:
        rules = [rule("*", talk=30.0)]
        gateways = [await stack.enter_async_context(
            gateway_process(url, sim_rules=rules, log_suffix=f"-p{index + 1}"))
            for index in range(2)]
        await wait_registered(pg, 2)
        keys = await create_accounts(url, TAKEOVER_ACCOUNTS)
        apis = [api_for(gateways[i % 2], key) for i, key in enumerate(keys)]
        for api in apis:
            await stack.enter_async_context(api.client)
        for index, api in enumerate(apis):
            campaign = await api.create_campaign(contacts_csv(per_account),
                                                 name=f"takeover {index}",
                                                 max_concurrent_calls=10)
            await api.start(campaign["id"])
        leases, _ = await wait_spread(pg, TAKEOVER_ACCOUNTS, 2, limit=60)
        await trio.sleep(4)  # calls up, a renewal or two behind
        by_pid = await peers(pg)
        first_account = sorted(leases)[0]
        victim_id = leases[first_account]
        victim = next(g for g in gateways if by_pid.get(g.pid) == victim_id)
        victim_accounts = sorted(a for a, owner in leases.items() if owner == victim_id)
        live_before = await pg.fetchval("SELECT count(*) FROM attempts WHERE owner = $1 "
                                        "AND outcome IS NULL", victim_id)
        # Killed just after one of its renewals: its leases then expire a whole lease
        # after the kill (the worst case of the kill's timing).
        renewed = "SELECT renewed_at FROM gateway_peers WHERE id = $1"
        seen = await pg.fetchval(renewed, victim_id)
        with trio.move_on_after(3 * LEASE_SECONDS / RENEWALS_PER_LEASE):
            while await pg.fetchval(renewed, victim_id) == seen:
                await trio.sleep(0.01)
        victim.process.kill()  # SIGKILL
        killed_at = datetime.now(UTC)
        killed = time.perf_counter()
        await victim.process.wait()
        last_renewal = await pg.fetchval(renewed, victim_id)
        expiry = await pg.fetchval("SELECT max(expires_at) FROM account_leases "
                                   "WHERE owner = $1", victim_id)
        survivor_renewal = await pg.fetchval(
            "SELECT renewed_at FROM gateway_peers WHERE id <> $1", victim_id)
        dialed: dict[uuid.UUID, datetime] = {}
        acquired: dict[uuid.UUID, datetime] = {}
        with trio.move_on_after(3 * LEASE_SECONDS + 30):
            while len(dialed) < len(victim_accounts) or len(acquired) < len(victim_accounts):
                for row in await pg.fetch(
                        "SELECT account_id, min(dialed_at) AS at FROM attempts "
                        "WHERE account_id = ANY($1) AND owner IS DISTINCT FROM $2 "
                        "AND dialed_at > $3 GROUP BY account_id",
                        victim_accounts, victim_id, killed_at):
                    dialed[row["account_id"]] = row["at"]
                for row in await pg.fetch(
                        "SELECT account_id, acquired_at FROM account_leases "
                        "WHERE account_id = ANY($1) AND owner IS DISTINCT FROM $2 "
                        "AND acquired_at > $3", victim_accounts, victim_id, killed_at):
                    acquired[row["account_id"]] = row["acquired_at"]
                await trio.sleep(0.1)
        waited = time.perf_counter() - killed
        interrupted = await pg.fetchval("SELECT count(*) FROM attempts WHERE owner = $1 "
                                        "AND outcome = 'interrupted'", victim_id)
        still_open = await pg.fetchval("SELECT count(*) FROM attempts WHERE owner = $1 "
                                       "AND outcome IS NULL", victim_id)
    to_dial = [(at - killed_at).total_seconds() for at in dialed.values()]
    to_lease = [(at - killed_at).total_seconds() for at in acquired.values()]
    complete = len(dialed) == len(acquired) == len(victim_accounts)
    result = {"accounts": len(victim_accounts), "complete": complete, "waited": waited,
              "to_dial": to_dial, "to_lease": to_lease,
              "last_renewal_before_kill": (killed_at - last_renewal).total_seconds(),
              "expiry_after_kill": (expiry - killed_at).total_seconds(),
              "survivor_phase": (survivor_renewal - last_renewal).total_seconds()
              % (LEASE_SECONDS / RENEWALS_PER_LEASE),
              "live_before": live_before, "interrupted": interrupted,
              "still_open": still_open}
    ctx.log(f"cluster: takeover of {len(victim_accounts)} accounts: first dial "
            f"{max(to_dial, default=math.nan):.1f} s, lease "
            f"{max(to_lease, default=math.nan):.1f} s after the kill")
    return result


# -- 3. idle ------------------------------------------------------------------------------

async def _database_figures(admin: Pg, name: str) -> tuple[int, list[int]]:
    """The database's transactions so far and its backends' pids, read from another
    database (these reads are not the database's own)."""
    transactions = await admin.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", name)
    pids = [r["pid"] for r in await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1", name)]
    return transactions, pids


def _backend_cpu(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            out[pid] = cpu_seconds(pid)
    return out


async def idle(ctx, poll_seconds: float) -> dict:
    window = ctx.size(full=30, quick=10)
    env = {"GATEWAY_ENGINE_SCHEDULER_POLL_SECONDS": str(poll_seconds)}
    async with fresh_database(f"{NAME}_idle") as url, Pg.connect(ADMIN_URL) as admin, \
            gateway_process(url, env=env, log_suffix="-idle") as gateway:
        name = url.rsplit("/", 1)[1]
        # Past start-up and the first orphan sweep (10 s in: its statements' first
        # prepare and asyncpg's type introspection, ~20 transactions once), statistics
        # flushed.
        await trio.sleep(SETTLE_SECONDS)
        transactions_before, pids = await _database_figures(admin, name)
        backends_before = _backend_cpu(pids)
        cpu_before = gateway.cpu()
        started = time.perf_counter()
        async with maybe_profile(gateway, f"{NAME}-idle-{poll_seconds:g}", ctx.profile_dir):
            await trio.sleep(window)
        seconds = time.perf_counter() - started
        gateway_cpu = gateway.cpu() - cpu_before
        transactions_after, pids_after = await _database_figures(admin, name)
        backends_after = _backend_cpu(pids_after)
    db_cpu = sum(backends_after[pid] - backends_before.get(pid, 0.0)
                 for pid in backends_after)
    return {"seconds": seconds, "gateway_cpu": gateway_cpu, "db_cpu": db_cpu,
            "transactions": transactions_after - transactions_before,
            "backends": len(pids_after), "poll_seconds": poll_seconds}


# -- the rows -----------------------------------------------------------------------------

async def run(ctx) -> list[Row]:
    per_account = ctx.size(full=20_000, quick=2_000)
    runs = []
    for processes in (1, 2, 3):
        runs.append(await throughput(ctx, processes, per_account))
    took = await takeover(ctx)
    quiet = [await idle(ctx, 1.0), await idle(ctx, PARKED_POLL_SECONDS)]

    rows: list[Row] = []
    base = runs[0]["rate"]
    shape = (f"{ACCOUNTS} accounts × {per_account // 1000}k contacts, ring=talk=0, "
             "100 concurrent each")
    for result in runs:
        n = result["processes"]
        note = (f"{result['recorded']} attempts in {result['seconds']:.1f} s "
                f"(wall {result['wall']:.1f} s; campaigns started within "
                f"{result['start_spread_s'] * 1000:.0f} ms); attempts by process "
                f"{result['attempts_by_owner']}; leases {'+'.join(map(str, result['spread']))}"
                f" after {result['spread_seconds']:.1f} s")
        if not result["finished"]:
            note += "; PAUSED at the time limit"
        if n == 1:
            rows.append(Row(NAME, f"attempts/s, 1 process, {shape}", result["rate"], "/s",
                            note=note, data=result))
        else:
            rows.append(Row(NAME, f"attempts/s, {n} processes, same workload",
                            result["rate"], "/s", base, "1 process (row above)",
                            note=note, data=result))
    recorded = all(r["recorded"] == r["attempts"] == r["completed_contacts"] == r["total"]
                   and r["open"] == 0 for r in runs)
    rows.append(Row(
        NAME, "every attempt durably recorded (1, 2, 3 processes)",
        " / ".join(f"{r['recorded']}/{r['attempts']}" for r in runs), "", None, "",
        "all, none open", recorded,
        note="; ".join(f"{r['processes']}p: {r['completed_contacts']} contacts completed, "
                       f"{r['open']} open" for r in runs)))
    fenced = all(r["unfenced"] == 0 and r["max_owners_per_account"] == 1
                 and not r["leases_moved"] for r in runs)
    rows.append(Row(
        NAME, "attempts not under their account's one lease (owner, epoch)",
        sum(r["unfenced"] for r in runs), "", None, "", "0, one process per account",
        fenced,
        note="; ".join(f"{r['processes']}p: {r['unfenced']} off-lease, at most "
                       f"{r['max_owners_per_account']} owner(s) per account, leases "
                       f"{'moved' if r['leases_moved'] else 'unchanged'} while dialing"
                       for r in runs)))
    even = all(max(r["spread"]) <= math.ceil(ACCOUNTS / r["processes"])
               and len(r["spread"]) == r["processes"] for r in runs)
    rows.append(Row(
        NAME, f"leases spread over the processes ({ACCOUNTS} accounts)",
        " | ".join("+".join(map(str, r["spread"])) for r in runs), "", None,
        "1, 2, 3 processes", "ceil(accounts/processes) each", even,
        note="time from the holder campaigns' start to every lease held and spread: "
             + ", ".join(f"{r['spread_seconds']:.1f} s" for r in runs)))
    for result in runs:
        attempts = max(result["recorded"], 1)
        rows.append(Row(
            NAME, "gateway CPU per attempt, " + ("1 process" if result["processes"] == 1
                                                 else f"{result['processes']} processes summed"),
            1000 * result["gateway_cpu"] / attempts, "ms",
            1000 * result["db_cpu"] / attempts, "PostgreSQL backends' CPU per attempt",
            note=f"gateways {result['gateway_cpu']:.1f} CPU-s, backends "
                 f"{result['db_cpu']:.1f} CPU-s over {result['wall']:.1f} s of wall time"))

    target = LEASE_SECONDS + TAKEOVER_SLACK
    worst_dial = max(took["to_dial"], default=math.nan)
    worst_lease = max(took["to_lease"], default=math.nan)
    period = LEASE_SECONDS / RENEWALS_PER_LEASE
    common = (f"{took['accounts']} accounts of the killed process (of {TAKEOVER_ACCOUNTS}; "
              f"2 processes, 30-s calls, 10 at once each); killed "
              f"{took['last_renewal_before_kill']:.2f} s after its last renewal, its leases "
              f"expiring {took['expiry_after_kill']:.2f} s after the kill; the survivor's "
              f"looks {took['survivor_phase']:.2f} s after the killed one's in each "
              f"{period:g}-s period")
    rows.append(Row(
        NAME, "takeover after kill -9: kill → first dial by the other process",
        worst_dial, "s", LEASE_SECONDS, "engine.lease_seconds (default)",
        f"≤ lease + {TAKEOVER_SLACK:.0f} s", took["complete"] and worst_dial <= target,
        note=f"worst of {took['accounts']} accounts; per account "
             + ", ".join(f"{s:.2f}" for s in sorted(took["to_dial"])) + f" s; {common}"
             + ("" if took["complete"] else f"; NOT ALL TAKEN OVER in {took['waited']:.0f} s"),
        data=took))
    rows.append(Row(
        NAME, "takeover after kill -9: kill → new lease acquired_at",
        worst_lease, "s", LEASE_SECONDS, "engine.lease_seconds (default)",
        f"≤ lease + {TAKEOVER_SLACK:.0f} s", took["complete"] and worst_lease <= target,
        note="per account " + ", ".join(f"{s:.2f}" for s in sorted(took["to_lease"]))
             + f" s; renewal period {period:g} s; the killed process had "
               f"{took['live_before']} live calls: {took['interrupted']} recorded "
               f"interrupted by the survivor, {took['still_open']} still open"))

    # A pooled statement is two transactions: asyncpg resets the connection on release
    # (``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``).
    lease_rate = 2 * 2 / period  # renew + demand every period
    for result in quiet:
        shipped = result["poll_seconds"] == 1.0
        what = ("idle, no campaign, shipped defaults" if shipped else
                "idle, no campaign, poll loop parked (the lease actor's own cost)")
        rows.append(Row(
            NAME, f"{what}: gateway CPU", 1000 * result["gateway_cpu"] / result["seconds"],
            "ms/s", None, f"renewal every {period:g} s",
            note=f"{result['gateway_cpu'] * 1000:.0f} CPU-ms over {result['seconds']:.1f} s; "
                 f"its PostgreSQL backends {result['db_cpu'] * 1000:.0f} CPU-ms "
                 f"({result['backends']} connections)", data=result))
        # The poll loop queries nothing while the process holds no lease.
        expected = lease_rate + 2 / 10
        rows.append(Row(
            NAME, f"{what}: database transactions", result["transactions"] / result["seconds"],
            "/s", lease_rate, f"lease actor: 2 statements every {period:g} s",
            note=f"{result['transactions']} transactions (pg_stat_database xact_commit + "
                 f"xact_rollback) over {result['seconds']:.1f} s, "
                 f"engine.scheduler_poll_seconds {result['poll_seconds']:g}"
                 + (" (the shipped default)" if shipped else "") + "; each pooled statement "
                 "is two (asyncpg resets the connection on release); expected from the code "
                 f"{expected:.1f}/s: the lease actor {lease_rate:.2f}, the orphan sweep 0.2 "
                 "(one statement every 10 s)"
                 + ("; the supervisor's poll loop none (it holds no lease)" if shipped
                    else "")))
    return rows
