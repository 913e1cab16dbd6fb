"""Named SQL queries, loaded from ``sql/queries/*.sql``.

A file holds blocks that each start with ``-- name: <query>``; a query is addressed as
``<file stem>.<query>`` (``agents.create``). Keeping SQL in files keeps it reviewable as SQL
and keeps the Python modules about behaviour.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def sql_dir() -> Path:
    """The ``sql`` folder: inside the package when installed from a wheel, else the repo's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "sql", here.parent / "sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise RuntimeError(f"no sql/ folder next to {here}")


@functools.cache
def queries() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((sql_dir() / "queries").glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        marks = list(_NAME.finditer(text))
        for mark, following in zip(marks, [*marks[1:], None], strict=True):
            body = text[mark.end(): following.start() if following else len(text)].strip()
            key = f"{path.stem}.{mark.group(1)}"
            if key in found:
                raise RuntimeError(f"query {key} is defined twice")
            found[key] = body
    return found


def query(name: str) -> str:
    try:
        return queries()[name]
    except KeyError:
        raise KeyError(f"no SQL query named {name!r} in sql/queries") from None
