"""CSV for the exports: RFC 4180, and no cell a spreadsheet would evaluate.

A cell of outside text (a contact's custom field, an agent's notes, a SIP Call-ID a peer
chose) that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
to Excel, LibreOffice and Google Sheets (CSV injection: ``=HYPERLINK(...)`` leaks what the
sheet holds, ``=cmd|...`` ran commands): :func:`escape_text` puts an apostrophe (``'``) in
front of it, which spreadsheets read as "this is text" and do not show.

Each column has a :class:`Kind`:

- ``TEXT``: outside text, escaped as above;
- ``PHONE``: phone numbers. An E.164 number (``+12125550100``) keeps its ``+`` (an
  apostrophe would change the number) and every cell of the column is quoted, which marks
  it as text to the tools that read quoting; a cell that is not E.164 is escaped as text;
- ``PLAIN``: values the gateway makes itself, written as they are: ids, numbers, times,
  the words of gateway.vocabulary. None starts with a formula character.

None is an empty cell. Lines end with CRLF. A cell is quoted when it holds a comma, a
double quote, CR or LF, its quotes doubled: exactly what ``csv.writer`` writes
(``QUOTE_MINIMAL``, the excel dialect), plus the phone columns' quotes, which
``csv.writer`` cannot give one column. tests/test_export_csv.py checks both, and that
``csv.reader`` reads back every escaped value.

Chunks are encoded a column at a time (the caller gives the rows' columns): a column none
of whose cells needs quotes, the usual case, is checked in one pass over its text and
joined as it is, three times faster than ``csv.writer`` on a chunk of contacts. Every
value comes from PostgreSQL, whose text cannot hold U+0000; a cell holding it is refused
(``ValueError``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

import attrs

__all__ = ["FORMULA_STARTS", "Cell", "CsvTable", "Kind", "escape_text", "is_e164", "quoted"]

# What makes a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
Cell = str | int | float | None
LINE_END = "\r\n"
_E164 = re.compile(r"\+[0-9]{1,15}")
# Many E.164 numbers, one a line: a whole phone column checked in one regex call.
_E164_LINES = re.compile(r"(?:\+[0-9]{1,15}\n)*\+[0-9]{1,15}")
_NEEDS_QUOTES = re.compile(r'[",\r\n]').search


class Kind(enum.Enum):
    PLAIN = "plain"
    TEXT = "text"
    PHONE = "phone"


def escape_text(text: str) -> str:
    """The cell's text as a spreadsheet will not evaluate it: a leading apostrophe when it
    starts with a formula character."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def is_e164(text: str) -> bool:
    return _E164.fullmatch(text) is not None


def quoted(text: str) -> str:
    """The cell quoted (RFC 4180): in double quotes, its own double quotes doubled."""
    return '"' + text.replace('"', '""') + '"'


def _phone(text: str) -> str:
    return quoted(text if is_e164(text) else escape_text(text))


@attrs.frozen
class CsvTable:
    """The columns of an export: their header names and kinds."""

    names: tuple[str, ...]
    kinds: tuple[Kind, ...]

    def __attrs_post_init__(self) -> None:
        if len(self.names) != len(self.kinds):
            raise ValueError(f"{len(self.names)} names for {len(self.kinds)} kinds")

    def header(self) -> str:
        """The header line (the names are escaped as text: a custom field's name is the
        uploader's)."""
        return self._lines([_render(Kind.TEXT, [name]) for name in self.names])

    def encode(self, columns: Sequence[Sequence[Cell]]) -> str:
        """The lines of the rows whose columns are ``columns`` (one sequence of cells per
        column of the table, all of the same length)."""
        if len(columns) != len(self.kinds):
            raise ValueError(f"{len(columns)} columns for a table of {len(self.kinds)}")
        rendered = [_render(kind, column) for kind, column in zip(self.kinds, columns,
                                                                  strict=True)]
        return self._lines(rendered)

    @staticmethod
    def _lines(rendered: list[list[str]]) -> str:
        """The lines of rendered columns."""
        if not rendered or not rendered[0]:
            return ""
        if len(rendered) == 1:  # an empty line reads as no cell at all: quote the cell
            rendered[0] = [cell or '""' for cell in rendered[0]]
        return LINE_END.join(map(",".join, zip(*rendered, strict=True))) + LINE_END


def _render(kind: Kind, column: Sequence[Cell]) -> list[str]:
    """A column's cells as CSV text."""
    if kind is Kind.PHONE:
        cells = ["" if value is None else str(value) for value in column]
        text = "\n".join(cells)
        _refuse_nul(text)
        if _E164_LINES.fullmatch(text) is not None:  # every cell E.164: nothing to escape
            return ['"' + cell + '"' for cell in cells]
        return [_phone(cell) for cell in cells]
    cells = [value if value.__class__ is str else "" if value is None else str(value)
             for value in column]
    if kind is Kind.TEXT:
        cells = ["'" + cell if cell.startswith(FORMULA_STARTS) else cell for cell in cells]
    text = "\n".join(cells)
    _refuse_nul(text)
    # Quotes are needed where a cell holds a quote, a comma, CR or LF: none anywhere in
    # the column when its text has no quote, comma or CR and exactly one LF per joint.
    if ('"' in text or "," in text or "\r" in text
            or text.count("\n") != len(cells) - 1):
        return [quoted(cell) if _NEEDS_QUOTES(cell) else cell for cell in cells]
    return cells


def _refuse_nul(text: str) -> None:
    if "\x00" in text:
        raise ValueError("a CSV cell holds U+0000, which no value of the database can")
