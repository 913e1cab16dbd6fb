"""Semicolon and tab files (European spreadsheet exports): the header row picks the
delimiter, and the rows read exactly as a comma file with the same cells."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import contacts_csv
from gateway.contacts_csv import ContactsFileError, ContactsImport, parse_contacts
from gateway.contacts_lines import sniff_delimiter

CAMPAIGN = "3f2b8c1e-7d4a-4e5b-9c6d-0a1b2c3d4e5f"
NY, SF = "+12124567890", "+14155552671"


def _encode(rows: list[list[str]], delimiter: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def _result(data: bytes):
    contacts = ContactsImport(io.BytesIO(data), campaign_id=CAMPAIGN, default_region="US")
    try:
        payload = b"".join(contacts.chunks())
    except ContactsFileError as exc:
        return ("error", exc.message), contacts.delimiter
    return (payload, contacts.accepted, contacts.rejected, contacts.rejected_counts,
            contacts.columns), contacts.delimiter


@pytest.mark.parametrize("header, expected", [
    (b"phone_number,name\n", ","), (b"phone_number;name\n", ";"), (b"phone_number\tname\n", "\t"),
    (b"\xef\xbb\xbfname;phone_number\r\n", ";"), (b'"phone_number";"a,b"\n', ";"),
    (b'"phone_number,x";y\n', ","),  # no ';' cell is phone_number: comma file, header error
    (b"phone_number\n", ","), (b"name;phone_number,extra\n", ","),  # a comma cell wins
    (b"nothing here\n", ","), (b"", ","), (b"\xff\xfe", ","),
])
def test_the_header_row_picks_the_delimiter(header, expected):
    assert sniff_delimiter(io.BytesIO(header + b"+12124567890\n")) == expected


def test_semicolon_file_with_commas_in_cells_reads_like_a_comma_file():
    rows = [["phone_number", "name", "note"], [NY, "Müller, Anna", "1,5 kg"],
            ["(415) 555-2671", "Bo;b", 'say "hi"'], ["bogus", "x", "y"], [NY, "dup", ""]]
    results = {d: _result(_encode(rows, d)) for d in (",", ";", "\t")}
    assert results[","][1] == "," and results[";"][1] == ";" and results["\t"][1] == "\t"
    assert results[","][0] == results[";"][0] == results["\t"][0]
    report = results[";"][0]
    assert report[1] == 2 and report[4] == ["name", "note"]
    assert report[3] == {"empty": 0, "invalid_number": 1, "duplicate": 1, "column_count": 0,
                         "do_not_call": 0, "invalid_timezone": 0}


def test_unquoted_semicolon_file_takes_the_fast_reader_and_agrees(monkeypatch):
    data = f"phone_number;first_name;city\n{NY};Ann;Köln, Mitte\n{SF};Bob;\n".encode()
    fast = _result(data)
    monkeypatch.setattr(contacts_csv.contacts_lines, "is_simple", lambda source: False)
    assert fast == _result(data)
    parsed = parse_contacts(io.BytesIO(data), campaign_id=CAMPAIGN, default_region="US")
    with parsed.copy_data as payload:
        assert "Köln, Mitte".encode() in payload.read()


def test_a_semicolon_header_without_phone_number_is_reported_as_found_by_commas():
    with pytest.raises(ContactsFileError,
                       match="no phone_number column; found columns: 'tel;name'"):
        parse_contacts(io.BytesIO(b"tel;name\n1;2\n"), campaign_id=CAMPAIGN, default_region="US")


_CELL = st.text(alphabet=st.sampled_from([",", ";", "\t", '"', " ", "a", "é", "\n", "1"]),
                max_size=6)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(cells=st.lists(st.lists(_CELL, min_size=2, max_size=2), max_size=8),
       phones=st.lists(st.sampled_from([NY, SF, "(212) 456-7891", "bogus", ""]), min_size=8,
                       max_size=8),
       delimiter=st.sampled_from([";", "\t"]))
def test_any_cells_read_the_same_with_any_delimiter(cells, phones, delimiter):
    """Quoted cells holding the other delimiters, quotes and newlines: the same report and
    the same custom fields as the comma file of the same cells."""
    # strict=False: there are 8 phones for up to 8 rows of cells; the rows take what they need.
    rows = [["phone_number", "a", "b"]] + [[p, *c] for p, c in zip(phones, cells, strict=False)]
    commas, sniffed = _result(_encode(rows, ","))
    other, found = _result(_encode(rows, delimiter))
    assert (sniffed, found) == (",", delimiter)
    assert commas[1:] == other[1:]  # the same error, or the same report
    if commas[0] != "error":
        assert commas[0] == other[0]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(head=st.binary(max_size=200) | st.text(alphabet='phone_number,;\t"\r\n x', max_size=60)
       .map(str.encode))
def test_sniffing_any_first_line_picks_a_delimiter_and_never_raises(head):
    """A header the csv module cannot read (a lone CR in it, found by the multipart fuzz)
    decides nothing: the reader then reports the file as a 400."""
    assert sniff_delimiter(io.BytesIO(head)) in (",", ";", "\t")


def test_a_lone_carriage_return_in_the_header_is_read_as_a_line_break():
    """As the csv module reads old Mac files: the header is `phone_number` alone (the
    sniffer could not split the line: comma), and `;x` is a rejected row, not a 500."""
    parsed = parse_contacts(io.BytesIO(b"phone_number\r;x\n+12125550100\n"),
                            campaign_id=CAMPAIGN, default_region="US")
    assert parsed.accepted == 1 and parsed.columns == []
    assert [(r.row, r.reason) for r in parsed.rejected] == [(1, "invalid_number")]
