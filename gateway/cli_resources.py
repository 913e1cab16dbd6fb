"""``gateway agents ...``, ``gateway numbers ...``, ``gateway dnc ...``, ``gateway settings
...``, ``gateway calls ...`` and ``gateway webhooks ...``: voice agents, caller IDs, the
do-not-call list, the account's settings, calls' dispositions and webhook endpoints from the
command line, through the SDK.

    gateway agents create --name N [--greeting TEXT] [--status active|inactive]
                          [--sip-uri URI] [--max-concurrent-calls N]
    gateway agents update ID [--name N] [--greeting TEXT] [--status active|inactive]
                             [--sip-uri URI|none] [--max-concurrent-calls N|none]
    gateway agents list [--page P | --all] [--table]
    gateway agents show|delete ID
    gateway numbers create --number E164 [--label L] [--outbound-enabled | --no-outbound-enabled]
    gateway numbers update ID [--label L] [--outbound-enabled | --no-outbound-enabled]
    gateway numbers list [--page P | --all] [--table]
    gateway numbers show|delete ID
    gateway dnc add NUMBER...
    gateway dnc upload FILE
    gateway dnc list [--number N] [--page P | --all] [--table]
    gateway dnc delete NUMBER
    gateway settings show
    gateway settings set --calling-window JSON|@FILE|none
    gateway calls disposition CALL_ID DISPOSITION [--callback-at RFC3339] [--notes TEXT]
    gateway webhooks create --url URL [--event TYPE...] [--description TEXT]
    gateway webhooks list [--page P | --all] [--table]
    gateway webhooks show|enable|delete ID
    gateway webhooks deliveries ID [--status S] [--page P | --all] [--table]
    gateway webhooks resend ID EVENT_ID
    gateway campaigns export ID [--what contacts|calls] [--format csv|jsonl] [--status S]
                                [--outcome O] [--output FILE]

``campaigns export`` (registered by gateway/cli_client.py with the other campaign verbs)
writes the export's bytes as they arrive, to stdout or ``--output FILE`` (``-``: stdout); a
file is removed again if the export fails, so none is left incomplete.

``update`` changes only the fields given (the API's PATCH); ``none`` clears an agent's
``sip_uri`` or ``max_concurrent_calls``, and the account's calling window. Do-not-call
numbers are E.164 or national in the server's default region (quote a national number with
spaces: ``"(212) 555-0100"``). A JSON flag takes the JSON itself or ``@FILE``, a file
holding it; the server checks its shape (a 400 names the part: ``calling_window.start``).
Connection options, output and errors are those of every client command
(gateway/cli_output.py).
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
from pathlib import Path
from typing import Any, TextIO

import attrs

from gateway.cli_output import UsageError, page_options, print_json, print_list
from gateway.client import Client
from gateway.vocabulary import (
    AgentStatus,
    ContactStatus,
    DeliveryStatus,
    Disposition,
    Outcome,
    WebhookEvent,
)


@attrs.frozen
class Group:
    """One command group: its SDK resource, the fields its flags set, its table."""

    command: str       # the ``gateway`` command: "agents"
    noun: str          # one of its objects, for help texts: "agent"
    resource: str      # the SDK attribute: client.agents
    walker: str        # the SDK's every-page generator: client.agents.iter_agents
    fields: tuple[str, ...]   # the API fields the flags set (create and update)
    columns: tuple[str, ...]  # --table


AGENTS = Group("agents", "agent", "agents", "iter_agents",
               ("name", "status", "greeting", "sip_uri", "max_concurrent_calls"),
               ("id", "status", "name", "variables", "sip_uri", "created_at"))
NUMBERS = Group("numbers", "phone number", "phone_numbers", "iter_phone_numbers",
                ("number", "outbound_enabled", "label"),
                ("id", "number", "outbound_enabled", "label", "created_at"))
GROUPS = {group.command: group for group in (AGENTS, NUMBERS)}
DNC = "dnc"
DNC_COLUMNS = ("number", "source", "created_at")
SETTINGS = "settings"
CALLS = "calls"
WEBHOOKS = "webhooks"
WEBHOOK_COLUMNS = ("id", "status", "url", "events", "failing_since", "created_at")
DELIVERY_COLUMNS = ("event_id", "type", "status", "attempts", "last_status_code",
                    "last_error", "created_at")
RESOURCE_COMMANDS = (*GROUPS, DNC, SETTINGS, CALLS, WEBHOOKS)
WINDOW_HELP = ('JSON such as \'{"days": ["mon", "tue", "wed", "thu", "fri"], "start": '
               '"09:00", "end": "20:00"}\' (each contact\'s local time), or @FILE')


def _or_none(text: str) -> str | None:
    """``none`` (any case) is JSON null: on update, it clears the field."""
    return None if text.lower() == "none" else text


def _count_or_none(text: str) -> int | None:
    """A whole number, or ``none`` (JSON null: no cap); the server checks the bounds."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number or 'none': {text!r}") from None


def json_argument(text: str) -> Any:
    """A JSON flag's value: the JSON text, or ``@FILE`` for the file's; ``none`` (any
    case) is null. Only the syntax is checked here: the server names what is wrong in it."""
    if text.lower() == "none":
        return None
    source = text
    if text.startswith("@"):
        try:
            source = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {text[1:]}: {exc.strerror}"
                                             ) from None
        except UnicodeDecodeError:
            raise argparse.ArgumentTypeError(f"{text[1:]} is not UTF-8 text") from None
    try:
        return json.loads(source)
    except json.JSONDecodeError as exc:
        where = f" in {text[1:]}" if source is not text else ""
        raise argparse.ArgumentTypeError(f"not JSON{where} ({exc.msg} at character "
                                         f"{exc.pos}): {source[:80]!r}") from None
    except (RecursionError, ValueError):  # nested too deeply, or a huge integer
        raise argparse.ArgumentTypeError("JSON too deeply nested or with too long a "
                                         "number") from None


def add_resource_commands(subparsers: argparse._SubParsersAction,
                          conn: argparse.ArgumentParser) -> None:
    """Add ``agents``, ``numbers``, ``dnc``, ``settings``, ``calls`` and ``webhooks`` (``conn``: the
    connection options' parent parser)."""
    agents = _verbs(subparsers, conn, AGENTS,
                    "voice agents: what a connected call hears and where it is sent")
    for verb in ("create", "update"):
        parser = _field_verb(agents, conn, AGENTS, verb)
        parser.add_argument("--name", required=verb == "create", default=argparse.SUPPRESS)
        parser.add_argument("--greeting", default=argparse.SUPPRESS,
                            help="the greeting template; {{variables}} come from the "
                                 "contacts' CSV columns, e.g. 'Hi {{first_name}}'")
        parser.add_argument("--status", choices=[status.value for status in AgentStatus],
                            default=argparse.SUPPRESS,
                            help="campaigns cannot be created or started with an inactive "
                                 "agent (default: active)")
        parser.add_argument("--sip-uri", type=_or_none, default=argparse.SUPPRESS,
                            help="where a connected call is sent, e.g. sip:agent@10.0.0.5"
                                 + ("; 'none' clears it" if verb == "update" else ""))
        parser.add_argument("--max-concurrent-calls", type=_count_or_none,
                            default=argparse.SUPPRESS,
                            metavar="N|none" if verb == "update" else "N",
                            help="the calls the agent takes at once (1 to 10000), shared by "
                                 "the campaigns that use it; 'none': no cap"
                                 + (" (clears it)" if verb == "update" else " (the default)"))

    numbers = _verbs(subparsers, conn, NUMBERS, "caller IDs campaigns dial from")
    for verb in ("create", "update"):
        parser = _field_verb(numbers, conn, NUMBERS, verb)
        if verb == "create":
            parser.add_argument("--number", required=True, default=argparse.SUPPRESS,
                                help="E.164, e.g. +14155550100")
        parser.add_argument("--label", default=argparse.SUPPRESS)
        parser.add_argument("--outbound-enabled", action=argparse.BooleanOptionalAction,
                            default=argparse.SUPPRESS,
                            help="may campaigns dial from it (default on create: yes)")
    _add_dnc(subparsers, conn)
    _add_settings(subparsers, conn)
    _add_calls(subparsers, conn)
    _add_webhooks(subparsers, conn)


def _add_webhooks(subparsers: argparse._SubParsersAction,
                  conn: argparse.ArgumentParser) -> None:
    what = "webhook endpoints: where the account's events are sent, signed"
    parser = subparsers.add_parser(WEBHOOKS, parents=[conn], help=f"{what} (REST client)",
                                   description=f"Create, list, show, enable and delete "
                                               f"{what}, and read their deliveries, through "
                                               "the gateway's REST API.")
    verbs = parser.add_subparsers(dest=f"{WEBHOOKS}_verb", required=True, metavar="VERB")
    create = verbs.add_parser("create", parents=[conn],
                              help="add an endpoint (prints its signing secret, once)")
    create.add_argument("--url", required=True, help="an http:// or https:// URL")
    create.add_argument("--event", action="append", dest="events",
                        choices=[event.value for event in WebhookEvent],
                        help="an event type it takes (repeat for several; default: all)")
    create.add_argument("--description")
    page_options(verbs.add_parser("list", parents=[conn], help="list endpoints, oldest first"))
    for verb, text in (("show", "show an endpoint"), ("delete", "delete an endpoint"),
                       ("enable", "make a disabled endpoint take events again")):
        verbs.add_parser(verb, parents=[conn], help=text).add_argument("id")
    deliveries = verbs.add_parser("deliveries", parents=[conn],
                                  help="an endpoint's deliveries, newest first")
    deliveries.add_argument("id")
    deliveries.add_argument("--status", choices=[status.value for status in DeliveryStatus])
    page_options(deliveries)
    resend = verbs.add_parser("resend", parents=[conn],
                              help="send an event to the endpoint again")
    resend.add_argument("id")
    resend.add_argument("event_id", metavar="EVENT_ID", help="a delivery's event_id")


def _run_webhooks(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    verb, webhooks = args.webhooks_verb, client.webhooks
    if verb == "create":
        print_json(webhooks.create(args.url, events=args.events,
                                   description=args.description), out)
    elif verb in ("show", "enable"):
        print_json(getattr(webhooks, "get" if verb == "show" else verb)(args.id), out)
    elif verb == "delete":
        webhooks.delete(args.id)
        print_json({"id": args.id, "deleted": True}, out)
    elif verb == "resend":
        print_json(webhooks.resend(args.id, args.event_id), out)
    elif verb == "deliveries":
        print_list(args, "deliveries",
                   lambda: webhooks.iter_deliveries(args.id, status=args.status),
                   lambda: webhooks.deliveries(args.id, page=args.page, status=args.status),
                   DELIVERY_COLUMNS, out, err)
    else:
        print_list(args, WEBHOOKS, webhooks.iter_webhooks,
                   lambda: webhooks.list(page=args.page), WEBHOOK_COLUMNS, out, err)
    return 0


def _add_dnc(subparsers: argparse._SubParsersAction, conn: argparse.ArgumentParser) -> None:
    what = "the do-not-call list: numbers no campaign dials"
    parser = subparsers.add_parser(DNC, parents=[conn], help=f"{what} (REST client)",
                                   description=f"Add to, list and delete from {what}, "
                                               "through the gateway's REST API.")
    verbs = parser.add_subparsers(dest=f"{DNC}_verb", required=True, metavar="VERB")
    number = "E.164 (+12125550100) or national in the server's default region"
    verbs.add_parser("add", parents=[conn], help="add numbers (at most 10000 at once)"
                     ).add_argument("numbers", nargs="+", metavar="NUMBER", help=number)
    verbs.add_parser("upload", parents=[conn],
                     help="add the numbers of a CSV file with a phone_number column"
                     ).add_argument("file", metavar="FILE")
    listing = verbs.add_parser("list", parents=[conn], help="list the numbers, in order")
    listing.add_argument("--number", help=f"only this number ({number})")
    page_options(listing)
    verbs.add_parser("delete", parents=[conn], help="take a number off the list"
                     ).add_argument("number", metavar="NUMBER", help=number)


def _add_settings(subparsers: argparse._SubParsersAction,
                  conn: argparse.ArgumentParser) -> None:
    what = "the account's settings: what its campaigns inherit"
    parser = subparsers.add_parser(SETTINGS, parents=[conn], help=f"{what} (REST client)",
                                   description=f"Show and change {what}, through the "
                                               "gateway's REST API.")
    verbs = parser.add_subparsers(dest=f"{SETTINGS}_verb", required=True, metavar="VERB")
    verbs.add_parser("show", parents=[conn], help="show the settings")
    change = verbs.add_parser("set", parents=[conn],
                              help="change the settings given: only those")
    change.add_argument("--calling-window", type=json_argument, default=argparse.SUPPRESS,
                        metavar="JSON|none",
                        help=f"the window of campaigns with none of their own: {WINDOW_HELP}; "
                             "'none' clears it (they call at any hour)")


def _add_calls(subparsers: argparse._SubParsersAction, conn: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(CALLS, parents=[conn],
                                   help="say how a call went (REST client)",
                                   description="Give a call's disposition through the "
                                               "gateway's REST API (the call ids are those "
                                               "of 'gateway campaigns calls').")
    verbs = parser.add_subparsers(dest=f"{CALLS}_verb", required=True, metavar="VERB")
    disposition = verbs.add_parser(
        "disposition", parents=[conn],
        help="how an answered call went: once, until 24 hours after it ended")
    disposition.add_argument("call_id", metavar="CALL_ID")
    disposition.add_argument("disposition", metavar="DISPOSITION",
                             choices=[value.value for value in Disposition],
                             help=", ".join(value.value for value in Disposition))
    disposition.add_argument("--callback-at", metavar="RFC3339",
                             help="with callback (only): when to call the contact again, "
                                  "e.g. 2030-01-15T14:00:00-05:00; at most 30 days ahead")
    disposition.add_argument("--notes", metavar="TEXT", help="up to 2000 characters")


def _verbs(subparsers: argparse._SubParsersAction, conn: argparse.ArgumentParser,
           group: Group, what: str) -> argparse._SubParsersAction:
    """The group's parser with its ``list``, ``show`` and ``delete``; returns its verbs."""
    parser = subparsers.add_parser(group.command, parents=[conn],
                                   help=f"{what} (REST client)",
                                   description=f"Create, list, show, update and delete "
                                               f"{what} through the gateway's REST API.")
    verbs = parser.add_subparsers(dest=f"{group.command}_verb", required=True,
                                  metavar="VERB")
    page_options(verbs.add_parser("list", parents=[conn],
                                  help=f"list {group.command}, oldest first"))
    verbs.add_parser("show", parents=[conn], help=f"show a {group.noun}").add_argument("id")
    verbs.add_parser("delete", parents=[conn],
                     help=f"delete a {group.noun} (campaigns keep their history)"
                     ).add_argument("id")
    return verbs


def _field_verb(verbs: argparse._SubParsersAction, conn: argparse.ArgumentParser,
                group: Group, verb: str) -> argparse.ArgumentParser:
    if verb == "create":
        return verbs.add_parser("create", parents=[conn], help=f"create a {group.noun}")
    parser = verbs.add_parser("update", parents=[conn],
                              help=f"change a {group.noun}: only the fields given")
    parser.add_argument("id")
    return parser


def run_resource(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run a parsed ``gateway agents|numbers|dnc|settings|calls ...`` command; returns the
    exit code."""
    if args.command == DNC:
        return _run_dnc(client, args, out, err)
    if args.command == WEBHOOKS:
        return _run_webhooks(client, args, out, err)
    if args.command == SETTINGS:
        if args.settings_verb == "show":
            print_json(client.settings.get(), out)
        elif not hasattr(args, "calling_window"):
            raise UsageError("nothing to set: give --calling-window")
        else:
            print_json(client.settings.update(calling_window=args.calling_window), out)
        return 0
    if args.command == CALLS:  # its one verb: disposition
        print_json(client.calls.disposition(args.call_id, args.disposition,
                                            callback_at=args.callback_at, notes=args.notes),
                   out)
        return 0
    group = GROUPS[args.command]
    verb = getattr(args, f"{group.command}_verb")
    resource = getattr(client, group.resource)
    if verb == "create":
        print_json(resource.create(**_fields(args, group)), out)
    elif verb == "update":
        changes = _fields(args, group)
        if not changes:
            flags = ", ".join("--" + name.replace("_", "-") for name in group.fields
                              if name != "number")
            raise UsageError(f"nothing to update: give at least one of {flags}")
        print_json(resource.update(args.id, **changes), out)
    elif verb == "show":
        print_json(resource.get(args.id), out)
    elif verb == "delete":
        resource.delete(args.id)
        print_json({"id": args.id, "deleted": True}, out)
    else:
        print_list(args, group.command, getattr(resource, group.walker),
                   lambda: resource.list(page=args.page), group.columns, out, err)
    return 0


def _run_dnc(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    verb, dnc = args.dnc_verb, client.dnc
    if verb == "add":
        print_json(dnc.add(args.numbers), out)
    elif verb == "upload":
        try:
            csv = open(args.file, "rb")
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
        with csv:
            print_json(dnc.upload(csv), out)
    elif verb == "delete":
        dnc.delete(args.number)
        print_json({"number": args.number, "deleted": True}, out)
    else:
        print_list(args, "numbers", dnc.iter_dnc,
                   lambda: dnc.list(page=args.page, number=args.number), DNC_COLUMNS, out, err)
    return 0


def _fields(args: argparse.Namespace, group: Group) -> dict[str, Any]:
    """The API fields given on the command line (the flags default to absent)."""
    return {name: getattr(args, name) for name in group.fields if hasattr(args, name)}


def add_export_command(verbs: argparse._SubParsersAction,
                       conn: argparse.ArgumentParser) -> None:
    """``gateway campaigns export`` (``verbs``: the campaigns group's verbs)."""
    export = verbs.add_parser(
        "export", parents=[conn], help="export every contact or call attempt (CSV, JSONL)",
        description="Write every contact (or call attempt) of a campaign as CSV or JSON "
                    "lines, as the server streams it: the fields of the contacts and calls "
                    "pages, a CSV column per custom field.")
    export.add_argument("id")
    export.add_argument("--what", choices=("contacts", "calls"), default="contacts",
                        help="the campaign's contacts (default) or its call attempts")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                        help="CSV (default; cells a spreadsheet would evaluate get a "
                             "leading ') or JSON lines")
    export.add_argument("--status", choices=[status.value for status in ContactStatus],
                        help="contacts only: those of this status")
    export.add_argument("--outcome", choices=[outcome.value for outcome in Outcome],
                        help="calls only: the attempts that ended so")
    export.add_argument("--output", "-o", metavar="FILE", default="-",
                        help="where to write it (default, or '-': stdout)")


def run_export(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """``gateway campaigns export``: the export's bytes to ``--output`` or ``out``."""
    if args.what == "calls" and args.status is not None:
        raise UsageError("--status filters contacts; with --what calls, use --outcome")
    if args.what == "contacts" and args.outcome is not None:
        raise UsageError("--outcome filters calls; add --what calls")
    options = {"what": args.what, "format": args.format, "status": args.status,
               "outcome": args.outcome}
    if args.output != "-":
        try:
            client.campaigns.export_to(args.id, args.output, **options)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
        return 0
    binary = getattr(out, "buffer", None)  # a real stdout; else a text stream (tests)
    if binary is not None:
        out.flush()
        try:
            for chunk in client.campaigns.export(args.id, **options):
                binary.write(chunk)
            binary.flush()
        except BrokenPipeError:  # the reader is gone (| head): not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), binary.fileno())  # no error at exit
        return 0
    decoder = codecs.getincrementaldecoder("utf-8")()
    for chunk in client.campaigns.export(args.id, **options):
        out.write(decoder.decode(chunk))
    out.write(decoder.decode(b"", final=True))
    return 0
