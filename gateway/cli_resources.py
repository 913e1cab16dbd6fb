"""``gateway agents ...`` and ``gateway numbers ...``: voice agents and caller IDs from the
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

``update`` changes only the fields given (the API's PATCH); ``none`` clears an agent's
``sip_uri`` or ``max_concurrent_calls``. Connection options, output and errors are those of
every client command (gateway/cli_output.py).
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import attrs

from gateway.cli_output import UsageError, page_options, print_json, print_list
from gateway.client import Client
from gateway.vocabulary import AgentStatus


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
RESOURCE_COMMANDS = tuple(GROUPS)


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


def add_resource_commands(subparsers: argparse._SubParsersAction,
                          conn: argparse.ArgumentParser) -> None:
    """Add ``agents`` and ``numbers`` (``conn``: the connection options' parent parser)."""
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
    """Run a parsed ``gateway agents|numbers ...`` command; returns the exit code."""
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


def _fields(args: argparse.Namespace, group: Group) -> dict[str, Any]:
    """The API fields given on the command line (the flags default to absent)."""
    return {name: getattr(args, name) for name in group.fields if hasattr(args, name)}
