"""``gateway demo``: a first campaign, from nothing, on the simulated carrier.

    gateway demo [--config FILE] [--contacts N] [--exit]

Starts the gateway in this process exactly as ``gateway serve`` does (the embedded
PostgreSQL unless database.url is set; the bootstrap account and its key on first start),
except that it always dials the simulated carrier, with short calls, so no real call is made
and the demo ends in well under a minute. Then, as any client would, over HTTP through the
SDK: it creates (or reuses) an agent and a caller ID, creates a campaign of N generated
contacts, starts it, draws its progress as ``gateway campaigns watch`` does, and prints a
summary and what to try next. The gateway keeps serving until Ctrl-C, unless ``--exit``.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import attrs
import trio

from gateway.cli_client import watch_progress
from gateway.client import (
    Agent,
    AuthenticationError,
    Client,
    ConflictError,
    GatewayError,
    PhoneNumber,
    Snapshot,
)
from gateway.config import LogSettings, Settings, SimSettings
from gateway.serve import serve
from gateway.startup_errors import StartupError
from gateway.telephony.sim import SimAdapter
from gateway.vocabulary import AgentStatus, Outcome

DEFAULT_CONTACTS = 50
MAX_CONTACTS = 1000
AGENT_NAME = "Demo agent"
GREETING = ("Hi {{first_name}}, this is a test call from your new outbound voice gateway. "
            "Have a nice day!")
CALLER_ID = "+12025550100"  # 555-0100 to 555-0199: fictional numbers in every area code
MAX_CONCURRENT_CALLS = 10
RETRIES_PER_CONTACT = 1
RETRY_DELAY_SECONDS = 3
# The simulated carrier of the demo. With this seed, the 50 default contacts need 7 retries
# (one of which fails again): 57 dials, inside the default 60 calls a minute.
SIM = SimSettings(seed=2, mix={"answered": 0.8, "no_answer": 0.1, "busy": 0.06,
                               "failed": 0.04},
                  ring_seconds=(0.5, 2.0), talk_seconds=(1.0, 4.0))
SSE_TICK_SECONDS = 0.5
CHOOSE_A_KEY = ("set GATEWAY_BOOTSTRAP_API_KEY to a key of your choosing (32 or more URL-safe "
                "characters: it is added to the oldest account), or run the demo on a fresh "
                "database (database.data_dir or database.url)")
# Contacts: 555-01xx numbers, 100 per area code.
AREA_CODES = ("212", "312", "415", "617", "202", "305", "206", "303", "512", "702")
FIRST_NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Isla",
               "Jonas", "Kemi", "Luca", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa",
               "Sami", "Tara")


def _contact_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_CONTACTS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_CONTACTS}, got {value}")
    return value


def add_demo_command(commands: argparse._SubParsersAction,
                     config: argparse.ArgumentParser) -> None:
    """Add ``demo`` to the ``gateway`` command (``config``: the ``--config`` parent)."""
    demo = commands.add_parser(
        "demo", parents=[config],
        help="start the gateway on the simulated carrier and run a sample campaign",
        description="Start the gateway (as `gateway serve` does) on the simulated carrier, "
                    "create an agent, a caller ID and a campaign of generated contacts "
                    "through the API, and show it dialing. No real calls are made.")
    demo.add_argument("--contacts", type=_contact_count, default=DEFAULT_CONTACTS,
                      metavar="N", help=f"contacts to dial (default: {DEFAULT_CONTACTS})")
    demo.add_argument("--exit", action="store_true",
                      help="stop the gateway once the campaign is done (default: keep "
                           "serving until Ctrl-C)")


def demo_settings(settings: Settings) -> Settings:
    """The settings with the demo's carrier: simulated, short calls, short retry delays,
    frequent progress; quiet logs (the progress bar shares stderr with them) unless the
    log level is debug or error."""
    level = settings.log.level if settings.log.level in ("debug", "error") else "warning"
    return settings.model_copy(update={
        "telephony": settings.telephony.model_copy(update={"adapter": "sim", "sim": SIM}),
        "limits": settings.limits.model_copy(update={"min_retry_delay_seconds": min(
            settings.limits.min_retry_delay_seconds, RETRY_DELAY_SECONDS)}),
        "sse": settings.sse.model_copy(update={
            "tick_seconds": min(settings.sse.tick_seconds, SSE_TICK_SECONDS)}),
        "log": LogSettings(level=level),
    })


def contact_numbers(count: int) -> list[str]:
    return [f"+1{AREA_CODES[i // 100]}55501{i % 100:02d}" for i in range(count)]


def contacts_csv(count: int) -> bytes:
    rows = ["phone_number,first_name"]
    rows += [f"{number},{FIRST_NAMES[i % len(FIRST_NAMES)]}"
             for i, number in enumerate(contact_numbers(count))]
    return ("\n".join(rows) + "\n").encode()


@attrs.frozen
class Run:
    """One demo run, as its client sees it."""

    base_url: str
    api_key: str
    key_file: Path | None  # where the key was read; None: GATEWAY_BOOTSTRAP_API_KEY
    contacts: int
    keep_serving: bool


async def run_demo(settings: Settings, args: argparse.Namespace, *,
                   bootstrap_key: str | None) -> int:
    """Serve, run the demo campaign from a worker thread (the SDK client blocks), then keep
    serving until a signal, or (``--exit``, or the demo failed) stop. Start-up failures
    propagate as ``serve``'s do; the exit code otherwise."""
    shutdown = trio.Event()
    failure: Exception | None = None
    code = 0
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, settings, shutdown=shutdown,
                                            bootstrap_key=bootstrap_key))
        try:
            api_key, key_file = _api_key(settings, bootstrap_key)
            run = Run(_reachable(binds[0]), api_key, key_file, args.contacts,
                      keep_serving=not args.exit)
            await trio.to_thread.run_sync(partial(_campaign, run), abandon_on_cancel=True)
        except GatewayError as exc:
            if not shutdown.is_set():
                print(f"gateway: {exc.code}: {exc.message}", file=sys.stderr)
                code = 1
        except Exception as exc:  # StartupError and the unexpected: the CLI's edge says it
            failure = exc
        if shutdown.is_set():  # Ctrl-C while the campaign ran: the gateway is stopping
            print("gateway: interrupted", file=sys.stderr)
            code = 130
        elif args.exit or code or failure is not None:
            shutdown.set()
    if failure is not None:
        raise failure
    return code


def _reachable(bind: str) -> str:
    """A URL a client on this machine can use for a bind address (0.0.0.0: all)."""
    return bind.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")


def _api_key(settings: Settings, bootstrap_key: str | None) -> tuple[str, Path | None]:
    """``GATEWAY_BOOTSTRAP_API_KEY``, else the key the first start wrote to the data dir
    (and that file)."""
    if bootstrap_key is not None:
        return bootstrap_key, None
    path = (settings.database.data_dir / "api_key").resolve()
    try:
        return path.read_text(encoding="utf-8").strip(), path
    except OSError as exc:
        raise StartupError(
            f"the demo needs the API key the first start wrote, and cannot read {path} "
            f"({exc.strerror})", CHOOSE_A_KEY) from None


def _say(text: str = "") -> None:
    print(text, flush=True)


def _campaign(run: Run) -> None:
    """The demo itself, as an API client (blocking: runs in a worker thread)."""
    with Client(run.base_url, run.api_key) as client:
        try:
            limits = client.call_limits()
        except AuthenticationError:
            raise StartupError(
                f"the demo's API key ({run.key_file or 'GATEWAY_BOOTSTRAP_API_KEY'}) is "
                "not a key of this gateway's database", CHOOSE_A_KEY) from None
        if not limits["concurrent_max"] or not limits["calls_per_minute"]:
            raise StartupError(
                f"the account's caps block dialing (concurrent_max {limits['concurrent_max']},"
                f" calls_per_minute {limits['calls_per_minute']})",
                "raise them: gateway accounts list, then gateway accounts limits ACCOUNT_ID "
                "--concurrent-max 10 --calls-per-minute 60")
        _say(f"Gateway serving at {run.base_url}, on the simulated carrier: no real calls.")
        agent = _agent(client)
        number = _caller_id(client)
        campaign = client.campaigns.create(
            name=f"Demo campaign {time.strftime('%Y-%m-%d %H:%M:%S')}", agent_id=agent,
            phone_number_id=number, contacts=contacts_csv(run.contacts),
            max_concurrent_calls=min(MAX_CONCURRENT_CALLS, limits["concurrent_max"]),
            retries_per_contact=RETRIES_PER_CONTACT, retry_delay_seconds=RETRY_DELAY_SECONDS)
        _say(f"Campaign  {campaign['id']}  {campaign['name']!r}: "
             f"{campaign['import_report']['rows_accepted']} contacts")
        _rate_note(run.contacts, limits["calls_per_minute"])
        _say(f"Dialing up to {campaign['max_concurrent_calls']} calls at once; a busy, "
             f"unanswered or failed call is retried once, {RETRY_DELAY_SECONDS} s later.")
        started = time.monotonic()
        client.campaigns.start(campaign)
        final = watch_progress(client, campaign["id"], sys.stderr)
        _summary(run, final, time.monotonic() - started)


def _agent(client: Client) -> Agent:
    """The demo agent of an earlier run, else a new one."""
    for agent in client.agents.iter_agents():
        if agent["name"] == AGENT_NAME and agent["status"] == AgentStatus.ACTIVE:
            _say(f"Agent     {agent['id']}  {AGENT_NAME!r} (from an earlier demo)")
            return agent
    agent = client.agents.create(AGENT_NAME, greeting=GREETING)
    _say(f"Agent     {agent['id']}  {AGENT_NAME!r}, greeting: {GREETING!r}")
    return agent


def _caller_id(client: Client) -> PhoneNumber:
    """The demo's caller ID: created, or (a 409 on ``number``) the one an earlier run made."""
    try:
        number = client.phone_numbers.create(CALLER_ID, label="demo")
        _say(f"Caller ID {number['id']}  {CALLER_ID}")
        return number
    except ConflictError as exc:
        if exc.field != "number":
            raise
    for number in client.phone_numbers.iter_phone_numbers():
        if number["number"] == CALLER_ID:
            if not number["outbound_enabled"]:
                number = client.phone_numbers.update(number, outbound_enabled=True)
            _say(f"Caller ID {number['id']}  {CALLER_ID} (from an earlier demo)")
            return number
    raise GatewayError(f"{CALLER_ID} is in the account but not in its list", code="conflict")


def _rate_note(contacts: int, calls_per_minute: int) -> None:
    """A note when the account's rate cap will hold the demo back (the simulated carrier
    is deterministic: the first attempts' outcomes are known in advance)."""
    sim = SimAdapter(SIM)
    # Every outcome of the demo's mix but answered is retried.
    retried = sum(sim.plan(number, 1)[0] != Outcome.ANSWERED
                  for number in contact_numbers(contacts))
    dials = contacts + retried * RETRIES_PER_CONTACT
    if dials > calls_per_minute:
        _say(f"Note: about {dials} dials, and the account makes at most {calls_per_minute} "
             "a minute: this takes more than a minute.")


def _summary(run: Run, final: Snapshot, seconds: float) -> None:
    outcomes = ", ".join(f"{name} {count}" for name, count in final["outcomes"].items()
                         if count)
    _say()
    _say(f"Campaign {final['status']} in {seconds:.0f} s: {final['total']} contacts "
         f"(completed {final['completed']}, failed {final['failed']}, "
         f"skipped {final['skipped']}); {final['attempts']} calls ({outcomes or 'none'}).")
    _say(f"API docs:  {run.base_url}/docs")
    _say(f"API key:   {run.key_file or '$GATEWAY_BOOTSTRAP_API_KEY'}")
    _say("Try next, in another terminal:")
    _say(f"  export GATEWAY_BASE_URL={run.base_url}")
    _say(f"  export GATEWAY_API_KEY=$(cat {run.key_file})" if run.key_file else
         "  export GATEWAY_API_KEY=$GATEWAY_BOOTSTRAP_API_KEY")
    _say("  gateway campaigns list --table")
    _say(f"  gateway campaigns calls {final['campaign_id']} --table")
    _say("  gateway agents list --table")
    _say("  gateway numbers list --table")
    if run.keep_serving:
        _say("The gateway keeps serving: press Ctrl-C to stop it.")
