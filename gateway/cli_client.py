"""``gateway campaigns ...``: the REST API from the command line, through the SDK.

    gateway campaigns create --csv FILE --name N --agent-id ID --phone-number-id ID
                             [--max-concurrent-calls K] [--retries-per-contact R]
                             [--retry-delay-seconds S] [--scheduled-at RFC3339]
                             [--calling-window JSON|@FILE] [--retry-policy JSON|@FILE]
    gateway campaigns list [--status S] [--page P | --all] [--table]
    gateway campaigns show|start|pause|resume|stop|delete ID
    gateway campaigns contacts ID [--status S] [--page P | --all] [--table]
    gateway campaigns calls ID [--page P | --all] [--table]
    gateway campaigns watch ID
    gateway campaigns rerun ID --status S [--status S...] [--name N]
    gateway campaigns export ID [--what contacts|calls] [--format csv|jsonl] [--status S]
                                [--outcome O] [--output FILE]

``gateway agents|numbers|dnc|settings|calls ...`` are registered here too (see
gateway/cli_resources.py). Every command takes ``--base-url`` (else ``$GATEWAY_BASE_URL``,
else http://127.0.0.1:8080) and ``--api-key`` (else ``$GATEWAY_API_KEY``; required).

Output and errors: see gateway/cli_output.py (JSON, JSON lines or ``--table``; one error
line ``gateway: <code>: <message>``, exit 1 for an API or connection error, 2 for a usage
error). ``watch`` draws a progress bar on stderr (plain lines when stderr is not a
terminal) and prints the final snapshot as JSON on stdout.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from gateway.cli_output import (
    UsageError,
    connection_options,
    page_options,
    print_json,
    print_list,
    run_with_client,
)
from gateway.cli_resources import (
    RESOURCE_COMMANDS,
    WINDOW_HELP,
    add_export_command,
    add_resource_commands,
    json_argument,
    run_export,
    run_resource,
)
from gateway.client import Client, CreatedCampaign, GatewayError, Snapshot
from gateway.vocabulary import POLICY_OUTCOMES, CampaignStatus, ContactStatus

# The ``gateway`` commands that are API clients (the server's settings don't matter).
CLIENT_COMMANDS = ("campaigns", *RESOURCE_COMMANDS)
TABLE_COLUMNS = {
    "list": ("id", "status", "name", "contact_counts.total", "contact_counts.completed",
             "contact_counts.failed", "created_at"),
    "contacts": ("id", "phone_number", "status", "attempts", "last_outcome",
                 "next_attempt_at"),
    "calls": ("id", "phone_number", "attempt", "outcome", "dialed_at", "duration_seconds",
              "disposition"),
}


def add_client_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``campaigns``, ``agents``, ``numbers``, ``dnc``, ``settings`` and ``calls``
    command groups to the ``gateway`` command's subparsers."""
    conn = connection_options()
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
    create.add_argument("--calling-window", type=json_argument, metavar="JSON",
                        help=f"when its contacts may be called: {WINDOW_HELP} (default: the "
                             "account's window, see 'gateway settings show')")
    create.add_argument("--retry-policy", type=json_argument, metavar="JSON",
                        help='retries by outcome, JSON such as \'{"no_answer": '
                             '{"delay_seconds": 3600, "max_attempts": 3}}\' (outcomes: '
                             f"{', '.join(POLICY_OUTCOMES)}), or @FILE")

    listing = verbs.add_parser("list", parents=[conn], help="list campaigns, newest first")
    listing.add_argument("--status", choices=[status.value for status in CampaignStatus])
    page_options(listing)

    for verb, text in (("show", "show a campaign"), ("start", "start (or resume) a campaign"),
                       ("pause", "pause a running campaign"),
                       ("resume", "resume a paused campaign"),
                       ("stop", "stop a campaign: contacts never dialed are skipped"),
                       ("delete", "delete a draft campaign"),
                       ("watch", "live progress until the campaign ends")):
        verbs.add_parser(verb, parents=[conn], help=text).add_argument("id")

    contacts = verbs.add_parser("contacts", parents=[conn], help="list a campaign's contacts")
    contacts.add_argument("id")
    contacts.add_argument("--status", choices=[status.value for status in ContactStatus])
    page_options(contacts)

    calls = verbs.add_parser("calls", parents=[conn], help="list a campaign's call attempts")
    calls.add_argument("id")
    page_options(calls)
    rerun = verbs.add_parser("rerun", parents=[conn],
                             help="a new draft of a finished campaign's contacts of some "
                                  "statuses")
    rerun.add_argument("id")
    rerun.add_argument("--status", action="append", required=True, dest="statuses",
                       choices=[status.value for status in ContactStatus],
                       help="a status to take the contacts of (repeat for several)")
    rerun.add_argument("--name", help="the new campaign's name (default: '<name> (rerun)')")
    add_export_command(verbs, conn)
    add_resource_commands(subparsers, conn)


def run_client_command(args: argparse.Namespace, *, stdout: TextIO | None = None,
                       stderr: TextIO | None = None) -> int:
    """Run a parsed ``gateway campaigns|agents|numbers|dnc|settings|calls ...`` command;
    returns the exit code."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    if args.command == "campaigns":
        return run_with_client(args, lambda client: _run(client, args, out, err), err)
    return run_with_client(args, lambda client: run_resource(client, args, out, err), err)


def _run(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    verb = args.campaigns_verb
    campaigns = client.campaigns
    if verb == "create":
        print_json(_create(client, args), out)
    elif verb in ("show", "start", "pause", "resume", "stop"):
        action = campaigns.get if verb == "show" else getattr(campaigns, verb)
        print_json(action(args.id), out)
    elif verb == "delete":
        campaigns.delete(args.id)
        print_json({"id": args.id, "deleted": True}, out)
    elif verb == "watch":
        return _watch(client, args.id, out, err)
    elif verb == "export":
        return run_export(client, args, out)
    elif verb == "rerun":
        print_json(campaigns.rerun(args.id, args.statuses, name=args.name), out)
    else:
        _list(client, args, out, err)
    return 0


def _create(client: Client, args: argparse.Namespace) -> CreatedCampaign:
    try:
        csv = open(args.csv, "rb")
    except OSError as exc:
        raise UsageError(f"cannot read {args.csv}: {exc.strerror}") from None
    with csv:
        return client.campaigns.create(
            name=args.name, agent_id=args.agent_id, phone_number_id=args.phone_number_id,
            contacts=csv, max_concurrent_calls=args.max_concurrent_calls,
            retries_per_contact=args.retries_per_contact,
            retry_delay_seconds=args.retry_delay_seconds, scheduled_at=args.scheduled_at,
            calling_window=args.calling_window, retry_policy=args.retry_policy)


def _list(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    verb, campaigns = args.campaigns_verb, client.campaigns
    columns = TABLE_COLUMNS[verb]
    if verb == "list":
        print_list(args, "campaigns", lambda: campaigns.iter_campaigns(status=args.status),
                   lambda: campaigns.list(status=args.status, page=args.page), columns, out,
                   err)
    elif verb == "contacts":
        print_list(args, "contacts", lambda: campaigns.iter_contacts(args.id, status=args.status),
                   lambda: campaigns.contacts(args.id, status=args.status, page=args.page),
                   columns, out, err)
    else:
        print_list(args, "calls", lambda: campaigns.iter_calls(args.id),
                   lambda: campaigns.calls(args.id, page=args.page), columns, out, err)


def _watch(client: Client, campaign_id: str, out: TextIO, err: TextIO) -> int:
    """``watch``: progress on ``err``, the final snapshot as JSON on ``out``."""
    print_json(watch_progress(client, campaign_id, err), out)
    return 0


def watch_progress(client: Client, campaign_id: str, err: TextIO) -> Snapshot:
    """Progress on ``err`` from the event stream until the campaign ends; returns the last
    snapshot.

    On a terminal: a live rich progress bar. Otherwise (a log file, CI): the bar is off and
    each change of the counts is one plain line.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(file=err, highlight=False)
    live = console.is_terminal
    final: Snapshot | None = None
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
    return final


# The counts shown beside the bar: contacts by status, and the calls live now.
SHOWN: tuple[str, ...] = (ContactStatus.FAILED, ContactStatus.SKIPPED, ContactStatus.PENDING,
                          ContactStatus.RETRY_PENDING, "in_flight")


def _done(snapshot: Snapshot) -> int:
    """The contacts decided: the bar's progress."""
    return snapshot["completed"] + snapshot["failed"] + snapshot["skipped"]


def _counts(snapshot: Snapshot) -> str:
    return " ".join(f"{name}={snapshot.get(name, 0)}" for name in SHOWN)


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """``python -m gateway.cli_client campaigns|agents|numbers|dnc|settings|calls ...``: the
    same commands on their own."""
    parser = argparse.ArgumentParser(prog="gateway")
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    return run_client_command(parser.parse_args(argv), stdout=stdout, stderr=stderr)


if __name__ == "__main__":
    raise SystemExit(main())
