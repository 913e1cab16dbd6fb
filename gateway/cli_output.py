"""What the REST client commands (``gateway campaigns|agents|numbers ...``) share: the
connection options, the error edge, and the output (JSON, JSON lines, tables, pages).

Output is for scripts: one object as indented JSON; lists as JSON lines (one object a line;
``--table`` for aligned columns); a note on stderr when more pages exist. Errors are one
line on stderr, ``gateway: <code>: <message>``, exit 1 for an API or connection error, 2
for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO, TypeVar

from gateway.client import Client, GatewayError, Page

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
# One object of a list: a Campaign, a Contact, an Agent...
Item = TypeVar("Item", bound=Mapping[str, object])


class UsageError(Exception):
    """A problem with the command line or the environment: exit 2."""


def connection_options() -> argparse.ArgumentParser:
    """``--base-url`` and ``--api-key``, as a parent parser of every client command."""
    # SUPPRESS: accepted before or after the verb without one overriding the other.
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--base-url", default=argparse.SUPPRESS,
                         help=f"gateway URL (default: $GATEWAY_BASE_URL or {DEFAULT_BASE_URL})")
    options.add_argument("--api-key", default=argparse.SUPPRESS,
                         help="API key (default: $GATEWAY_API_KEY)")
    return options


def page_options(parser: argparse.ArgumentParser) -> None:
    """``--page P | --all`` and ``--table``, for a list command."""
    pages = parser.add_mutually_exclusive_group()
    pages.add_argument("--page", type=int, default=0, help="zero-based page of 100")
    pages.add_argument("--all", action="store_true", help="every page")
    parser.add_argument("--table", action="store_true",
                        help="aligned columns instead of JSON lines")


def connection(args: argparse.Namespace) -> tuple[str, str]:
    """The base URL and API key: the options, else the environment (the key is required)."""
    base_url = (getattr(args, "base_url", None) or os.environ.get("GATEWAY_BASE_URL")
                or DEFAULT_BASE_URL)
    api_key = getattr(args, "api_key", None) or os.environ.get("GATEWAY_API_KEY")
    if not api_key:
        raise UsageError("no API key: pass --api-key or set GATEWAY_API_KEY")
    return base_url, api_key


def run_with_client(args: argparse.Namespace, command: Callable[[Client], int],
                    err: TextIO) -> int:
    """Connect as the options say and run ``command(client)``; the exit code, with every
    error as one line on ``err``."""
    try:
        base_url, api_key = connection(args)
        with Client(base_url, api_key) as client:
            return command(client)
    except UsageError as exc:
        print(f"gateway: usage: {exc}", file=err)
        return 2
    except GatewayError as exc:
        print(f"gateway: {exc.code}: {exc.message}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130


def print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, indent=2), file=out)


def print_list(args: argparse.Namespace, what: str, walk: Callable[[], Iterable[Item]],
               fetch: Callable[[], Page[Item]], columns: tuple[str, ...], out: TextIO,
               err: TextIO) -> None:
    """A list command's output: every page (``--all``: ``walk()``) or one (``fetch()``,
    with a note on ``err`` when more exist), as JSON lines or (``--table``) ``columns``.
    ``what``: the items' plural noun, for the note."""
    if args.all:
        items: Iterable[Item] = walk()
    else:
        body = fetch()
        items = body["data"]
        if body["has_more"]:
            print(f"gateway: note: page {body['page']} of {body['total']} {what}; "
                  f"next: --page {body['page'] + 1} (or --all)", file=err)
    if args.table:
        print_table(list(items), columns, out)
    else:
        for item in items:
            print(json.dumps(item, separators=(",", ":")), file=out)


def _cell(item: Mapping[str, object], dotted: str) -> str:
    value: object = item
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = ",".join(str(element) for element in value)
    return "-" if value is None or value == "" else str(value)


def print_table(items: Sequence[Mapping[str, object]], columns: tuple[str, ...],
                out: TextIO) -> None:
    """Aligned columns under a header of the columns' last parts, upper-cased; a missing
    or empty value is ``-``."""
    rows = [[column.rsplit(".", 1)[-1].upper() for column in columns]]
    rows += [[_cell(item, column) for column in columns] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip(), file=out)
