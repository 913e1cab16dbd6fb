"""Parse a tenant's contacts CSV into an import report and a PostgreSQL COPY payload.

The HTTP layer spools the upload to a temporary file; :class:`ContactsImport` reads it in
a worker thread and yields the payload in chunks while the database COPYs the previous
ones, ready for ``COPY contacts (campaign_id, zone, seq, row_number, phone_number,
custom_fields) FROM STDIN WITH (FORMAT binary)``: ``custom_fields`` is the JSON array of
the row's values in header order (the names are the campaign's, `columns`). Binary,
because the server then takes each value as it is (a third of the COPY's time went to
reading CSV and numbers as text) and nothing needs quoting. `ContactsFileError` means the
whole file is unusable (the caller answers 400 and rolls back), while bad rows are skipped
and counted.

Each contact's zones are its ``timezone`` cell (a zone name of `known_zones`; the column is
not a custom field) or, when the file has no such column or the cell is blank, its
number's (:mod:`gateway.timezones`). Each distinct set of zones gets a number, 0, 1, ... in
order of first appearance: the row's ``zone``, with `zone_sets` and `zone_counts` to
store. A number of `dnc_keys` (the account's do-not-call list) is rejected.

The file's delimiter is ``,`` unless the header row only has a ``phone_number`` cell when
split on ``;`` or on a tab (then that one): see :mod:`gateway.contacts_lines`.

Two readers, one result: a file with no quote, backslash or control character (the usual
export) is split on its delimiter at C speed, each value being its own JSON string; any
other file goes through :mod:`csv` and full JSON escaping. A test checks both give the
same bytes.

Bounded whatever the file: the report lists the first `MAX_LISTED_REJECTIONS` rejected
rows and counts every rejection by reason; blank lines are counted as runs, never one
object each; duplicates are found with integer keys; payload chunks are cut by size as
well as by rows; lines, cells and the header's width are bounded (`MAX_COLUMNS`).
"""

from __future__ import annotations

import array
import csv
import functools
import io
import json.encoder
import struct
import tempfile
import typing
import uuid

import attrs
import phonenumbers

from gateway import contacts_lines, timezones
from gateway.contacts_lines import LineTooLong, NulByte
from gateway.phone_fast import e164_validity, valid_e164_in
from gateway.phone_national import FORMATTING_CHARS, national_e164, national_fast_path
from gateway.vocabulary import RejectionReason

__all__ = ["COPY_COLUMNS", "MAX_COLUMNS", "MAX_LISTED_REJECTIONS", "REJECTION_REASONS",
           "ContactsFileError", "ContactsImport", "ParsedContacts", "RejectedRow",
           "parse_contacts"]

# zone right after campaign_id: a row's start is the same for every row of a zone.
COPY_COLUMNS: tuple[str, ...] = ("campaign_id", "zone", "seq", "row_number",
                                 "phone_number", "custom_fields")
# Rows per payload chunk: ~1 MB, large enough that the hand-over between threads is
# noise. The first chunk is smaller, so the database starts copying a few ms in. A chunk
# is also cut once it holds CHUNK_BYTES (wide rows: many columns, long cells).
CHUNK_ROWS = 5_000
FIRST_CHUNK_ROWS = 1_000
CHUNK_BYTES = 1 << 20

PHONE_COLUMN = "phone_number"
ZONE_COLUMN = "timezone"
REJECTION_REASONS = tuple(RejectionReason)
# The report lists this many rejected rows (the first ones); the counts cover them all.
MAX_LISTED_REJECTIONS = 1_000
# Columns of the header, phone_number included. Every other column is a custom field of
# every contact (and a SIP header of every call): far past any real contact list.
MAX_COLUMNS = 1_000

# PostgreSQL's binary COPY format: a signature, no flags, no header extension; then each
# row as its field count and each field as its length and its bytes (big-endian); then -1.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_TRAILER = b"\xff\xff"
# A row starts with its field count, the campaign id and its zone (a smallint): the same
# for every row of a zone. Then seq, row_number, the phone number and the length of the
# custom fields (`_row_middle`), each field with its own length first; then the fields.
_ROW_START = struct.Struct(">hi16sih")


@functools.cache
def _row_middle(phone_length: int) -> typing.Callable[..., bytes]:
    """The packer of a row's middle for numbers of this length (one call instead of
    three, and two fewer pieces added to the chunk: a tenth of the parse)."""
    return struct.Struct(f">iiiii{phone_length}si").pack

# Past this the COPY payload moves from memory to disk, so a 100k-row import doesn't
# hold the upload and its translation in memory at the same time.
_SPOOL_MAX_SIZE = 8 * 1024 * 1024

# custom_fields must be exactly json.dumps(values, ensure_ascii=False, separators=(",", ":")).
# For a list of str that is '[' + '"value"' joined by ',' + ']', with strings escaped by
# encode_basestring (what JSONEncoder uses when ensure_ascii=False); building it so costs a
# third of json.dumps, which matters at 100k rows.
_encode_str = json.encoder.encode_basestring

_E164 = phonenumbers.PhoneNumberFormat.E164


@attrs.frozen
class RejectedRow:
    """A data row that was skipped; `row` is 1-based, the first row after the header being 1."""

    row: int
    reason: str  # one of REJECTION_REASONS
    message: str


@attrs.frozen
class ParsedContacts:
    """The outcome of a successful parse (at least one row was accepted)."""

    accepted: int  # number of rows written to the COPY payload
    rejected: list[RejectedRow]  # the first MAX_LISTED_REJECTIONS, in file order
    columns: list[str]  # the custom field names, in header order (phone_number excluded)
    copy_data: typing.IO[bytes]  # binary COPY payload, positioned at 0; the caller closes it
    rejected_counts: dict[str, int] = attrs.field(factory=dict)  # every rejection, by reason
    zone_sets: list[tuple[str, ...]] = attrs.field(factory=list)  # by zone number
    zone_counts: list[int] = attrs.field(factory=list)  # accepted contacts, by zone number

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected_counts.values())


class ContactsFileError(Exception):
    """The file as a whole can't be imported; `message` is a sentence fit for the tenant."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_contacts(source: typing.BinaryIO, *, campaign_id: str | uuid.UUID,
                   default_region: str, known_zones: frozenset[str] | None = None,
                   dnc_keys: set[int] | frozenset[int] = frozenset()) -> ParsedContacts:
    """Read the CSV from `source` (a binary file positioned at 0) and build the whole import.

    The same as :class:`ContactsImport` with its chunks collected in a spooled file (for
    callers that want the payload at once: tests, the benchmark's database share).
    """
    contacts = ContactsImport(source, campaign_id=campaign_id, default_region=default_region,
                              known_zones=known_zones, dnc_keys=dnc_keys)
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX_SIZE, mode="w+b")
    try:
        for chunk in contacts.chunks():
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return ParsedContacts(accepted=contacts.accepted, rejected=contacts.rejected,
                          columns=contacts.columns, copy_data=spool,
                          rejected_counts=dict(contacts.rejected_counts),
                          zone_sets=contacts.zone_sets, zone_counts=contacts.zone_counts)


class _Rejections:
    """Every rejection counted by reason; the first `limit` kept as `RejectedRow`s (their
    message is only formatted for those)."""

    def __init__(self, limit: int) -> None:
        self.listed: list[RejectedRow] = []
        self.counts: dict[str, int] = {}  # in the order each reason first occurred
        self.limit = limit
        self._duplicates: list[tuple[int, int, str, int]] = []  # listed, not yet resolved

    def add(self, row: int, reason: str, message: str, *args: object) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.listed) < self.limit:
            self.listed.append(RejectedRow(row, reason, message % args if args else message))

    def add_blank_run(self, first: int, count: int) -> None:
        self.counts["empty"] = self.counts.get("empty", 0) + count
        room = min(count, self.limit - len(self.listed))
        self.listed.extend(RejectedRow(r, "empty", f"Row {r} is blank.")
                           for r in range(first, first + max(room, 0)))

    def add_duplicate(self, row: int, e164: str, key: int) -> None:
        self.counts["duplicate"] = self.counts.get("duplicate", 0) + 1
        if len(self.listed) < self.limit:
            self._duplicates.append((len(self.listed), row, e164, key))
            # resolve_duplicates names the row it repeats (once the file has been read).
            self.listed.append(RejectedRow(row, "duplicate",
                                           f"Row {row}: {e164} is a duplicate of an earlier row."))

    def resolve_duplicates(self, keys_by_seq: array.array, rows_by_seq: array.array) -> None:
        """Write the listed duplicates' messages: the row each repeats is the accepted row
        with the same key (one pass over the accepted keys, only if any is listed)."""
        if not self._duplicates:
            return
        wanted = {key: 0 for _, _, _, key in self._duplicates}
        for seq, key in enumerate(keys_by_seq):
            if key in wanted:
                wanted[key] = rows_by_seq[seq]
        for index, row, e164, key in self._duplicates:
            self.listed[index] = RejectedRow(
                row, "duplicate", f"Row {row}: {e164} is a duplicate of row {wanted[key]}.")
        self._duplicates.clear()

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class ContactsImport:
    """One CSV import, parsed as the database takes it: :meth:`chunks` yields the COPY
    payload a few thousand rows at a time, so parsing (this thread) and COPY (the
    database's core) overlap. When the iterator is exhausted, `accepted`, `rejected`
    (the first `MAX_LISTED_REJECTIONS` rejected rows), `rejected_counts` (all of them, by
    reason), `rows_rejected`, `columns`, `zone_sets` (each zone number's sorted zone names)
    and `zone_counts` (its accepted contacts) are final; it raises `ContactsFileError` for
    a file-level problem, including a file whose rows were all rejected, after which
    nothing it yielded may be kept.

    `default_region` (e.g. "US") is used for numbers written without a leading "+".
    `known_zones`: the names a timezone cell may hold (the database's; None: Python's).
    `dnc_keys`: the account's do-not-call list, each number as ``int(e164[1:])``; both may
    also be set as attributes before `chunks`. Raises `ValueError` for a bad
    `campaign_id` or `default_region` (the caller's bugs, not the tenant's). The caller
    owns `source` (it is left open).
    """

    def __init__(self, source: typing.BinaryIO, *, campaign_id: str | uuid.UUID,
                 default_region: str, chunk_rows: int = CHUNK_ROWS,
                 max_listed: int = MAX_LISTED_REJECTIONS,
                 known_zones: frozenset[str] | None = None,
                 dnc_keys: set[int] | frozenset[int] = frozenset()) -> None:
        self.campaign = str(uuid.UUID(str(campaign_id)))
        if default_region not in phonenumbers.SUPPORTED_REGIONS:
            # Otherwise every national number would be rejected as invalid_number and the
            # tenant would be blamed for a configuration mistake.
            raise ValueError(f"unsupported default_region {default_region!r}")
        self.region = default_region
        self.source = source
        self.chunk_rows = chunk_rows
        self.accepted = 0
        self.columns: list[str] = []
        self.delimiter = ","
        self._rejections = _Rejections(max_listed)
        self.known_zones = known_zones
        self.dnc_keys = dnc_keys
        self.zone_sets: list[tuple[str, ...]] = []
        self.zone_counts: list[int] = []
        self._zone_ids: dict[tuple[str, ...], int] = {}
        self._row_starts: list[bytes] = []  # by zone number: see _ROW_START
        # Zone numbers: by the first digits of the phone number (key // _divisor: the zone
        # number and the range of keys with those digits) when they decide it (see
        # gateway.timezones); the first digits that don't; by timezone cell.
        self._divisor = 1
        self._by_prefix: dict[int, tuple[int, int, int]] = {}
        self._undecided: set[int] = set()
        self._by_name: dict[str, int] = {}
        self._zone_names_by_case: dict[str, str] | None = None

    @property
    def rejected(self) -> list[RejectedRow]:
        return self._rejections.listed

    @property
    def rejected_counts(self) -> dict[str, int]:
        """Every reason (zero included), in REJECTION_REASONS order."""
        counts = self._rejections.counts
        return {reason: counts.get(reason, 0) for reason in REJECTION_REASONS}

    @property
    def rows_rejected(self) -> int:
        return self._rejections.total

    @property
    def rejected_truncated(self) -> bool:
        return self._rejections.total > len(self._rejections.listed)

    def chunks(self) -> typing.Iterator[bytes]:
        # An unseekable source can't be scanned first: it takes the csv reader.
        seekable = self.source.seekable()
        if seekable:
            self.delimiter = contacts_lines.sniff_delimiter(self.source)
        simple = seekable and contacts_lines.is_simple(self.source)
        if seekable:
            self.source.seek(0)
        delimiter = self.delimiter
        text: io.TextIOWrapper | None = None
        rows: typing.Iterator[list[str]]
        if simple:
            rows = contacts_lines.simple_rows(self.source, delimiter)
        else:
            # Streamed decoding: the upload is never held as one str. "utf-8-sig" drops a BOM.
            text = io.TextIOWrapper(self.source, encoding="utf-8-sig", errors="strict",
                                    newline="")
            # strict: an unclosed quote otherwise silently swallows the rest of the file
            # into one field; better a 400 naming the row than contacts quietly lost.
            rows = csv.reader(contacts_lines.checked_lines(text), strict=True,
                              delimiter=delimiter)
        try:
            yield from self._rows(rows, simple)
        finally:
            if text is not None:
                text.detach()  # leave the caller's file open

    def _rows(self, reader: typing.Iterator[list[str]], simple: bool) -> typing.Iterator[bytes]:
        """Validate rows from `reader`, yield accepted ones as COPY payload chunks."""
        row_number = -1  # -1 while reading the header
        try:
            names, phone_idx, zone_idx = _check_header(next(reader, None), self.delimiter)
            row_number = 0
            ncols = len(names) + 1 + (zone_idx is not None)
            self.columns = names.copy()

            # Local aliases: this loop runs once per contact (up to ~100k times).
            parse, parse_error = phonenumbers.parse, phonenumbers.NumberParseException
            fast_validity, national = e164_validity, national_e164
            # One regex call decides most valid numbers: E.164 in the default region, or
            # the default region's national formats once their formatting is dropped.
            accept = valid_e164_in(self.region)
            usual = national_fast_path(self.region)
            national_accept, national_max, cc_plus = (usual.accept, usual.max_chars,
                                                      usual.e164_prefix)
            # The formatting characters dropped as bytes: half the cost of str.translate
            # (the text came from strict UTF-8 decoding, so it encodes back; UTF-8 never
            # puts an ASCII byte inside another character, so the result is the same).
            drop, formatting = bytes.translate, FORMATTING_CHARS.encode()
            is_valid, fmt, e164_format = (phonenumbers.is_valid_number,
                                          phonenumbers.format_number, _E164)
            region = self.region
            encode = _encode_str
            if simple:
                # No quote, backslash or control character anywhere in the file: every value
                # is its own JSON string body, so the array is the values joined (a third
                # cheaper than %-formatting a template with them).
                opening, closing = ('["', '"]') if names else ("[", "]")
                join_values = '","'.join
            middle_for, middle = -1, _row_middle(0)  # the packer for numbers of that length
            out = bytearray(COPY_SIGNATURE)  # the payload since the last chunk
            # Duplicates: a set of int(E.164 digits) (half the memory of the strings, and
            # no value objects: a 10 MB file of 800k distinct numbers stays ~8x its size);
            # the row each listed duplicate repeats is looked up once, at the end. The
            # do-not-call numbers are in it from the start: one lookup finds both, and
            # only a number found tells which it is.
            dnc = self.dnc_keys
            seen: set[int] = set(dnc)
            add_seen = seen.add
            # A contact's zone number: by the first digits of its number, key // divisor
            # (+1 and the area code for a number of the default region's usual length;
            # more digits for a longer one, fewer for a shorter one: their count tells
            # the length too); `_number_zone` when they are new to the import. Files
            # often come sorted or grouped: while the numbers stay in the range of keys
            # with the same first digits (low <= key < high), the zone stays and nothing
            # is looked up, and the rows of a run of one zone are counted when it ends
            # (by seq): a lookup and a count cost ~5% of a row, the comparison ~1%.
            divisor = self._divisor = timezones.prefix_divisor(region)
            zone_by_prefix, number_zone = self._by_prefix.get, self._number_zone
            zone_counts, starts = self.zone_counts, self._row_starts
            run_zone, run_seq, row_start = -1, 0, b""
            low = high = 0
            if zone_idx is not None:
                named_zone, zone_named = self._by_name.get, self._named_zone
                # An accepted row loses its phone_number and timezone cells, the last first.
                drop_last, drop_first = max(phone_idx, zone_idx), min(phone_idx, zone_idx)
            keys_by_seq, rows_by_seq = array.array("q"), array.array("I")
            add_key, add_row = keys_by_seq.append, rows_by_seq.append
            rejections = self._rejections
            reject = rejections.add
            blank_first = blank_count = 0  # blank lines not yet known to be non-trailing
            seq = 0
            chunk_at = min(FIRST_CHUNK_ROWS, self.chunk_rows)

            for row in reader:
                row_number += 1
                n = len(row)
                if not n:
                    # csv yields [] for a blank line; blank lines at the very end of the
                    # file are editor noise and are dropped, so decide once a row follows.
                    if not blank_count:
                        blank_first = row_number
                    blank_count += 1
                    continue
                if blank_count:
                    rejections.add_blank_run(blank_first, blank_count)
                    blank_count = 0
                if n != ncols:
                    if n > ncols:
                        if _is_blank(row):  # e.g. ",,,,," rows left by spreadsheet exports
                            reject(row_number, "empty", "Row %d is blank.", row_number)
                        else:
                            reject(row_number, "column_count",
                                   "Row %d has %d cells but the header has %d columns.",
                                   row_number, n, ncols)
                        continue
                    row.extend([""] * (ncols - n))  # short rows: missing cells are empty
                raw = row[phone_idx]
                if raw[:1] == "+":
                    valid = True if accept(raw) else fast_validity(raw)
                    e164 = raw  # if valid: plain E.164 that phonenumbers leaves unchanged
                elif len(raw) <= national_max and national_accept(
                        digits := raw if raw.isdigit()
                        else drop(raw.encode(), None, formatting).decode()):
                    valid, e164 = True, cc_plus + digits
                else:
                    valid = None
                if not valid:
                    if not raw or raw.isspace():
                        what = "is blank" if _is_blank(row) else "has an empty phone_number"
                        reject(row_number, "empty", "Row %d %s.", row_number, what)
                        continue
                    if valid is None:
                        found = national(raw, region)
                        if found is not None:
                            e164, valid = found
                        else:
                            try:
                                number = parse(raw, region)
                            except parse_error as exc:
                                # str(exc) is "(code) Sentence."; the code means nothing to
                                # a tenant.
                                reject(row_number, "invalid_number", _invalid_message(
                                    row_number, raw, region, str(exc).split(") ", 1)[-1]))
                                continue
                            valid = is_valid(number)
                            e164 = fmt(number, e164_format) if valid else ""
                    if not valid:
                        reject(row_number, "invalid_number",
                               _invalid_message(row_number, raw, region, None))
                        continue
                key = int(e164[1:])
                if key in seen:
                    if key in dnc:
                        reject(row_number, RejectionReason.DO_NOT_CALL,
                               "Row %d: %s is on the do-not-call list.", row_number, e164)
                    else:
                        rejections.add_duplicate(row_number, e164, key)
                    continue
                if zone_idx is not None and (name := row[zone_idx].strip()):
                    named = named_zone(name)
                    if named is None and (named := zone_named(name, row_number)) is None:
                        continue
                    zone = named
                    if zone != run_zone:
                        if run_zone >= 0:
                            zone_counts[run_zone] += seq - run_seq
                        run_zone, run_seq, row_start = zone, seq, starts[zone]
                    low = high = 0  # the run's zone is not the range's any more
                    del row[drop_last]
                    del row[drop_first]
                else:
                    if not low <= key < high:
                        hit = zone_by_prefix(key // divisor)
                        if hit is None:
                            hit = number_zone(e164, key)
                        zone, low, high = hit
                        if zone != run_zone:
                            if run_zone >= 0:
                                zone_counts[run_zone] += seq - run_seq
                            run_zone, run_seq, row_start = zone, seq, starts[zone]
                    if zone_idx is None:
                        del row[phone_idx]
                    else:
                        del row[drop_last]
                        del row[drop_first]
                add_seen(key)
                add_key(key)
                add_row(row_number)
                if simple:
                    fields = f"{opening}{join_values(row)}{closing}".encode()
                else:
                    fields = f"[{','.join([encode(value) for value in row])}]".encode()
                if (n := len(e164)) != middle_for:  # ASCII ("+" and digits): n bytes
                    middle_for, middle = n, _row_middle(n)
                out += row_start
                out += middle(4, seq, 4, row_number, n, e164.encode(), len(fields))
                out += fields
                seq += 1
                if seq == chunk_at or len(out) > CHUNK_BYTES:
                    chunk_at = seq + self.chunk_rows
                    self.accepted = seq
                    yield bytes(out)
                    out.clear()
        except csv.Error as exc:
            raise ContactsFileError(_csv_error_message(str(exc), row_number, reader)) from None
        except UnicodeDecodeError:
            line = getattr(reader, "line_num", row_number + 1)
            raise ContactsFileError(_decode_error_message(self.source, line)) from None
        except LineTooLong as exc:
            raise ContactsFileError(
                f"Line {exc.line} of the file is longer than {contacts_lines.MAX_LINE_CHARS:,}"
                " characters; is it really a CSV of contacts?") from None
        except NulByte:
            raise ContactsFileError(
                "The file contains NUL bytes; is it really a CSV text file?") from None

        self.accepted = seq
        if run_zone >= 0:
            zone_counts[run_zone] += seq - run_seq
        rejections.resolve_duplicates(keys_by_seq, rows_by_seq)
        if not seq:
            total = rejections.total
            if not total:
                raise ContactsFileError("The file has a header row but no data rows.")
            # Most frequent first; ties in the order the reasons first occurred.
            counts = sorted(rejections.counts.items(), key=lambda item: -item[1])
            summary = ", ".join(f"{count} {reason}" for reason, count in counts)
            raise ContactsFileError(
                f"The file has no valid rows: all {total} data row{'s' if total > 1 else ''}"
                f" were rejected ({summary})."
            )
        out += COPY_TRAILER
        yield bytes(out)

    def _zone(self, zones: tuple[str, ...]) -> int:
        """The import's number for the set of zones (sorted names), a new one if need be
        (a smallint: there are a few thousand sets at most, the prefix table's and the
        zone names')."""
        zone = self._zone_ids.get(zones)
        if zone is None:
            zone = self._zone_ids[zones] = len(self.zone_sets)
            self.zone_sets.append(zones)
            self.zone_counts.append(0)
            self._row_starts.append(_ROW_START.pack(len(COPY_COLUMNS), 16,
                                                    uuid.UUID(self.campaign).bytes, 2, zone))
        return zone

    def _number_zone(self, e164: str, key: int) -> tuple[int, int, int]:
        """The zone number of a number whose first digits (key // divisor) are new to
        this import, or don't decide its zones; and the range of keys it holds for
        (empty: this number's own)."""
        start = key // self._divisor
        if start and start not in self._undecided:  # 0: as many digits as the divisor
            zones = timezones.prefix_zones(f"+{start}", len(e164))
            if zones is not None:
                found = self._by_prefix[start] = (self._zone(zones), start * self._divisor,
                                                  (start + 1) * self._divisor)
                return found
            self._undecided.add(start)
        # A longer prefix decides (an area code of two zones decides by the exchange):
        # the range of keys it starts, for the next rows (remembered by gateway.timezones).
        zones, end = timezones.deciding_prefix(e164)
        if not end:
            return self._zone(zones), 0, 0
        divisor = 10 ** (len(e164) - end)
        low = key // divisor * divisor
        return self._zone(zones), low, low + divisor

    def _named_zone(self, name: str, row_number: int) -> int | None:
        """The zone number of a timezone cell met for the first time, or None (the row is
        rejected: not a zone name the database knows)."""
        known = self.known_zones
        if known is None:
            known = self.known_zones = timezones.default_known_zones()
        if name in known:
            zone = self._by_name[name] = self._zone((name,))
            return zone
        if self._zone_names_by_case is None:
            self._zone_names_by_case = {known_name.lower(): known_name for known_name in known}
        right = self._zone_names_by_case.get(name.lower())
        shown = repr(name if len(name) <= 40 else name[:40] + "…")
        if right is not None:
            self._rejections.add(row_number, RejectionReason.INVALID_TIMEZONE,
                                 "Row %d: timezone %s is not a time zone name; did you mean"
                                 " %r? (names are case-sensitive)", row_number, shown, right)
        else:
            self._rejections.add(row_number, RejectionReason.INVALID_TIMEZONE,
                                 "Row %d: timezone %s is not a time zone name; give an IANA"
                                 " name such as 'America/New_York', or leave the cell blank"
                                 " for the phone number's zones.", row_number, shown)
        return None


def _csv_error_message(error: str, row_number: int, reader: typing.Iterator[list[str]]) -> str:
    hint = ""
    if "end of data" in error:
        hint = " (a quote is probably left unclosed)"
    elif "field limit" in error:
        error = (f"a cell is longer than {contacts_lines.MAX_CELL_CHARS:,} characters"
                 f" ({error})")
    row = "the header row" if row_number < 0 else f"data row {row_number + 1}"
    line = getattr(reader, "line_num", row_number + 1)
    return f"The file is not valid CSV: {error}{hint}, in {row} (read up to line {line})."


def _check_header(header: list[str] | None,
                  delimiter: str) -> tuple[list[str], int, int | None]:
    """Return (custom field names in order, index of phone_number, index of timezone or
    None) or raise ContactsFileError."""
    if header is None:
        raise ContactsFileError(
            "The file is empty; expected a header row with a phone_number column."
        )
    if len(header) > MAX_COLUMNS:
        shown = {",": "commas", ";": "semicolons", "\t": "tabs"}[delimiter]
        raise ContactsFileError(f"The header has {len(header):,} columns (split on {shown});"
                                f" at most {MAX_COLUMNS:,} are supported.")
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
        raise ContactsFileError(
            f"The header has no phone_number column{hint}; found columns: {found}."
        )
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
    zone_idx = names.index(ZONE_COLUMN) if ZONE_COLUMN in names else None
    return [name for name in names if name not in (PHONE_COLUMN, ZONE_COLUMN)], phone_idx, zone_idx


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
    return (f"The file is not UTF-8 text (invalid byte {where});"
            " save it as CSV UTF-8 and upload it again.")
