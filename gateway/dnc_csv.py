"""Read a do-not-call upload: the ``phone_number`` column of a CSV, as E.164 numbers.

The file is read the way the campaign import reads contacts (:mod:`gateway.contacts_lines`:
the header row picks the delimiter, lines and cells are bounded, UTF-8 only, NUL refused;
the same limits, and numbers without a '+' read in the configured default region), so a
file the import takes is a file this takes. Other columns are ignored. Bad rows (blank, no
valid number, a repeat of an earlier row, more cells than the header) are counted by
reason and the first `MAX_LISTED_REJECTIONS` listed; `DncFileError` means the file as a
whole is unusable (no ``phone_number`` column, not CSV, not UTF-8, or no valid row).

Bounded whatever the file: blank lines are counted as runs, numbers are kept as 8-byte
integer keys (``int`` of the E.164 digits) and only turned into text a chunk at a time
(`E164Numbers`), the rejections listed are capped. :func:`read_numbers` is blocking: the
caller runs it in a worker thread.
"""

from __future__ import annotations

import array
import csv
import io
import typing
from collections.abc import Iterator, Sequence

import attrs
import phonenumbers

from gateway import contacts_lines
from gateway.contacts_csv import MAX_COLUMNS, MAX_LISTED_REJECTIONS, PHONE_COLUMN
from gateway.contacts_lines import LineTooLong, NulByte
from gateway.phone_fast import valid_e164_in
from gateway.phone_national import national_e164
from gateway.vocabulary import RejectionReason

__all__ = ["MAX_LISTED_REJECTIONS", "REASONS", "DncFileError", "DncUpload", "E164Numbers",
           "RejectedRow", "normalise_number", "read_numbers"]

# The reasons an upload's row can be rejected for (the import's other reasons, the
# do-not-call list and time zones, do not apply to the list itself).
REASONS: tuple[RejectionReason, ...] = (RejectionReason.EMPTY, RejectionReason.INVALID_NUMBER,
                                        RejectionReason.DUPLICATE, RejectionReason.COLUMN_COUNT)
_E164 = phonenumbers.PhoneNumberFormat.E164


def normalise_number(raw: str, region: str) -> str | None:
    """``raw``'s E.164 form as the campaign import reads a phone_number cell (without a
    '+', a number of ``region``), or None when it is not a valid number."""
    if valid_e164_in(region)(raw):  # the usual case, in one regex call
        return raw
    found = national_e164(raw, region)
    if found is not None:
        e164, valid = found
        return e164 if valid else None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, _E164)


@attrs.frozen
class RejectedRow:
    """A data row that was not taken; `row` is 1-based (the header is row 0)."""

    row: int
    reason: RejectionReason
    message: str


class DncFileError(Exception):
    """The file as a whole can't be used; `message` is a sentence fit for the tenant."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class E164Numbers(Sequence[str]):
    """Sorted integer keys read as E.164 text on access: a key costs 8 bytes, its text
    ~60, and a 10 MB file holds ~800k numbers."""

    def __init__(self, keys: array.array[int]) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    @typing.overload
    def __getitem__(self, index: int) -> str: ...
    @typing.overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [f"+{key}" for key in self._keys[index]]
        return f"+{self._keys[index]}"


@attrs.frozen
class DncUpload:
    """A usable file: its distinct valid numbers and what became of the other rows."""

    numbers: E164Numbers  # ascending digits: the order the store inserts in
    rejected: list[RejectedRow]  # the first MAX_LISTED_REJECTIONS, in file order
    rejected_counts: dict[str, int]  # every rejection by reason (REASONS, zeros included)
    delimiter: str

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected_counts.values())


def read_numbers(source: typing.BinaryIO, *, default_region: str,
                 max_listed: int = MAX_LISTED_REJECTIONS) -> DncUpload:
    """Read the CSV in ``source`` (a seekable binary file; left open); raises
    `DncFileError` for a file that can't be used, `ValueError` for an unknown region (the
    configuration's mistake, not the tenant's)."""
    if default_region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unsupported default_region {default_region!r}")
    delimiter = contacts_lines.sniff_delimiter(source)
    simple = contacts_lines.is_simple(source)
    source.seek(0)
    text: io.TextIOWrapper | None = None
    rows: Iterator[list[str]]
    if simple:  # no quoting anywhere: split at C speed
        rows = contacts_lines.simple_rows(source, delimiter)
    else:
        text = io.TextIOWrapper(source, encoding="utf-8-sig", errors="strict", newline="")
        # strict: an unclosed quote would otherwise swallow the rest of the file.
        rows = csv.reader(contacts_lines.checked_lines(text), strict=True, delimiter=delimiter)
    reader = _Reader(default_region, max_listed)
    try:
        reader.read(rows, delimiter)
    except csv.Error as exc:
        raise DncFileError(_csv_problem(str(exc), reader.row, rows)) from None
    except UnicodeDecodeError:
        raise DncFileError(_not_utf8(source)) from None
    except LineTooLong as exc:
        raise DncFileError(f"Line {exc.line} of the file is longer than "
                           f"{contacts_lines.MAX_LINE_CHARS:,} characters; is it really a "
                           "CSV of numbers?") from None
    except NulByte:
        raise DncFileError("The file contains NUL bytes; is it really a CSV text "
                           "file?") from None
    finally:
        if text is not None:
            text.detach()  # leave the caller's file open
    return reader.result(delimiter)


class _Reader:
    """One pass over the rows: the keys of the numbers taken, the rejections."""

    def __init__(self, region: str, max_listed: int) -> None:
        self.region = region
        self.max_listed = max_listed
        self.row = -1  # the data row being read; -1 for the header
        self.counts = dict.fromkeys(REASONS, 0)
        self.listed: list[RejectedRow] = []
        self.keys = array.array("q")  # taken, in file order
        self.rows = array.array("I")  # the row each key was taken from
        # Listed duplicates whose earlier row is found once the file has been read.
        self.duplicates: list[tuple[int, int]] = []  # (index in listed, key)

    def reject(self, reason: RejectionReason, message: str) -> None:
        self.counts[reason] += 1
        if len(self.listed) < self.max_listed:
            self.listed.append(RejectedRow(self.row, reason, message))

    def blank_run(self, first: int, count: int) -> None:
        self.counts[RejectionReason.EMPTY] += count
        room = max(0, min(count, self.max_listed - len(self.listed)))
        self.listed.extend(RejectedRow(row, RejectionReason.EMPTY, f"Row {row} is blank.")
                           for row in range(first, first + room))

    def read(self, rows: Iterator[list[str]], delimiter: str) -> None:
        phone, width = _header(next(rows, None), delimiter)
        self.row = 0
        accept, region, normalise = valid_e164_in(self.region), self.region, normalise_number
        seen: set[int] = set()
        blank_first = blank_count = 0  # blank lines not yet known to be followed by a row
        for cells in rows:
            self.row += 1
            row = self.row
            if not cells:
                # Blank lines at the very end are editor noise: decide once a row follows.
                if not blank_count:
                    blank_first = row
                blank_count += 1
                continue
            if blank_count:
                self.blank_run(blank_first, blank_count)
                blank_count = 0
            if len(cells) > width:
                if _is_blank(cells):  # ",,,," rows left by spreadsheet exports
                    self.reject(RejectionReason.EMPTY, f"Row {row} is blank.")
                else:
                    self.reject(RejectionReason.COLUMN_COUNT, f"Row {row} has {len(cells)} "
                                f"cells but the header has {width} columns.")
                continue
            raw = cells[phone] if phone < len(cells) else ""
            e164 = raw if accept(raw) else None
            if e164 is None:
                if not raw or raw.isspace():
                    what = "is blank" if _is_blank(cells) else "has an empty phone_number"
                    self.reject(RejectionReason.EMPTY, f"Row {row} {what}.")
                    continue
                e164 = normalise(raw, region)
                if e164 is None:
                    self.reject(RejectionReason.INVALID_NUMBER, _invalid(row, raw, region))
                    continue
            key = int(e164[1:])
            if key in seen:
                if len(self.listed) < self.max_listed:
                    self.duplicates.append((len(self.listed), key))
                self.reject(RejectionReason.DUPLICATE,
                            f"Row {row}: {e164} is a duplicate of an earlier row.")
                continue
            seen.add(key)
            self.keys.append(key)
            self.rows.append(row)

    def result(self, delimiter: str) -> DncUpload:
        if not self.keys:
            total = sum(self.counts.values())
            if not total:
                raise DncFileError("The file has a header row but no data rows.")
            found = ", ".join(f"{count} {reason}" for reason, count in
                              sorted(self.counts.items(), key=lambda item: -item[1]) if count)
            raise DncFileError(f"The file has no valid rows: all {total} data "
                               f"row{'s' if total > 1 else ''} were rejected ({found}).")
        self._name_duplicated_rows()
        return DncUpload(numbers=E164Numbers(array.array("q", sorted(self.keys))),
                         rejected=self.listed,
                         rejected_counts={str(r): n for r, n in self.counts.items()},
                         delimiter=delimiter)

    def _name_duplicated_rows(self) -> None:
        """The row each listed duplicate repeats: one pass over the keys taken."""
        if not self.duplicates:
            return
        first = {key: 0 for _, key in self.duplicates}
        for key, row in zip(self.keys, self.rows, strict=True):
            if key in first and not first[key]:
                first[key] = row
        for index, key in self.duplicates:
            old = self.listed[index]
            self.listed[index] = RejectedRow(old.row, old.reason,
                                             f"Row {old.row}: +{key} is a duplicate of row "
                                             f"{first[key]}.")


def _header(header: list[str] | None, delimiter: str) -> tuple[int, int]:
    """(the phone_number column's index, the header's width), or DncFileError."""
    if header is None:
        raise DncFileError("The file is empty; expected a header row with a phone_number "
                           "column.")
    if len(header) > MAX_COLUMNS:
        shown = {",": "commas", ";": "semicolons", "\t": "tabs"}[delimiter]
        raise DncFileError(f"The header has {len(header):,} columns (split on {shown}); at "
                           f"most {MAX_COLUMNS:,} are supported.")
    names = [name.strip() for name in header]
    if names.count(PHONE_COLUMN) != 1:
        if PHONE_COLUMN in names:
            raise DncFileError("The header has more than one phone_number column.")
        found = ", ".join(repr(name) for name in names[:20])
        hint = (" (column names are case-sensitive)"
                if any(name.lower() == PHONE_COLUMN for name in names) else "")
        raise DncFileError(f"The header has no phone_number column{hint}; found columns: "
                           f"{found}{', ...' if len(names) > 20 else ''}.")
    return names.index(PHONE_COLUMN), len(header)


def _is_blank(cells: list[str]) -> bool:
    return not "".join(cells).strip()


def _invalid(row: int, raw: str, region: str) -> str:
    shown = raw if len(raw) <= 40 else raw[:40] + "…"
    how = "" if raw.lstrip().startswith("+") else f" (read as a {region} number)"
    return f"Row {row}: {shown!r} is not a valid phone number{how}."


def _not_utf8(source: typing.BinaryIO) -> str:
    """Where the file stops being UTF-8. The decoder works a block ahead of the rows, so
    the place is found again here: the failure path, and the file is at most the upload
    limit (10 MiB by default)."""
    where = ""
    source.seek(0)
    data = source.read()
    try:
        data.decode("utf-8")  # plain utf-8: a BOM is valid, so offsets stay absolute
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        where = f" (invalid byte at offset {exc.start}, line {line})"
    return f"The file is not UTF-8 text{where}; save it as CSV UTF-8 and upload it again."


def _csv_problem(error: str, row: int, rows: Iterator[list[str]]) -> str:
    hint = " (a quote is probably left unclosed)" if "end of data" in error else ""
    if "field limit" in error:
        error = f"a cell is longer than {contacts_lines.MAX_CELL_CHARS:,} characters"
    where = "the header row" if row < 0 else f"data row {row + 1}"
    line = getattr(rows, "line_num", None)
    read = f" (read up to line {line})" if line else ""
    return f"The file is not valid CSV: {error}{hint}, in {where}{read}."
