"""How a contacts CSV is read before its rows are judged: the delimiter, the choice of
reader, and the bounds that keep one pathological line from costing more than a few ms of
the interpreter (the parse runs in a worker thread, but it shares the GIL with the event
loop, and one C call on a huge line holds it).

Delimiter: the header row decides. If its cells split on ``,`` include ``phone_number``,
the file is comma-separated; otherwise ``;`` and then tab are tried the same way (European
spreadsheet exports), each with CSV quoting (``"a;b"`` is one cell of a ``;`` file);
if none has a ``phone_number`` cell, the file is read as comma-separated and the header
error lists what was found.

Bounds: a physical line may hold at most `MAX_LINE_CHARS` characters and a cell at most
`MAX_CELL_CHARS` (the :mod:`csv` module's own field limit), in either reader; past them the
file is refused naming the row, rather than one C call splitting megabytes at once.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import typing

__all__ = ["DELIMITERS", "MAX_CELL_CHARS", "MAX_LINE_CHARS", "LineTooLong", "NulByte",
           "checked_lines", "is_simple", "simple_rows", "sniff_delimiter"]

DELIMITERS = (",", ";", "\t")
MAX_LINE_CHARS = 1 << 18  # 256 Ki characters: twice the csv field limit
MAX_CELL_CHARS = csv.field_size_limit()  # 131,072 unless someone changed it process-wide
# Blocks of this size are scanned and split: a block of 64 KiB of blank lines splits into
# a list of 64 Ki lines in ~1 ms (1 MiB: ~20 ms, the GIL held all along, and 8 MB).
SCAN_BYTES = 1 << 16
_HEAD_BYTES = 1 << 16
_PHONE = "phone_number"


class LineTooLong(Exception):
    """A physical line past `MAX_LINE_CHARS`; `line` is its 1-based number in the file."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class NulByte(Exception):
    """The text contains a NUL character."""


def sniff_delimiter(source: typing.BinaryIO) -> str:
    """The file's delimiter by the header rule above; the source is left at 0."""
    source.seek(0)
    head = source.read(_HEAD_BYTES)
    source.seek(0)
    text = codecs.getincrementaldecoder("utf-8-sig")(errors="replace").decode(head)
    first = text.split("\n", 1)[0].rstrip("\r")
    for delimiter in DELIMITERS:
        try:
            cells = next(csv.reader([first], delimiter=delimiter), [])
        except csv.Error:  # e.g. a lone CR: the reader then names the problem, as a 400
            continue
        if _PHONE in (cell.strip() for cell in cells):
            return delimiter
    return ","


# Anything that makes a file "not simple": quotes and backslashes (CSV quoting, JSON
# escaping) and control characters (NUL, tab...; carriage returns are checked apart).
_NOT_SIMPLE = b'"\\' + bytes(range(0x0A)) + b"\x0b\x0c" + bytes(range(0x0E, 0x20))
_SIMPLE = bytes(set(range(256)) - set(_NOT_SIMPLE))


def is_simple(source: typing.BinaryIO) -> bool:
    """Whether the whole file is free of anything CSV or JSON would quote or escape, with
    \\n or \\r\\n line ends: then a line is its cells joined by the delimiter. One pass over
    the bytes at C speed (``bytes.translate`` deleting every allowed byte: ~6 ms for 10 MB;
    a regex character class took 30 times as long)."""
    source.seek(0)
    tail = b""
    while block := source.read(SCAN_BYTES):
        if block.translate(None, _SIMPLE):
            return False
        if b"\r" in block or tail == b"\r":
            joined = tail + block
            if joined.count(b"\r") != joined.count(b"\r\n") + joined.endswith(b"\r"):
                return False
        tail = block[-1:]
    return tail != b"\r"  # a lone carriage return at the very end


def simple_rows(source: typing.BinaryIO, delimiter: str) -> typing.Iterator[list[str]]:
    """The cells of each line of a simple file (``[]`` for a blank line, no line end),
    decoded and split a block at a time; raises `LineTooLong` for a line past its bound
    (before it is ever whole in memory) and the csv module's own error for a cell past
    `MAX_CELL_CHARS`, as its reader would, each once the rows before it were taken.

    The rows of a block are split by one comprehension and handed out by a C iterator:
    a generator resumed once per line (one for the lines, one for their cells) cost a
    fifth of an import's parse."""
    return itertools.chain.from_iterable(_row_blocks(source, delimiter))


def _row_blocks(source: typing.BinaryIO, delimiter: str) -> typing.Iterator[list[list[str]]]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    rest = ""
    number = 0  # lines yielded so far
    while True:
        block = source.read(SCAN_BYTES)
        text = rest + decoder.decode(block, final=not block)
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        rest = lines.pop()
        if not block and rest:
            lines.append(rest)
            rest = ""
        if lines and max(map(len, lines)) > MAX_CELL_CHARS:  # MAX_LINE_CHARS is larger
            yield from _split_bounded(lines, delimiter, number)
        else:
            yield _split(lines, delimiter)
        number += len(lines)
        if len(rest) > MAX_LINE_CHARS:  # the next line, not yet whole
            raise LineTooLong(number + 1)
        if not block:
            return


def _split(lines: list[str], delimiter: str) -> list[list[str]]:
    return [line.split(delimiter) if line else [] for line in lines]


def _split_bounded(lines: list[str], delimiter: str,
                   number: int) -> typing.Iterator[list[list[str]]]:
    """A block with a line past the cell bound: the rows up to the first line or cell
    past its bound, then that error."""
    limit = MAX_CELL_CHARS
    for index, line in enumerate(lines):
        if len(line) > MAX_LINE_CHARS:
            yield _split(lines[:index], delimiter)
            raise LineTooLong(number + index + 1)
        if len(line) > limit and max(map(len, line.split(delimiter))) > limit:
            yield _split(lines[:index], delimiter)
            raise csv.Error(f"field larger than field limit ({limit})")
    yield _split(lines, delimiter)


def checked_lines(text: typing.TextIO) -> typing.Iterator[str]:
    """The lines of `text` for the csv reader (line ends kept), each read with a bound so
    a huge line is refused (`LineTooLong`) before it is whole; NUL refused (`NulByte`):
    PostgreSQL text can't hold it, and it usually means a binary file (a spreadsheet,
    UTF-16 text) was uploaded by mistake."""
    readline = text.readline
    number = 0
    while line := readline(MAX_LINE_CHARS + 3):
        number += 1
        if len(line) > MAX_LINE_CHARS and len(line.rstrip("\r\n")) > MAX_LINE_CHARS:
            raise LineTooLong(number)
        if "\x00" in line:
            raise NulByte()
        yield line
