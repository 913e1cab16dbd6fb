"""Parse a tenant's contacts CSV into an import report and a PostgreSQL COPY payload.

The HTTP layer spools the upload to a temporary file and calls `parse_contacts` in a
worker thread. The result's `copy_data` is ready for
``COPY contacts (campaign_id, seq, row_number, phone_number, custom_fields)
FROM STDIN WITH (FORMAT csv)``; `ContactsFileError` means the whole file is unusable
(the caller answers 400), while bad rows are skipped and listed in `rejected`.
"""

from __future__ import annotations

import collections
import csv
import functools
import io
import json.encoder
import re
import tempfile
import typing
import uuid

import attrs
import phonenumbers
from phonenumbers import phonenumberutil

__all__ = ["COPY_COLUMNS", "ContactsFileError", "ParsedContacts", "RejectedRow", "parse_contacts"]

COPY_COLUMNS: tuple[str, ...] = ("campaign_id", "seq", "row_number", "phone_number", "custom_fields")

PHONE_COLUMN = "phone_number"

# Past this the COPY payload moves from memory to disk, so a 100k-row import doesn't
# hold the upload and its translation in memory at the same time.
_SPOOL_MAX_SIZE = 8 * 1024 * 1024

# custom_fields must be exactly json.dumps(fields, ensure_ascii=False, separators=(",", ":")).
# For a str -> str object that is '{' + '"key":"value"' joined by ',' + '}', with strings
# escaped by encode_basestring (what JSONEncoder uses when ensure_ascii=False); building it
# from pre-encoded keys costs a third of json.dumps, which matters at 100k rows.
_encode_str = json.encoder.encode_basestring

_E164 = phonenumbers.PhoneNumberFormat.E164
_PLAIN_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@functools.cache
def _national_prefix(country_code: int) -> re.Pattern | None:
    """The pattern phonenumbers strips from the start of a national number (None: none)."""
    region = phonenumberutil.region_code_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code,
                                                                             region)
    prefix = metadata.national_prefix_for_parsing if metadata else None
    return re.compile(prefix) if prefix else None


def _fast_parse(raw: str) -> phonenumbers.PhoneNumber | None:
    """The number ``phonenumbers.parse(raw)`` would build, for the common case of a plain
    E.164 string, at a tenth of the cost; None when the case needs the full parser.

    Exact by construction: with a '+' the region is ignored; the country code is split off
    the same way; a national number that starts with 0 (leading-zero flags) or with the
    country's national prefix (which parse may strip) goes to the full parser. A test
    compares both on random numbers of every country code.
    """
    if not _PLAIN_E164.fullmatch(raw):
        return None
    country_code, national = phonenumberutil._extract_country_code(raw[1:])
    if not country_code or national[:1] in ("", "0"):
        return None
    prefix = _national_prefix(country_code)
    if prefix is not None and prefix.match(national):
        return None
    return phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))


@attrs.frozen
class RejectedRow:
    """A data row that was skipped; `row` is 1-based, the first row after the header being 1."""

    row: int
    reason: str  # "empty" | "invalid_number" | "duplicate" | "column_count"
    message: str


@attrs.frozen
class ParsedContacts:
    """The outcome of a successful parse (at least one row was accepted)."""

    accepted: int  # number of rows written to the COPY payload
    rejected: list[RejectedRow]  # in file order
    columns: list[str]  # the custom field names, in header order (phone_number excluded)
    copy_data: typing.BinaryIO  # COPY csv payload, positioned at 0; the caller closes it


class ContactsFileError(Exception):
    """The file as a whole can't be imported; `message` is a sentence fit for the tenant."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_contacts(source: typing.BinaryIO, *, campaign_id: str, default_region: str) -> ParsedContacts:
    """Read the CSV from `source` (a binary file positioned at 0) and build the import.

    `default_region` (e.g. "US") is used for numbers written without a leading "+".
    Raises `ContactsFileError` for file-level problems, `ValueError` for a bad
    `campaign_id` or `default_region` (those are the caller's bugs, not the tenant's).
    The caller owns `source` (it is left open) and must close `copy_data`.
    """
    campaign = str(uuid.UUID(str(campaign_id)))
    if default_region not in phonenumbers.SUPPORTED_REGIONS:
        # Otherwise every national number would be rejected as invalid_number and the
        # tenant would be blamed for a configuration mistake.
        raise ValueError(f"unsupported default_region {default_region!r}")

    # Streamed decoding: the upload is never held as one str. "utf-8-sig" drops a BOM.
    text = io.TextIOWrapper(source, encoding="utf-8-sig", errors="strict", newline="")
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX_SIZE, mode="w+b")
    try:
        out = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        accepted, rejected, columns = _parse(source, text, out, campaign, default_region)
        out.flush()
        out.detach()  # closing the wrapper later must not close the spool
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    finally:
        text.detach()  # likewise, leave the caller's file open
    return ParsedContacts(accepted=accepted, rejected=rejected, columns=columns, copy_data=spool)


def _checked_lines(text: typing.Iterable[str]) -> typing.Iterator[str]:
    """Yield the lines of `text`, refusing NUL: PostgreSQL text can't hold it, and a
    NUL usually means a binary file (a spreadsheet, UTF-16 text) was uploaded by mistake."""
    for line in text:
        if "\x00" in line:
            raise ContactsFileError("The file contains NUL bytes; is it really a CSV text file?")
        yield line


def _parse(
    source: typing.BinaryIO, text: typing.TextIO, out: typing.TextIO, campaign: str, region: str
) -> tuple[int, list[RejectedRow], list[str]]:
    """Validate rows from `text`, write accepted ones to `out`; return (accepted, rejected, columns)."""
    # strict: an unclosed quote otherwise silently swallows the rest of the file into
    # one field; better a 400 naming the row than contacts quietly lost.
    reader = csv.reader(_checked_lines(text), strict=True)
    row_number = -1  # -1 while reading the header
    try:
        names, phone_idx = _check_header(next(reader, None))
        row_number = 0
        ncols = len(names) + 1
        columns = names.copy()

        # Local aliases: this loop runs once per contact (up to ~100k times).
        write = csv.writer(out, lineterminator="\n").writerow
        parse, parse_error = phonenumbers.parse, phonenumbers.NumberParseException
        fast_parse = _fast_parse
        is_valid, fmt, e164_format = phonenumbers.is_valid_number, phonenumbers.format_number, _E164
        encode = _encode_str
        keys = [encode(name) + ":" for name in names]  # '"first_name":'
        first_seen: dict[str, int] = {}  # E.164 -> row number of its accepted row
        rejected: list[RejectedRow] = []
        reject = rejected.append
        blank_rows: list[int] = []  # blank lines not yet known to be non-trailing
        seq = 0

        for row in reader:
            row_number += 1
            n = len(row)
            if not n:
                # csv yields [] for a blank line; blank lines at the very end of the
                # file are editor noise and are dropped, so decide once a row follows.
                blank_rows.append(row_number)
                continue
            if blank_rows:
                rejected.extend(RejectedRow(r, "empty", f"Row {r} is blank.") for r in blank_rows)
                blank_rows.clear()
            if n != ncols:
                if n > ncols:
                    if _is_blank(row):  # e.g. ",,,,," rows left by spreadsheet exports
                        reject(RejectedRow(row_number, "empty", f"Row {row_number} is blank."))
                    else:
                        reject(RejectedRow(row_number, "column_count",
                            f"Row {row_number} has {n} cells but the header has {ncols} columns."))
                    continue
                row.extend([""] * (ncols - n))  # short rows: missing cells are empty
            raw = row[phone_idx]
            if not raw or raw.isspace():
                what = "is blank" if _is_blank(row) else "has an empty phone_number"
                reject(RejectedRow(row_number, "empty", f"Row {row_number} {what}."))
                continue
            try:
                number = fast_parse(raw) or parse(raw, region)
            except parse_error as exc:
                # str(exc) is "(code) Sentence."; the code means nothing to a tenant.
                message = _invalid_message(row_number, raw, region, str(exc).split(") ", 1)[-1])
                reject(RejectedRow(row_number, "invalid_number", message))
                continue
            if not is_valid(number):
                message = _invalid_message(row_number, raw, region, None)
                reject(RejectedRow(row_number, "invalid_number", message))
                continue
            e164 = fmt(number, e164_format)
            first = first_seen.setdefault(e164, row_number)
            if first != row_number:
                reject(RejectedRow(row_number, "duplicate",
                    f"Row {row_number}: {e164} is a duplicate of row {first}."))
                continue
            del row[phone_idx]
            fields = ",".join([key + encode(value) for key, value in zip(keys, row)])
            write((campaign, seq, row_number, e164, "{" + fields + "}"))
            seq += 1
    except csv.Error as exc:
        hint = " (a quote is probably left unclosed)" if "end of data" in str(exc) else ""
        row = "the header row" if row_number < 0 else f"data row {row_number + 1}"
        raise ContactsFileError(
            f"The file is not valid CSV: {exc}{hint}, in {row} (read up to line {reader.line_num})."
        ) from None
    except UnicodeDecodeError:
        raise ContactsFileError(_decode_error_message(source, reader.line_num)) from None

    if not seq:
        if not rejected:
            raise ContactsFileError("The file has a header row but no data rows.")
        counts = collections.Counter(r.reason for r in rejected)
        summary = ", ".join(f"{count} {reason}" for reason, count in counts.most_common())
        raise ContactsFileError(
            f"The file has no valid rows: all {len(rejected)} data row{'s' if len(rejected) > 1 else ''}"
            f" were rejected ({summary})."
        )
    return seq, rejected, columns


def _check_header(header: list[str] | None) -> tuple[list[str], int]:
    """Return (custom field names in order, index of phone_number) or raise ContactsFileError."""
    if header is None:
        raise ContactsFileError("The file is empty; expected a header row with a phone_number column.")
    names = [name.strip() for name in header]
    if not any(names):
        raise ContactsFileError(
            "The first row (the header) is blank; expected column names including phone_number."
        )
    if PHONE_COLUMN not in names:
        found = ", ".join(repr(name) for name in names)
        hint = ""
        if any(name.lower() == PHONE_COLUMN for name in names):
            hint = " (column names are case-sensitive)"
        raise ContactsFileError(f"The header has no phone_number column{hint}; found columns: {found}.")
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if not name:
            raise ContactsFileError(f"Column {position} of the header has an empty name.")
        if name in seen:
            raise ContactsFileError(
                f"The header name {name!r} is used twice (columns {seen[name]} and {position})."
            )
        seen[name] = position
    phone_idx = names.index(PHONE_COLUMN)
    del names[phone_idx]
    return names, phone_idx


def _is_blank(row: list[str]) -> bool:
    return not "".join(row).strip()


def _invalid_message(row_number: int, raw: str, region: str, detail: str | None) -> str:
    shown = raw if len(raw) <= 40 else raw[:40] + "…"
    how = "" if raw.lstrip().startswith("+") else f" (read as a {region} number)"
    reason = f": {detail.rstrip('.')}" if detail else ""
    return f"Row {row_number}: {shown!r} is not a valid phone number{how}{reason}."


def _decode_error_message(source: typing.BinaryIO, lines_read: int) -> str:
    """Describe where the file stops being UTF-8.

    The streaming decoder works in chunks, so its error doesn't say where in the file
    the bad byte is; this is the failure path, so re-reading the (≤10 MB) upload once
    to find the exact offset is affordable.
    """
    # Unseekable source: the decoder reads a chunk ahead of the csv reader, hence "at or after".
    where = f"at or after line {lines_read + 1}"
    try:
        source.seek(0)
        data = source.read()
        data.decode("utf-8")  # plain utf-8: a BOM is valid, so offsets stay absolute
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        where = f"at offset {exc.start}, line {line}"
    except (OSError, ValueError, AttributeError):
        pass
    return f"The file is not UTF-8 text (invalid byte {where}); save it as CSV UTF-8 and upload it again."
