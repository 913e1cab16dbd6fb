"""What every benchmark shares: a gateway in its own process on a fresh database, its
``/proc`` figures, an API client, contact files, latency sampling and result rows.

Nothing here is timed by pytest; the benchmarks are run by ``python -m tests.bench``.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import httpx
import trio
import trio_asyncio

from tests.multipart_body import multipart
from tests.ports import free_tcp_port

ADMIN_URL = os.environ.get("GATEWAY_TEST_DATABASE_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
API_KEY = "gw_bench_" + "b" * 40
HERE = Path(__file__).resolve().parent
LOGS = HERE / "logs"
PROJECT = HERE.parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Caps that never bind (PostgreSQL integers).
UNBOUNDED_RATE = 2**31 - 1


# -- results ------------------------------------------------------------------------------

@attrs.define
class Row:
    """One line of the results table."""

    benchmark: str
    metric: str
    figure: float | str | None
    unit: str = ""
    reference: float | str | None = None       # the floor / reference, same unit
    reference_label: str = ""
    target: str = ""
    holds: bool | None = None                   # None: informational, no target
    ratio: float | None = None                  # figure / reference unless given
    note: str = ""
    data: dict = attrs.field(factory=dict)      # raw figures, for the JSON only

    def __attrs_post_init__(self) -> None:
        if (self.ratio is None and isinstance(self.figure, (int, float))
                and isinstance(self.reference, (int, float)) and self.reference):
            self.ratio = self.figure / self.reference


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return percentile(values, 50)


# -- processes and /proc ------------------------------------------------------------------

def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM... of a process, in bytes."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key.startswith("Vm") and rest.strip().endswith("kB"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    return {"nproc": os.cpu_count(), "cpu": model, "memory_gib": round(total_kb / 2**20, 1),
            "python": sys.version.split()[0], "kernel": os.uname().release}


# -- the database -------------------------------------------------------------------------

def aio(fn):
    """Call an asyncio coroutine function (asyncpg) from trio."""
    return trio_asyncio.aio_as_trio(fn)


def database_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def admin(*statements: str) -> None:
    conn = await aio(asyncpg.connect)(ADMIN_URL, timeout=10)
    try:
        for statement in statements:
            await aio(conn.execute)(statement)
    finally:
        await aio(conn.close)()


@contextlib.asynccontextmanager
async def fresh_database(tag: str):
    """A new empty database (the gateway migrates it), dropped on the way out."""
    name = f"gateway_bench_{tag}_{uuid.uuid4().hex[:8]}"
    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with trio.CancelScope(shield=True):
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Pg:
    """One asyncpg connection used from trio, for the benchmarks' own reads. Calls are
    serialised (a connection runs one statement at a time): samplers may share it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._lock = trio.Lock()

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str):
        conn = await aio(asyncpg.connect)(url, timeout=10)
        try:
            yield cls(conn)
        finally:
            with trio.CancelScope(shield=True):
                await aio(conn.close)()

    async def fetchval(self, sql: str, *args):
        async with self._lock:
            return await aio(self.conn.fetchval)(sql, *args)

    async def fetchrow(self, sql: str, *args):
        async with self._lock:
            return await aio(self.conn.fetchrow)(sql, *args)

    async def fetch(self, sql: str, *args):
        async with self._lock:
            return await aio(self.conn.fetch)(sql, *args)

    async def execute(self, sql: str, *args):
        async with self._lock:
            return await aio(self.conn.execute)(sql, *args)


# -- the gateway process ------------------------------------------------------------------

def sim_rules_toml(rules: list[dict]) -> str:
    """``[telephony.sim] rules`` as a TOML inline array (for GATEWAY_TELEPHONY_SIM_RULES)."""
    items = []
    for rule in rules:
        items.append("{ " + ", ".join(
            f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}"
            for key, value in rule.items()) + " }")
    return "[" + ", ".join(items) + "]"


def rule(pattern: str, outcome: str = "answered", ring: float = 0.0, talk: float = 0.0) -> dict:
    return {"pattern": pattern, "outcome": outcome, "ring_seconds": ring, "talk_seconds": talk}


class Gateway:
    """``python -m gateway serve`` in its own process, configured by ``GATEWAY_*``."""

    def __init__(self, process: trio.Process, base_url: str, workdir: Path, log_path: Path,
                 env: dict[str, str]) -> None:
        self.process = process
        self.pid = process.pid
        self.base_url = base_url
        self.workdir = workdir
        self.log_path = log_path
        self.env = env

    def rss(self) -> int:
        return proc_status(self.pid)["VmRSS"]

    def peak_rss(self) -> int:
        return proc_status(self.pid)["VmHWM"]

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def reset_peak(self) -> bool:
        return reset_peak_rss(self.pid)

    def client(self, timeout: float = 60, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                 headers={"Authorization": f"Bearer {API_KEY}"}, **kwargs)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self, grace: float = 15) -> float:
        """SIGTERM (then SIGKILL after ``grace`` s); the seconds until the process exited."""
        started = time.perf_counter()
        await _stop(self.process, grace)
        return time.perf_counter() - started


@contextlib.asynccontextmanager
async def gateway_process(database_url_: str, *, sim_rules: list[dict] | None = None,
                          concurrent_max: int = 100_000,
                          calls_per_minute: int = UNBOUNDED_RATE, env: dict | None = None,
                          start_timeout: float = 60, log_suffix: str = ""):
    """Start a gateway on ``database_url_`` and a free port; stop it (SIGTERM, then
    SIGKILL) on the way out. It logs at the default level (``info``, as deployments run it;
    ``env={"GATEWAY_LOG_LEVEL": ...}`` for another) into ``tests/bench/logs/``.
    ``log_suffix`` tells apart the logs of several gateways on one database."""
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    port = free_tcp_port()
    full_env = {key: value for key, value in os.environ.items()
                if not key.startswith("GATEWAY_")}
    full_env.update({
        "GATEWAY_DATABASE_URL": database_url_,
        "GATEWAY_DATABASE_DATA_DIR": str(workdir / "data"),
        "GATEWAY_HTTP_HOST": "127.0.0.1",
        "GATEWAY_HTTP_PORT": str(port),
        "GATEWAY_HTTP_SHUTDOWN_GRACE_SECONDS": "1",
        "GATEWAY_BOOTSTRAP_API_KEY": API_KEY,
        # The level users run at (the default): every call logs its dial, answer and end.
        "GATEWAY_LOG_LEVEL": "info",
        "GATEWAY_ACCOUNTS_DEFAULT_CONCURRENT_MAX": str(concurrent_max),
        "GATEWAY_ACCOUNTS_DEFAULT_CALLS_PER_MINUTE": str(calls_per_minute),
        "GATEWAY_ENGINE_SCHEDULER_POLL_SECONDS": "0.2",
        "GATEWAY_TELEPHONY_SIM_RULES": sim_rules_toml(sim_rules or [rule("*")]),
    })
    full_env.update(env or {})
    # Each gateway's log is kept after the run, for post-mortems.
    LOGS.mkdir(exist_ok=True)
    log_path = LOGS / f"{database_url_.rsplit('/', 1)[1]}{log_suffix}.log"
    log_file = open(log_path, "wb")
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "gateway", "serve"], env=full_env, cwd=str(workdir),
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True)
    gateway = Gateway(process, f"http://127.0.0.1:{port}", workdir, log_path, full_env)
    try:
        await _wait_ready(gateway, start_timeout)
        yield gateway
    finally:
        with trio.CancelScope(shield=True):
            await _stop(process)
            log_file.close()
            shutil.rmtree(workdir, ignore_errors=True)


async def _wait_ready(gateway: Gateway, timeout: float) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=2) as client:
        with trio.move_on_after(timeout) as waited:
            while True:
                if gateway.process.poll() is not None:
                    raise RuntimeError(f"the gateway exited ({gateway.process.returncode}):\n"
                                       + gateway.log_tail())
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)
        if waited.cancelled_caught:
            raise RuntimeError("the gateway did not answer /healthz in time:\n"
                               + gateway.log_tail())


async def _stop(process: trio.Process, grace: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(grace):
            await process.wait()
    if process.poll() is None:
        process.kill()
        await process.wait()


# -- the API ------------------------------------------------------------------------------

def us_number(i: int, area: int = 212) -> str:
    """The i-th of 100,000 distinct valid US numbers in an area code (+1 AAA 2xx xxxx)."""
    return f"+1{area}{200 + i // 10000:03d}{i % 10000:04d}"


def contacts_csv(count: int, *, area: int = 212, wide: bool = False) -> bytes:
    """A contacts CSV: ``phone_number,first_name`` or, ``wide``, three ~29-character custom
    columns (about 100 bytes a row: 100k rows make a ~10 MB file under the 10 MiB limit)."""
    if wide:
        lines = ["phone_number,first_name,company,note"]
        lines += [f"{us_number(i, area)},Firstname{i:07d}xx,Company {i:07d} Incorporated,"
                  f"Follow up about order {i:08d}"
                  for i in range(count)]
    else:
        lines = ["phone_number,first_name"]
        lines += [f"{us_number(i, area)},name{i}" for i in range(count)]
    return ("\n".join(lines) + "\n").encode()


def expect(response: httpx.Response, status: int) -> dict:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                           f"{response.status_code} {response.text[:500]}")
    return response.json() if response.content else {}


class Api:
    """The few API calls the benchmarks make, on one client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self._refs: tuple[str, str] | None = None

    async def references(self) -> tuple[str, str]:
        """An agent and a caller-ID number (created once)."""
        if self._refs is None:
            agent = expect(await self.client.post("/api/v1/agents", json={
                "name": "Bench", "greeting": "Hi {{first_name}}"}), 201)["id"]
            number = expect(await self.client.post("/api/v1/phone-numbers", json={
                "number": "+14155550100"}), 201)["id"]
            self._refs = (agent, number)
        return self._refs

    def campaign_body(self, csv: bytes, *, name: str = "bench",
                      max_concurrent_calls: int = 100) -> tuple[bytes, str]:
        agent, number = self._refs
        return multipart({"name": name, "agent_id": agent, "phone_number_id": number,
                          "max_concurrent_calls": str(max_concurrent_calls)},
                         {"contacts": csv})

    async def create_campaign(self, csv: bytes, **kwargs) -> dict:
        await self.references()
        body, content_type = self.campaign_body(csv, **kwargs)
        return expect(await self.client.post("/api/v1/campaigns", content=body,
                                             headers={"Content-Type": content_type}), 201)

    async def start(self, campaign_id: str) -> dict:
        return expect(await self.client.post(f"/api/v1/campaigns/{campaign_id}/start"), 200)

    async def stop(self, campaign_id: str) -> dict:
        return expect(await self.client.post(f"/api/v1/campaigns/{campaign_id}/stop"), 200)

    async def get(self, campaign_id: str) -> dict:
        return expect(await self.client.get(f"/api/v1/campaigns/{campaign_id}"), 200)


async def campaign_status(pg: Pg, campaign_id: str) -> str:
    """A campaign's status straight from PostgreSQL: polling it costs the gateway nothing
    (``GET /campaigns/{id}`` counts the contacts by status, ~20 ms of database time at
    100k contacts)."""
    return await pg.fetchval("SELECT status FROM campaigns WHERE id = $1",
                             uuid.UUID(str(campaign_id)))


# -- sampling -----------------------------------------------------------------------------

# An API request the gateway answers without the database (401: no API key, checked before
# any query): the full HTTP stack and the event loop, nothing else.
NO_DB_PROBE = ("no-db 401", "/api/v1/call-limits", {"Authorization": ""}, 401)


async def sample_in_turn(client, schedule: list[tuple], every: float,
                         samples: dict[str, list], errors: list) -> None:
    """GET each ``(name, path[, headers, expected status])`` of ``schedule`` in turn, one
    every ``every`` s, until cancelled; append (start, latency) to ``samples[name]``."""
    next_at = trio.current_time()
    while True:
        for name, path, *extra in schedule:
            headers, expected = extra if extra else (None, 200)
            started = time.perf_counter()
            try:
                response = await client.get(path, headers=headers)
                if response.status_code == expected:
                    samples[name].append((started, time.perf_counter() - started))
                else:
                    errors.append((name, response.status_code))
            except httpx.HTTPError as exc:
                errors.append((name, repr(exc)))
            next_at += every
            await trio.sleep_until(max(next_at, trio.current_time()))


def latency_summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    values = [latency for _, latency in samples]
    return {"n": len(values), "p50_ms": percentile(values, 50) * 1000,
            "p99_ms": percentile(values, 99) * 1000,
            "max_ms": (max(values) * 1000) if values else math.nan}


# -- profiles -----------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def maybe_profile(gateway: Gateway, name: str, profile_dir: Path | None,
                        rate: int = 100):
    """With ``profile_dir``: ``py-spy record`` the gateway while the block runs, into
    ``<profile_dir>/<name>.txt`` (collapsed stacks) and summarise it in
    ``<name>.summary.txt``. py-spy samples from outside the process (no pausing:
    ``--nonblocking``), so it barely changes what it measures; still, figures of a
    profiled run are not the ones to report."""
    if profile_dir is None:
        yield None
        return
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        raise RuntimeError("--profile needs py-spy: pip install py-spy (in the venv)")
    profile_dir.mkdir(parents=True, exist_ok=True)
    raw = profile_dir / f"{name}.txt"
    command = [pyspy, "record", "--pid", str(gateway.pid), "--rate", str(rate),
               "--format", "raw", "--output", str(raw), "--nonblocking", "--threads"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL)
    await trio.sleep(1)  # py-spy attaches before the measured work starts
    try:
        yield raw
    finally:
        with trio.CancelScope(shield=True):
            process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            with trio.move_on_after(30):
                await process.wait()
            if process.poll() is None:
                process.kill()
            if raw.exists():
                from tests.bench.profiles import summarise

                (profile_dir / f"{name}.summary.txt").write_text(summarise(raw))


class BackendCpu:
    """CPU seconds used by the PostgreSQL backends serving one database (the gateway's
    pool), from /proc, excluding the benchmark's own connection. Poll :meth:`run` while the
    measurement lasts: backends that connect later count from their start."""

    def __init__(self, pg: Pg) -> None:
        self.pg = pg
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}

    async def _pids(self) -> list[int]:
        rows = await self.pg.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")
        return [row["pid"] for row in rows]

    async def start(self) -> None:
        for pid in await self._pids():
            with contextlib.suppress(OSError):
                self.base[pid] = self.last[pid] = cpu_seconds(pid)

    async def sample(self) -> None:
        for pid in set(await self._pids()) | set(self.last):
            with contextlib.suppress(OSError):
                self.last[pid] = cpu_seconds(pid)
                self.base.setdefault(pid, 0.0)

    async def run(self, every: float = 1.0) -> None:
        while True:
            await trio.sleep(every)
            await self.sample()

    def seconds(self) -> float:
        return sum(self.last[pid] - self.base[pid] for pid in self.last)
