"""Parse a tenant's contacts CSV into an import report and a PostgreSQL COPY payload.

The HTTP layer spools the upload to a temporary file; :class:`ContactsImport` reads it in
a worker thread and yields the payload in chunks while the database COPYs the previous
ones, ready for ``COPY contacts (id, campaign_id, seq, row_number, phone_number,
custom_fields) FROM STDIN WITH (FORMAT csv)``. `ContactsFileError` means the whole file is
unusable (the caller answers 400 and rolls back), while bad rows are skipped and listed in
`rejected`.

Two readers, one result: a file with no quote, backslash or control character (the usual
export) is split on commas at C speed, each value being its own JSON string; any other
file goes through :mod:`csv` and full JSON escaping. A test checks both give the same
bytes.
"""

from __future__ import annotations

import codecs
import collections
import csv
import io
import json.encoder
import tempfile
import typing
import uuid

import attrs
import phonenumbers

from gateway.ids import uuid7_fields
from gateway.phone_fast import e164_validity

__all__ = ["COPY_COLUMNS", "ContactsFileError", "ContactsImport", "ParsedContacts", "RejectedRow",
           "parse_contacts"]

COPY_COLUMNS: tuple[str, ...] = ("id", "campaign_id", "seq", "row_number", "phone_number",
                                 "custom_fields")
# Rows per payload chunk: ~1 MB, large enough that the hand-over between threads is
# noise. The first chunk is smaller, so the database starts copying a few ms in.
CHUNK_ROWS = 5_000
FIRST_CHUNK_ROWS = 1_000

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
    """Read the CSV from `source` (a binary file positioned at 0) and build the whole import.

    The same as :class:`ContactsImport` with its chunks collected in a spooled file (for
    callers that want the payload at once: tests, the benchmark's database share).
    """
    contacts = ContactsImport(source, campaign_id=campaign_id, default_region=default_region)
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX_SIZE, mode="w+b")
    try:
        for chunk in contacts.chunks():
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return ParsedContacts(accepted=contacts.accepted, rejected=contacts.rejected,
                          columns=contacts.columns, copy_data=spool)


class ContactsImport:
    """One CSV import, parsed as the database takes it: :meth:`chunks` yields the COPY
    payload a few thousand rows at a time, so parsing (this thread) and COPY (the
    database's core) overlap. When the iterator is exhausted, `accepted`, `rejected` and
    `columns` are final; it raises `ContactsFileError` for a file-level problem, including
    a file whose rows were all rejected, after which nothing it yielded may be kept.

    `default_region` (e.g. "US") is used for numbers written without a leading "+".
    Raises `ValueError` for a bad `campaign_id` or `default_region` (the caller's bugs,
    not the tenant's). The caller owns `source` (it is left open).
    """

    def __init__(self, source: typing.BinaryIO, *, campaign_id: str | uuid.UUID,
                 default_region: str, chunk_rows: int = CHUNK_ROWS) -> None:
        self.campaign = str(uuid.UUID(str(campaign_id)))
        if default_region not in phonenumbers.SUPPORTED_REGIONS:
            # Otherwise every national number would be rejected as invalid_number and the
            # tenant would be blamed for a configuration mistake.
            raise ValueError(f"unsupported default_region {default_region!r}")
        self.region = default_region
        self.source = source
        self.chunk_rows = chunk_rows
        self.accepted = 0
        self.rejected: list[RejectedRow] = []
        self.columns: list[str] = []
        self._id_prefix = _contact_id_prefix()

    def chunks(self) -> typing.Iterator[bytes]:
        # An unseekable source can't be scanned first: it takes the csv reader.
        simple = self.source.seekable() and _is_simple(self.source)
        if self.source.seekable():
            self.source.seek(0)
        if simple:
            lines = _split_lines(self.source)
            rows = ([] if not line else line.split(",") for line in lines)
        else:
            # Streamed decoding: the upload is never held as one str. "utf-8-sig" drops a BOM.
            lines = io.TextIOWrapper(self.source, encoding="utf-8-sig", errors="strict",
                                     newline="")
            # strict: an unclosed quote otherwise silently swallows the rest of the file
            # into one field; better a 400 naming the row than contacts quietly lost.
            rows = csv.reader(_checked_lines(lines), strict=True)
        try:
            yield from self._rows(rows, simple)
        finally:
            if not simple:
                lines.detach()  # leave the caller's file open

    def _rows(self, reader: typing.Iterator[list[str]], simple: bool) -> typing.Iterator[bytes]:
        """Validate rows from `reader`, yield accepted ones as COPY payload chunks."""
        row_number = -1  # -1 while reading the header
        try:
            names, phone_idx = _check_header(next(reader, None))
            row_number = 0
            ncols = len(names) + 1
            self.columns = names.copy()

            # Local aliases: this loop runs once per contact (up to ~100k times).
            out = io.StringIO()
            write = csv.writer(out, lineterminator="\n").writerow
            parse, parse_error = phonenumbers.parse, phonenumbers.NumberParseException
            fast_validity = e164_validity
            is_valid, fmt, e164_format = (phonenumbers.is_valid_number,
                                          phonenumbers.format_number, _E164)
            region, campaign, id_prefix = self.region, self.campaign, self._id_prefix
            encode = _encode_str
            keys = [encode(name) + ":" for name in names]  # '"first_name":'
            if simple:
                # No quote, backslash or control character anywhere in the file: every value
                # is its own JSON string body, and the payload line needs no CSV quoting
                # except the JSON field's (quotes doubled in the template itself).
                template = ('"{' + ",".join(key.replace('"', '""').replace("%", "%%")
                                            + '""%s""' for key in keys) + '}"') if keys else "{}"
                # The whole payload line in one %-format when the phone is the first column
                # and kept as written (the usual case): (seq, seq, row, phone, *fields).
                line = (id_prefix.replace("%", "%%") + "%08x," + campaign + ",%d,%d,%s,"
                        + template + "\n")
                one_format = phone_idx == 0
            first_seen: dict[str, int] = {}  # E.164 -> row number of its accepted row
            rejected = self.rejected
            reject = rejected.append
            blank_rows: list[int] = []  # blank lines not yet known to be non-trailing
            seq = 0
            pending: list[str] = []  # simple mode's payload lines since the last chunk
            chunk_at = min(FIRST_CHUNK_ROWS, self.chunk_rows)

            for row in reader:
                row_number += 1
                n = len(row)
                if not n:
                    # csv yields [] for a blank line; blank lines at the very end of the
                    # file are editor noise and are dropped, so decide once a row follows.
                    blank_rows.append(row_number)
                    continue
                if blank_rows:
                    rejected.extend(RejectedRow(r, "empty", f"Row {r} is blank.")
                                    for r in blank_rows)
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
                valid = fast_validity(raw)
                if valid:
                    e164 = raw  # plain E.164 that phonenumbers would leave unchanged
                else:
                    if not raw or raw.isspace():
                        what = "is blank" if _is_blank(row) else "has an empty phone_number"
                        reject(RejectedRow(row_number, "empty", f"Row {row_number} {what}."))
                        continue
                    if valid is None:
                        try:
                            number = parse(raw, region)
                        except parse_error as exc:
                            # str(exc) is "(code) Sentence."; the code means nothing to a tenant.
                            message = _invalid_message(row_number, raw, region,
                                                       str(exc).split(") ", 1)[-1])
                            reject(RejectedRow(row_number, "invalid_number", message))
                            continue
                        valid = is_valid(number)
                    if not valid:
                        message = _invalid_message(row_number, raw, region, None)
                        reject(RejectedRow(row_number, "invalid_number", message))
                        continue
                    e164 = fmt(number, e164_format)
                first = first_seen.setdefault(e164, row_number)
                if first != row_number:
                    reject(RejectedRow(row_number, "duplicate",
                        f"Row {row_number}: {e164} is a duplicate of row {first}."))
                    continue
                if simple and one_format and e164 is raw:
                    pending.append(line % (seq, seq, row_number, *row))
                elif simple:
                    del row[phone_idx]
                    pending.append(f"{id_prefix}{seq:08x},{campaign},{seq},{row_number},"
                                   f"{e164},{template % tuple(row)}\n")
                else:
                    del row[phone_idx]
                    fields = ",".join([key + encode(value) for key, value in zip(keys, row)])
                    write((f"{id_prefix}{seq:08x}", campaign, seq, row_number, e164,
                           "{" + fields + "}"))
                seq += 1
                if seq == chunk_at:
                    chunk_at = seq + self.chunk_rows
                    self.accepted = seq
                    yield _take(pending, out)
        except csv.Error as exc:
            hint = " (a quote is probably left unclosed)" if "end of data" in str(exc) else ""
            row = "the header row" if row_number < 0 else f"data row {row_number + 1}"
            line = getattr(reader, "line_num", row_number + 1)
            raise ContactsFileError(
                f"The file is not valid CSV: {exc}{hint}, in {row} (read up to line {line})."
            ) from None
        except UnicodeDecodeError:
            line = getattr(reader, "line_num", row_number + 1)
            raise ContactsFileError(_decode_error_message(self.source, line)) from None

        self.accepted = seq
        if not seq:
            if not rejected:
                raise ContactsFileError("The file has a header row but no data rows.")
            counts = collections.Counter(r.reason for r in rejected)
            summary = ", ".join(f"{count} {reason}" for reason, count in counts.most_common())
            raise ContactsFileError(
                f"The file has no valid rows: all {len(rejected)} data row{'s' if len(rejected) > 1 else ''}"
                f" were rejected ({summary})."
            )
        last = _take(pending, out)
        if last:
            yield last


def _take(pending: list[str], out: io.StringIO) -> bytes:
    """The payload gathered since the last chunk (from whichever of the two is in use)."""
    if pending:
        text = "".join(pending)
        pending.clear()
    else:
        text = out.getvalue()
        out.seek(0)
        out.truncate()
    return text.encode("utf-8")


def _contact_id_prefix() -> str:
    """The first 96 bits of this import's contact ids, in UUID text form ("xxxxxxxx-xxxx-
    7xxx-yxxx-xxxx"); the last 32 bits are the contact's seq.

    A UUIDv7 (:mod:`gateway.ids`) whose last 32 random bits are replaced by a counter (the
    seq), as RFC 9562 allows. Contacts are keyed by (campaign_id, seq) in the database; the
    id is what the API and the logs show, unique by construction: two imports in the same
    millisecond share a prefix with probability 2^-42.
    """
    high, low = uuid7_fields()
    text = f"{high:016x}{low:016x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:24]}"


# Anything that makes a file "not simple": quotes and backslashes (CSV quoting, JSON
# escaping) and control characters (NUL, tab...; carriage returns are checked apart).
_NOT_SIMPLE = b'"\\' + bytes(range(0x0A)) + b"\x0b\x0c" + bytes(range(0x0E, 0x20))
_SIMPLE = bytes(set(range(256)) - set(_NOT_SIMPLE))
_SCAN_BYTES = 1 << 20


def _is_simple(source: typing.BinaryIO) -> bool:
    """Whether the whole file is free of anything CSV or JSON would quote or escape, with
    \\n or \\r\\n line ends: then a line is its cells joined by commas. One pass over the
    bytes at C speed (``bytes.translate`` deleting every allowed byte: ~6 ms for 10 MB;
    a regex character class took 30 times as long)."""
    source.seek(0)
    tail = b""
    while block := source.read(_SCAN_BYTES):
        if block.translate(None, _SIMPLE):
            return False
        if b"\r" in block or tail == b"\r":
            joined = tail + block
            if joined.count(b"\r") != joined.count(b"\r\n") + joined.endswith(b"\r"):
                return False
        tail = block[-1:]
    return tail != b"\r"  # a lone carriage return at the very end


def _split_lines(source: typing.BinaryIO) -> typing.Iterator[str]:
    """The file's lines (without their \\n or \\r\\n), decoded a block at a time."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    rest = ""
    while True:
        block = source.read(_SCAN_BYTES)
        text = rest + decoder.decode(block, final=not block)
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        rest = lines.pop()
        yield from lines
        if not block:
            break
    if rest:
        yield rest


def _checked_lines(text: typing.Iterable[str]) -> typing.Iterator[str]:
    """Yield the lines of `text`, refusing NUL: PostgreSQL text can't hold it, and a
    NUL usually means a binary file (a spreadsheet, UTF-16 text) was uploaded by mistake."""
    for line in text:
        if "\x00" in line:
            raise ContactsFileError("The file contains NUL bytes; is it really a CSV text file?")
        yield line


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
