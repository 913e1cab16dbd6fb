"""The ``gateway`` command: run the server and administer accounts.

    gateway serve [--config FILE]
    gateway demo [--config FILE] [--contacts N] [--exit]   (see gateway/cli_demo.py)
    gateway migrate [--config FILE]
    gateway status [--config FILE]    (the processes on the database, the accounts each dials)
    gateway accounts create --name N [--concurrent-max K] [--calls-per-minute R]
    gateway accounts list
    gateway accounts limits ACCOUNT_ID [--concurrent-max K] [--calls-per-minute R]
                                       [--daily-calls-max N|none] [--daily-minutes-max N|none]
    gateway campaigns create|list|show|start|pause|resume|stop|delete|contacts|calls|watch
    gateway agents|numbers create|list|show|update|delete
                                       (API clients: see gateway/cli_client.py)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import uuid
from functools import partial
from pathlib import Path

import trio

from gateway.asyncio_loop import open_loop
from gateway.bootstrap import check_bootstrap_key
from gateway.cli_client import CLIENT_COMMANDS, add_client_commands, run_client_command
from gateway.cli_demo import add_demo_command, demo_settings, run_demo
from gateway.config import ConfigError, Settings, load_settings
from gateway.db import Database
from gateway.logs import configure_logging
from gateway.migrations import migrate
from gateway.serve import database_url, open_database, serve
from gateway.startup_errors import lines_for
from gateway.store import accounts, leases

CAP_MAX = 2**31 - 1  # caps are PostgreSQL integers


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= CAP_MAX:
        raise argparse.ArgumentTypeError(f"must be between 0 and {CAP_MAX}, got {value}")
    return value


def _account_name(text: str) -> str:
    name = text.strip()
    if not 1 <= len(name) <= 200:
        raise argparse.ArgumentTypeError("must be 1 to 200 characters")
    return name


def _cap_or_none(text: str) -> int | None:
    return None if text.lower() in ("none", "unlimited") else _non_negative(text)


def _parser() -> argparse.ArgumentParser:
    # --config is accepted before or after the command (`gateway serve --config FILE`).
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help="settings file (default: $GATEWAY_CONFIG or ./config.toml, "
                             "else built-in defaults)")
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__.split("\n")[0],
                                     parents=[config])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", parents=[config],
                        help="run the gateway (embedded PostgreSQL unless database.url is set)")
    commands.add_parser("migrate", parents=[config], help="apply database migrations and exit")
    commands.add_parser("status", parents=[config],
                        help="list the gateway processes on the database and the accounts "
                             "each dials")
    add_demo_command(commands, config)

    account = commands.add_parser("accounts", help="manage tenants and their caps")
    verbs = account.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", parents=[config],
                              help="create an account and print its API key")
    create.add_argument("--name", required=True, type=_account_name)
    create.add_argument("--concurrent-max", type=_non_negative,
                        help="live calls at once (default: accounts.default_concurrent_max)")
    create.add_argument("--calls-per-minute", type=_non_negative,
                        help="dials per minute (default: accounts.default_calls_per_minute)")
    verbs.add_parser("list", parents=[config], help="list accounts and their caps")
    limits = verbs.add_parser("limits", parents=[config],
                              help="show or change an account's caps (0 blocks dialing: a "
                                   "kill-switch)")
    limits.add_argument("account_id", type=uuid.UUID)
    # SUPPRESS: only the caps named on the command line appear in the namespace.
    limits.add_argument("--concurrent-max", type=_non_negative, default=argparse.SUPPRESS)
    limits.add_argument("--calls-per-minute", type=_non_negative, default=argparse.SUPPRESS)
    limits.add_argument("--daily-calls-max", type=_cap_or_none, default=argparse.SUPPRESS,
                        help="a number, or 'none' for unlimited")
    limits.add_argument("--daily-minutes-max", type=_cap_or_none, default=argparse.SUPPRESS,
                        help="a number, or 'none' for unlimited")
    add_client_commands(commands)
    return parser


# Administrative commands talk to a database that should be up: they give up after this
# long (or database.connect_timeout_seconds, if shorter) instead of waiting like serve does.
ADMIN_CONNECT_WAIT_SECONDS = 3.0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:  # an API client: the server's settings don't matter
        return run_client_command(args)
    try:
        settings = load_settings(getattr(args, "config", None))
        if args.command == "demo":
            settings = demo_settings(settings)
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log.level)
    exit_code, failure, interrupted = 0, None, False
    try:
        if args.command in ("serve", "demo"):
            bootstrap_key = os.environ.get("GATEWAY_BOOTSTRAP_API_KEY") or None
            check_bootstrap_key(bootstrap_key)  # before the embedded cluster starts
            if args.command == "demo":
                exit_code = trio.run(partial(run_demo, settings, args,
                                             bootstrap_key=bootstrap_key))
            else:
                trio.run(partial(serve, settings, tune_gc=True, bootstrap_key=bootstrap_key))
        else:
            exit_code = trio.run(_with_database, settings, args)
    # The edge: one line per cause, whatever nurseries grouped them into; no traceback.
    except* KeyboardInterrupt:  # Ctrl-C before serve's signal handler (still starting up)
        interrupted = True
    except* Exception as group:
        failure = group
    if failure is not None:
        exit_code = _report(failure, settings)
    if interrupted:
        print("gateway: interrupted", file=sys.stderr)
        exit_code = exit_code or 130
    return exit_code


def _report(exc: BaseException, settings: Settings) -> int:
    for line in lines_for(exc, settings):
        print(f"gateway: {line}", file=sys.stderr)
    if settings.log.level == "debug":
        traceback.print_exception(exc, file=sys.stderr)
    return 1


async def _with_database(settings: Settings, args: argparse.Namespace) -> int:
    wait = min(settings.database.connect_timeout_seconds, ADMIN_CONNECT_WAIT_SECONDS)
    async with open_loop(), database_url(settings) as url:
        db = await open_database(url, settings, wait_seconds=wait)
        try:
            await migrate(db)
            if args.command == "migrate":
                return 0
            if args.command == "status":
                return await _status(db)
            return await _accounts(db, settings, args)
        finally:
            await db.close()


def _caps(account: accounts.Account) -> dict[str, object]:
    return {"account_id": str(account.id), "name": account.name,
            "concurrent_max": account.concurrent_max,
            "calls_per_minute": account.calls_per_minute,
            "daily_calls_max": account.daily_calls_max,
            "daily_minutes_max": account.daily_minutes_max}


async def _accounts(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    if args.verb == "create":
        defaults = settings.accounts
        new = await accounts.create_account(
            db, name=args.name,
            concurrent_max=_given(args.concurrent_max, defaults.default_concurrent_max),
            calls_per_minute=_given(args.calls_per_minute, defaults.default_calls_per_minute))
        print(json.dumps({**_caps(new.account), "api_key": new.api_key}, indent=2))
        return 0
    if args.verb == "list":
        for listed in await accounts.list_all(db):
            print(json.dumps(_caps(listed)))
        return 0
    changes = {name: getattr(args, name) for name in
               ("concurrent_max", "calls_per_minute", "daily_calls_max", "daily_minutes_max")
               if hasattr(args, name)}
    account = (await accounts.set_limits(db, args.account_id, **changes) if changes
               else await accounts.get(db, args.account_id))
    if account is None:
        print(f"gateway: no account {args.account_id}", file=sys.stderr)
        return 1
    print(json.dumps(_caps(account), indent=2))
    return 0


async def _status(db: Database) -> int:
    """One JSON line per process known to the database: live ones first, each with the
    accounts it holds leases on (a process gone is listed until it has been gone an hour)."""
    peers = await leases.status(db)
    for peer in sorted(peers, key=lambda p: not p.live):
        print(json.dumps({"process_id": str(peer.id), "name": peer.name,
                          "state": "stopping" if peer.live and peer.stopping
                          else "live" if peer.live else "gone",
                          "started_at": peer.started_at.isoformat(),
                          "renewed_at": peer.renewed_at.isoformat(),
                          "accounts": [str(a) for a in peer.accounts]}))
    return 0


def _given(value: int | None, default: int) -> int:
    return default if value is None else value
