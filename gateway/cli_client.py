"""``gateway campaigns ...``: the REST API from the command line, through the SDK.

    gateway campaigns create --csv FILE --name N --agent-id ID --phone-number-id ID
                             [--max-concurrent-calls K] [--retries-per-contact R]
                             [--retry-delay-seconds S] [--scheduled-at RFC3339]
    gateway campaigns list [--status S] [--page P | --all] [--table]
    gateway campaigns show|start|pause|resume|stop|delete ID
    gateway campaigns contacts ID [--status S] [--page P | --all] [--table]
    gateway campaigns calls ID [--page P | --all] [--table]
    gateway campaigns watch ID

Every command takes ``--base-url`` (else ``$GATEWAY_BASE_URL``, else http://127.0.0.1:8080)
and ``--api-key`` (else ``$GATEWAY_API_KEY``; required).

Output is for scripts: one object as indented JSON; lists as JSON lines (one object a line;
``--table`` for aligned columns); a note on stderr when more pages exist. ``watch`` draws a
progress bar on stderr (plain lines when stderr is not a terminal) and prints the final
snapshot as JSON on stdout. Errors are one line on stderr, ``gateway: <code>: <message>``,
exit 1 for an API or connection error, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Iterable, TextIO

from gateway.client import Client, GatewayError

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
CAMPAIGN_STATUSES = ("draft", "scheduled", "running", "paused", "completed", "failed")
CONTACT_STATUSES = ("pending", "in_progress", "retry_pending", "completed", "failed", "skipped")
TERMINAL = ("completed", "failed")
TABLE_COLUMNS = {
    "list": ("id", "status", "name", "contact_counts.total", "contact_counts.completed",
             "contact_counts.failed", "created_at"),
    "contacts": ("id", "phone_number", "status", "attempts", "last_outcome",
                 "next_attempt_at"),
    "calls": ("id", "phone_number", "attempt", "outcome", "dialed_at", "duration_seconds"),
}


class UsageError(Exception):
    """A problem with the command line or the environment: exit 2."""


def _connection_options() -> argparse.ArgumentParser:
    # SUPPRESS: accepted before or after the verb without one overriding the other.
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--base-url", default=argparse.SUPPRESS,
                         help=f"gateway URL (default: $GATEWAY_BASE_URL or {DEFAULT_BASE_URL})")
    options.add_argument("--api-key", default=argparse.SUPPRESS,
                         help="API key (default: $GATEWAY_API_KEY)")
    return options


def add_client_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``campaigns`` command group to the ``gateway`` command's subparsers."""
    conn = _connection_options()
    group = subparsers.add_parser("campaigns", parents=[conn],
                                  help="create, control and watch campaigns (REST client)",
                                  description="Create, control and watch campaigns through "
                                              "the gateway's REST API.")
    verbs = group.add_subparsers(dest="campaigns_verb", required=True, metavar="VERB")

    create = verbs.add_parser("create", parents=[conn], help="create a campaign from a CSV")
    create.add_argument("--csv", required=True, help="contacts CSV (a phone_number column)")
    create.add_argument("--name", required=True)
    create.add_argument("--agent-id", required=True)
    create.add_argument("--phone-number-id", required=True)
    create.add_argument("--max-concurrent-calls", type=int)
    create.add_argument("--retries-per-contact", type=int)
    create.add_argument("--retry-delay-seconds", type=int)
    create.add_argument("--scheduled-at", help="RFC 3339 time with a zone, in the future")

    listing = verbs.add_parser("list", parents=[conn], help="list campaigns, newest first")
    listing.add_argument("--status", choices=CAMPAIGN_STATUSES)
    _page_options(listing)

    for verb, text in (("show", "show a campaign"), ("start", "start (or resume) a campaign"),
                       ("pause", "pause a running campaign"),
                       ("resume", "resume a paused campaign"),
                       ("stop", "stop a campaign: contacts never dialed are skipped"),
                       ("delete", "delete a draft campaign"),
                       ("watch", "live progress until the campaign ends")):
        verbs.add_parser(verb, parents=[conn], help=text).add_argument("id")

    contacts = verbs.add_parser("contacts", parents=[conn], help="list a campaign's contacts")
    contacts.add_argument("id")
    contacts.add_argument("--status", choices=CONTACT_STATUSES)
    _page_options(contacts)

    calls = verbs.add_parser("calls", parents=[conn], help="list a campaign's call attempts")
    calls.add_argument("id")
    _page_options(calls)


def _page_options(parser: argparse.ArgumentParser) -> None:
    pages = parser.add_mutually_exclusive_group()
    pages.add_argument("--page", type=int, default=0, help="zero-based page of 100")
    pages.add_argument("--all", action="store_true", help="every page")
    parser.add_argument("--table", action="store_true",
                        help="aligned columns instead of JSON lines")


def run_client_command(args: argparse.Namespace, *, stdout: TextIO | None = None,
                       stderr: TextIO | None = None) -> int:
    """Run a parsed ``gateway campaigns ...`` command; returns the exit code."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        base_url, api_key = _connection(args)
        with Client(base_url, api_key) as client:
            return _run(client, args, out, err)
    except UsageError as exc:
        print(f"gateway: usage: {exc}", file=err)
        return 2
    except GatewayError as exc:
        print(f"gateway: {exc.code}: {exc.message}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130


def _connection(args: argparse.Namespace) -> tuple[str, str]:
    base_url = (getattr(args, "base_url", None) or os.environ.get("GATEWAY_BASE_URL")
                or DEFAULT_BASE_URL)
    api_key = getattr(args, "api_key", None) or os.environ.get("GATEWAY_API_KEY")
    if not api_key:
        raise UsageError("no API key: pass --api-key or set GATEWAY_API_KEY")
    return base_url, api_key


def _run(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    verb = args.campaigns_verb
    campaigns = client.campaigns
    if verb == "create":
        _print_json(_create(client, args), out)
    elif verb in ("show", "start", "pause", "resume", "stop"):
        action = campaigns.get if verb == "show" else getattr(campaigns, verb)
        _print_json(action(args.id), out)
    elif verb == "delete":
        campaigns.delete(args.id)
        _print_json({"id": args.id, "deleted": True}, out)
    elif verb == "watch":
        return _watch(client, args.id, out, err)
    else:
        _list(client, args, out, err)
    return 0


def _create(client: Client, args: argparse.Namespace) -> dict:
    try:
        csv = open(args.csv, "rb")
    except OSError as exc:
        raise UsageError(f"cannot read {args.csv}: {exc.strerror}") from None
    with csv:
        return client.campaigns.create(
            name=args.name, agent_id=args.agent_id, phone_number_id=args.phone_number_id,
            contacts=csv, max_concurrent_calls=args.max_concurrent_calls,
            retries_per_contact=args.retries_per_contact,
            retry_delay_seconds=args.retry_delay_seconds, scheduled_at=args.scheduled_at)


def _list(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    verb, campaigns = args.campaigns_verb, client.campaigns
    if verb == "list":
        walk, fetch = (lambda: campaigns.iter_campaigns(status=args.status),
                       lambda: campaigns.list(status=args.status, page=args.page))
    elif verb == "contacts":
        walk, fetch = (lambda: campaigns.iter_contacts(args.id, status=args.status),
                       lambda: campaigns.contacts(args.id, status=args.status, page=args.page))
    else:
        walk, fetch = (lambda: campaigns.iter_calls(args.id),
                       lambda: campaigns.calls(args.id, page=args.page))
    if args.all:
        items: Iterable[dict] = walk()
    else:
        body = fetch()
        items = body["data"]
        if body["has_more"]:
            print(f"gateway: note: page {body['page']} of {body['total']} {verb}; "
                  f"next: --page {body['page'] + 1} (or --all)", file=err)
    if args.table:
        _print_table(list(items), TABLE_COLUMNS[verb], out)
    else:
        for item in items:
            print(json.dumps(item, separators=(",", ":")), file=out)


def _print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, indent=2), file=out)


def _cell(item: dict, dotted: str) -> str:
    value: Any = item
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "-" if value is None else str(value)


def _print_table(items: list[dict], columns: tuple[str, ...], out: TextIO) -> None:
    rows = [[column.rsplit(".", 1)[-1].upper() for column in columns]]
    rows += [[_cell(item, column) for column in columns] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(),
              file=out)


def _watch(client: Client, campaign_id: str, out: TextIO, err: TextIO) -> int:
    """Progress on ``err`` from the event stream, the final snapshot as JSON on ``out``.

    On a terminal: a live rich progress bar. Otherwise (a log file, CI): the bar is off and
    each change of the counts is one plain line.
    """
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn,
                               TextColumn, TimeElapsedColumn)

    console = Console(file=err, highlight=False)
    live = console.is_terminal
    final: dict | None = None
    last_line = ""
    with Progress(TextColumn("{task.fields[status]:<9}"), BarColumn(bar_width=30),
                  MofNCompleteColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[detail]}", markup=False), TimeElapsedColumn(),
                  console=console, disable=not live) as progress:
        task = progress.add_task("campaign", total=None, status="...", detail="")
        for snapshot in client.campaigns.stream_events(campaign_id):
            final = snapshot
            done, detail = _done(snapshot), _counts(snapshot)
            progress.update(task, total=snapshot["total"] or None, completed=done,
                            status=snapshot["status"], detail=detail)
            line = f"{snapshot['status']} {done}/{snapshot['total']} {detail}"
            if not live and line != last_line:
                print(line, file=err, flush=True)
                last_line = line
    if final is None:  # pragma: no cover - the server always sends a snapshot first
        raise GatewayError("the event stream ended without a snapshot", code="invalid_response")
    _print_json(final, out)
    return 0


def _done(snapshot: dict) -> int:
    return snapshot["completed"] + snapshot["failed"] + snapshot["skipped"]


def _counts(snapshot: dict) -> str:
    names = ("failed", "skipped", "pending", "retry_pending", "in_flight")
    return " ".join(f"{name}={snapshot.get(name, 0)}" for name in names)


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """``python -m gateway.cli_client campaigns ...``: the same commands on their own."""
    parser = argparse.ArgumentParser(prog="gateway")
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    return run_client_command(parser.parse_args(argv), stdout=stdout, stderr=stderr)


if __name__ == "__main__":
    raise SystemExit(main())
