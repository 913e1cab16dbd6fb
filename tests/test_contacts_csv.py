"""Unit tests for gateway.contacts_csv: CSV validation and the COPY payload it builds."""

from __future__ import annotations

import csv
import io
import json
import random
import struct
import uuid

import phonenumbers
import pytest

from gateway import contacts_lines
from gateway.contacts_csv import (
    COPY_COLUMNS,
    ContactsFileError,
    ParsedContacts,
    RejectedRow,
    parse_contacts,
)
from tests import copy_payload

CAMPAIGN = "3f2b8c1e-7d4a-4e5b-9c6d-0a1b2c3d4e5f"

# Real-looking numbers that phonenumbers 9.x considers valid (checked by
# test_fixture_numbers_are_valid).
NY = "+12124567890"
NJ = "+12015550123"
SF = "+14155552671"
LONDON = "+442079460018"


def parse(data: bytes, region: str = "US") -> tuple[ParsedContacts, list[list]]:
    """Parse `data`; return the result and the COPY payload decoded back into Python values."""
    source = io.BytesIO(data)
    result = parse_contacts(source, campaign_id=CAMPAIGN, default_region=region)
    try:
        assert result.copy_data.tell() == 0
        payload = result.copy_data.read()
    finally:
        result.copy_data.close()
    assert not source.closed  # the caller's file is left alone
    # custom_fields is the JSON array of the row's values, named by the header (columns).
    return result, copy_payload.decode(payload, result.columns)


def file_error(data: bytes, region: str = "US") -> str:
    with pytest.raises(ContactsFileError) as info:
        parse_contacts(io.BytesIO(data), campaign_id=CAMPAIGN, default_region=region)
    assert str(info.value) == info.value.message
    return info.value.message


def reasons(result: ParsedContacts) -> list[tuple[int, str]]:
    return [(r.row, r.reason) for r in result.rejected]


def test_fixture_numbers_are_valid():
    for number in (NY, NJ, SF, LONDON):
        assert phonenumbers.is_valid_number(phonenumbers.parse(number))
    assert phonenumbers.is_valid_number(phonenumbers.parse("(212) 456-7890", "US"))


def test_copy_columns():
    assert COPY_COLUMNS == ("campaign_id", "zone", "seq", "row_number", "phone_number",
                            "custom_fields")


# --- accepted rows --------------------------------------------------------------------------


def test_accepted_rows_have_dense_seq_and_data_row_numbers():
    data = (f"phone_number,first_name\n{NY},Ann\nnot a number,Bob\n{NJ},Cy\n,Dee\n"
            f"{SF},Eve\n").encode()
    result, rows = parse(data)
    assert result.accepted == 3
    assert result.columns == ["first_name"]
    assert rows == [
        [CAMPAIGN, 0, 1, NY, {"first_name": "Ann"}],
        [CAMPAIGN, 1, 3, NJ, {"first_name": "Cy"}],
        [CAMPAIGN, 2, 5, SF, {"first_name": "Eve"}],
    ]
    assert reasons(result) == [(2, "invalid_number"), (4, "empty")]


def test_numbers_are_normalised_to_e164_with_the_default_region():
    data = b"phone_number\n(212) 456-7890\n+1 415 555 2671\n 201-555-0123 \n"
    result, rows = parse(data)
    assert [r[3] for r in rows] == [NY, SF, NJ]
    assert result.rejected == []


def test_default_region_is_used_only_without_a_leading_plus():
    result, rows = parse(b"phone_number\n020 7946 0018\n+1 212 456 7890\n", region="GB")
    assert [r[3] for r in rows] == [LONDON, NY]
    # The same national number means something else, invalid, in the US.
    result, rows = parse(f"phone_number\n020 7946 0018\n{NY}\n".encode(), region="US")
    assert reasons(result) == [(1, "invalid_number")]
    assert "read as a US number" in result.rejected[0].message


def test_custom_fields_map_every_other_column_keeping_values_verbatim():
    data = (
        " first_name ,phone_number,\tnotes,company\n"
        f"  Ann  ,{NY}, héllo 👋 ,\n"
    ).encode()
    result, rows = parse(data)
    assert result.columns == ["first_name", "notes", "company"]
    assert rows[0][4] == {"first_name": "  Ann  ", "notes": " héllo 👋 ", "company": ""}
    assert list(rows[0][4]) == result.columns  # header order


def test_only_phone_number_column_gives_empty_custom_fields():
    result, rows = parse(f"phone_number\n{NY}\n".encode())
    assert result.columns == []
    assert rows == [[CAMPAIGN, 0, 1, NY, {}]]


def test_utf8_bom_is_stripped_from_the_first_header():
    result, rows = parse(b"\xef\xbb\xbfphone_number,name\n" + f"{NY},Ann\n".encode())
    assert result.columns == ["name"]
    assert rows[0][3] == NY


def test_crlf_line_endings():
    data = f"phone_number,name\r\n{NY},Ann\r\n\r\n{SF},Bob\r\n".encode()
    result, rows = parse(data)
    assert [(r[2], r[4]) for r in rows] == [(1, {"name": "Ann"}), (3, {"name": "Bob"})]
    assert reasons(result) == [(2, "empty")]


def test_quoted_fields_with_commas_newlines_and_quotes():
    data = (
        "phone_number,company,notes\n"
        f'{NY},"Acme, Inc.","line one\r\nline two"\n'
        f'"{SF}","Say ""hi""",plain\n'
    ).encode()
    _, rows = parse(data)
    assert rows[0][4] == {"company": "Acme, Inc.", "notes": "line one\r\nline two"}
    # A multi-line record is still one data row.
    assert rows[1][2] == 2
    assert rows[1][4] == {"company": 'Say "hi"', "notes": "plain"}


def test_short_rows_are_padded_with_empty_strings():
    result, rows = parse(f"phone_number,a,b\n{NY},x\n".encode())
    assert rows[0][4] == {"a": "x", "b": ""}
    assert result.rejected == []


# --- row rejections -------------------------------------------------------------------------


def test_empty_phone_and_blank_rows_are_rejected_as_empty():
    data = f"name,phone_number\nAnn,\nBob,   \n,\n\nCy,{NY}\n".encode()
    result, rows = parse(data)
    assert reasons(result) == [(1, "empty"), (2, "empty"), (3, "empty"), (4, "empty")]
    assert "empty phone_number" in result.rejected[0].message
    assert "blank" in result.rejected[2].message and "blank" in result.rejected[3].message
    assert [r[2] for r in rows] == [5]


def test_trailing_blank_lines_are_not_reported():
    result, _ = parse(f"phone_number\n{NY}\n\n\n".encode())
    assert result.accepted == 1
    assert result.rejected == []


def test_invalid_numbers_are_rejected_with_a_message():
    data = f"phone_number\nabc\n12345\n+999 1234567\n{NY}\n".encode()
    result, _ = parse(data)
    assert reasons(result) == [(1, "invalid_number"), (2, "invalid_number"), (3, "invalid_number")]
    assert all(isinstance(r, RejectedRow) for r in result.rejected)
    assert "'abc' is not a valid phone number" in result.rejected[0].message
    assert "'12345'" in result.rejected[1].message


def test_duplicates_are_detected_after_normalisation():
    data = f"phone_number,name\n{NY},Ann\n(212) 456-7890,Bob\n1 212 456 7890,Cy\n".encode()
    result, rows = parse(data)
    assert [r[4]["name"] for r in rows] == ["Ann"]
    assert reasons(result) == [(2, "duplicate"), (3, "duplicate")]
    assert result.rejected[0].message == f"Row 2: {NY} is a duplicate of row 1."


def test_duplicate_refers_to_the_first_accepted_row():
    # Row 1 is rejected, so row 2 is the first accepted occurrence.
    data = f"phone_number,a\n{NY},x,extra\n{NY},y\n{NY},z\n".encode()
    result, rows = parse(data)
    assert reasons(result) == [(1, "column_count"), (3, "duplicate")]
    assert "row 2" in result.rejected[1].message
    assert rows[0][2] == 2


def test_rows_with_more_cells_than_the_header_are_rejected():
    data = f"phone_number,a\n{NY},x,lost\n{SF},y\n".encode()
    result, rows = parse(data)
    assert reasons(result) == [(1, "column_count")]
    assert result.rejected[0].message == "Row 1 has 3 cells but the header has 2 columns."
    assert rows[0][2:4] == [2, SF]


def test_the_first_rejections_are_listed_in_file_order_and_all_are_counted():
    lines = ["phone_number"] + ["bogus"] * 3000 + [NY]
    result, _ = parse("\n".join(lines).encode())
    assert result.accepted == 1
    assert [r.row for r in result.rejected] == list(range(1, 1001))
    assert result.rejected_counts == {"empty": 0, "invalid_number": 3000, "duplicate": 0,
                                      "column_count": 0, "do_not_call": 0,
                                      "invalid_timezone": 0}
    assert result.rows_rejected == 3000


# --- file-level errors ----------------------------------------------------------------------


def test_non_utf8_file_names_the_byte_and_line():
    data = "phone_number,name\n+12124567890,Zoë\n".encode("latin-1")
    message = file_error(data)
    assert "not UTF-8" in message
    offset = data.index("ë".encode("latin-1"))
    assert f"invalid byte at offset {offset}, line 2" in message


def test_utf16_file_is_rejected():
    message = file_error("phone_number\n+12124567890\n".encode("utf-16"))  # starts with b"\xff\xfe"
    assert "not UTF-8" in message and "offset 0, line 1" in message


def test_non_utf8_from_an_unseekable_source_still_gives_a_rough_location():
    class Unseekable(io.RawIOBase):
        def __init__(self, data):
            self._inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self._inner.readinto(b)

    with pytest.raises(ContactsFileError,
                       match=r"not UTF-8 text \(invalid byte at or after line 1\)"):
        parse_contacts(Unseekable(b"phone_number\n\xff\n"), campaign_id=CAMPAIGN,
                       default_region="US")


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf"])
def test_empty_file(data):
    assert "empty" in file_error(data)


@pytest.mark.parametrize("data", [b"phone_number\n", b"phone_number,name\r\n\r\n\r\n",
                                  b"phone_number"])
def test_header_only(data):
    assert file_error(data) == "The file has a header row but no data rows."


def test_blank_header_row():
    assert "header" in file_error(f"\nphone_number\n{NY}\n".encode())


def test_missing_phone_number_column_lists_the_columns_found():
    message = file_error(f"phone,name\n{NY},Ann\n".encode())
    assert "no phone_number column" in message and "'phone', 'name'" in message
    assert "case-sensitive" in file_error(f"Phone_Number\n{NY}\n".encode())


@pytest.mark.parametrize("header", ["phone_number,name,name", "phone_number,name, name ",
                                    "phone_number,phone_number"])
def test_duplicate_header_name(header):
    message = file_error(f"{header}\n{NY},a,b\n".encode())
    assert "used twice" in message


def test_empty_header_name_names_the_column():
    assert "Column 2" in file_error(f"phone_number, ,name\n{NY},a,b\n".encode())


def test_nul_bytes_are_a_file_error():
    assert "NUL" in file_error(f"phone_number,name\n{NY},A\x00nn\n".encode())
    assert "NUL" in file_error(b"PK\x03\x04\x00\x00phone_number")  # e.g. an .xlsx by mistake


def test_no_valid_rows_summarises_the_rejections():
    message = file_error(f"phone_number\nbad\nworse\n\n{NY}x1,\n".encode())
    assert message == ("The file has no valid rows: all 4 data rows were rejected "
                       "(2 invalid_number, 1 empty, 1 column_count).")


def test_unclosed_quote_is_malformed_csv():
    message = file_error(f'phone_number,name\n{NY},"Ann\n{SF},Bob\n'.encode())
    assert "not valid CSV" in message and "unclosed" in message and "data row 1" in message


def test_field_larger_than_the_csv_limit_is_malformed_csv():
    data = f'phone_number,notes\n{NY},"{"x" * (200 * 1024)}"\n'.encode()
    assert "not valid CSV" in file_error(data)


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError):
        parse_contacts(io.BytesIO(b"phone_number\n"), campaign_id="nope", default_region="US")
    with pytest.raises(ValueError):
        parse_contacts(io.BytesIO(b"phone_number\n"), campaign_id=CAMPAIGN, default_region="XX")


# --- the COPY payload -----------------------------------------------------------------------


def test_copy_payload_round_trips_and_matches_the_binary_format_and_json_dumps():
    awkward = ['say "hi", then\nleave', "back\\slash", "tab\there\r\n", "ünïcödé 中文 🎉", "\u2028",
               "", " "]
    header = ["phone_number"] + [f"f{i}" for i in range(len(awkward))]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, [NY, *awkward], [SF, *awkward[::-1]]])
    source = io.BytesIO(buffer.getvalue().encode())
    result = parse_contacts(source, campaign_id=uuid.UUID(CAMPAIGN), default_region="US")
    with result.copy_data as payload_file:
        payload = payload_file.read()

    # The exact bytes of PostgreSQL's binary COPY format for the rows (written out here
    # field by field), with compact json.dumps fields.
    expected = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
    for seq, (phone, values) in enumerate([(NY, awkward), (SF, awkward[::-1])]):
        fields = json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()
        expected += struct.pack(">h", 6)
        # The zone: New York's is the import's first set of zones (0), Los Angeles' the next.
        for value in (uuid.UUID(CAMPAIGN).bytes, struct.pack(">h", seq), struct.pack(">i", seq),
                      struct.pack(">i", seq + 1), phone.encode(), fields):
            expected += struct.pack(">i", len(value)) + value
    assert payload == expected + b"\xff\xff"

    names = header[1:]
    assert result.columns == names
    assert copy_payload.decode(payload, names, zones=True) == [
        [CAMPAIGN, 0, 0, 1, NY, dict(zip(names, awkward, strict=True))],
        [CAMPAIGN, 1, 1, 2, SF, dict(zip(names, awkward[::-1], strict=True))]]
    assert result.zone_sets == [("America/New_York",), ("America/Los_Angeles",)]
    assert result.zone_counts == [1, 1]


def test_large_payload_spills_to_disk_and_stays_readable():
    notes = "n" * 5000
    lines = ["phone_number,notes"] + [f"+1212456{i:04d},{notes}" for i in range(2000)]
    result, rows = parse("\n".join(lines).encode())  # ~10 MB of payload: past the 8 MiB spool
    assert result.accepted == len(rows) == 2000
    assert [r[1] for r in rows] == list(range(2000))
    assert all(r[4] == {"notes": notes} for r in rows)


# --- the two readers ------------------------------------------------------------------------


def _both_readers(monkeypatch, data: bytes):
    """The payload and report from the comma-splitting reader and from the csv reader."""
    results = []
    for simple in (True, False):
        if not simple:
            monkeypatch.setattr(contacts_lines, "is_simple", lambda source: False)
        try:
            result = parse_contacts(io.BytesIO(data), campaign_id=CAMPAIGN, default_region="US")
        except ContactsFileError as exc:
            results.append(("error", exc.message))
            continue
        with result.copy_data as payload:
            results.append((payload.read(), result.accepted, result.rejected, result.columns))
    return results


@pytest.mark.parametrize("scan_bytes", [None, 5, 64])
@pytest.mark.parametrize("seed", range(30))
def test_simple_files_read_the_same_by_both_readers(monkeypatch, seed, scan_bytes):
    """A file with nothing to quote is split on commas; the bytes and the report must be
    exactly what the csv reader gives, whatever the rows look like. Also read in tiny
    blocks (``scan_bytes``), so that blocks end inside lines, between a CR and its LF and
    inside multi-byte characters, as they do at 64 KiB in a large file."""
    if scan_bytes is not None:
        monkeypatch.setattr(contacts_lines, "SCAN_BYTES", scan_bytes)
    rng = random.Random(seed)
    columns = rng.randint(0, 3)
    header = ["phone_number"] + [f"col {i} ü%s" for i in range(columns)]
    rng.shuffle(header)
    cells = ["", " ", "Ann", "ünïcödé 中文", "x" * 40, "+", "%d", "{}", "a;b", "'q'"]
    numbers = [NY, NJ, SF, LONDON, "(212) 456-7890", "212-456-7891", "+1 415 555 2671",
               "not a number", "", "  ", "+12125550100", "+11235550100", "+4420794600", "0"]
    lines = [",".join(header)]
    for _ in range(rng.randint(1, 60)):
        shape = rng.random()
        if shape < 0.05:
            lines.append("")
        elif shape < 0.1:
            lines.append("," * rng.randint(1, columns + 2))
        else:
            row = [rng.choice(cells) for _ in header]
            row[header.index("phone_number")] = rng.choice(numbers)
            del row[len(header) - rng.choice([0] * 8 + [1, 2]):]  # sometimes short
            if rng.random() < 0.05:
                row.append("extra")
            lines.append(",".join(row))
    lines += [""] * rng.randint(0, 2)
    ending = rng.choice(["\n", "\r\n"])
    text = ending.join(lines) + rng.choice(["", ending])
    data = (b"\xef\xbb\xbf" if rng.random() < 0.3 else b"") + text.encode()
    assert contacts_lines.is_simple(io.BytesIO(data))
    simple, csv_reader = _both_readers(monkeypatch, data)
    assert simple == csv_reader


@pytest.mark.parametrize("data", [
    b'phone_number,a\n+12125550100,"quoted"\n', b"phone_number,a\n+12125550100,back\\slash\n",
    b"phone_number,a\n+12125550100,tab\there\n", b"phone_number,a\n+12125550100,lone\rcr\n",
    b"phone_number,a\n+12125550100,nul\x00\n", b"phone_number,a\n+12125550100,end\r",
    b"phone_number,a\n+12125550100,bell\x07\n",
])
def test_anything_to_quote_or_escape_takes_the_csv_reader(data):
    assert not contacts_lines.is_simple(io.BytesIO(data))


def test_simple_scan_sees_a_carriage_return_split_across_blocks(monkeypatch):
    monkeypatch.setattr(contacts_lines, "SCAN_BYTES", 4)
    assert contacts_lines.is_simple(io.BytesIO(b"ab\r\ncd\r\nef\r\n"))
    assert contacts_lines.is_simple(io.BytesIO(b"abc\r\nd"))  # \r ends a block, \n starts one
    assert not contacts_lines.is_simple(io.BytesIO(b"abc\rd\n"))
