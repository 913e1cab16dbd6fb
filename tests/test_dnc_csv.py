"""The do-not-call upload's reader (``gateway.dnc_csv``): the campaign import's rules for the
file (delimiters, UTF-8, bounds) and its numbers, checked against the import itself and
against phonenumbers on generated inputs; bounded memory and exact counts whatever the file.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import tracemalloc

import phonenumbers
import pytest
from copy_payload import decode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.contacts_csv import ContactsFileError, parse_contacts
from gateway.contacts_lines import MAX_LINE_CHARS
from gateway.dnc_csv import (
    MAX_LISTED_REJECTIONS,
    REASONS,
    DncFileError,
    DncUpload,
    normalise_number,
    read_numbers,
)

CAMPAIGN = "3f2b8c1e-7d4a-4e5b-9c6d-0a1b2c3d4e5f"
NY = "+12124567890"
FIXED_BYTES = 1 << 20


def read(data: bytes, **kwargs) -> DncUpload:
    return read_numbers(io.BytesIO(data), default_region="US", **kwargs)


def file_error(data: bytes) -> str:
    with pytest.raises(DncFileError) as caught:
        read(data)
    return caught.value.message


def reference(raw: str, region: str) -> str | None:
    """What phonenumbers itself makes of a cell."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- numbers --------------------------------------------------------------------------------

SPELLINGS = ["+12124567890", "(212) 456-7890", "212.456.7890", "2124567890", "1 212 456 7890",
             "+1 (212) 456-7890", "001 212 456 7890", "+44 20 7946 0018", "020 7946 0018",
             "+4420794600180", "+1212456789", "12", "", " ", "abc", "+", "+0", "٢١٢٤٥٦٧٨٩٠",
             "212-456-7890 ext. 12", "tel:+12124567890", "\x00", "+1\ud800", "1" * 300]


@pytest.mark.parametrize("region", ["US", "GB", "DE", "BR", "IN"])
def test_known_spellings_normalise_as_phonenumbers_does(region):
    wrong = [(raw, normalise_number(raw, region), reference(raw, region)) for raw in SPELLINGS
             if normalise_number(raw, region) != reference(raw, region)]
    assert not wrong
    assert normalise_number("(212) 456-7890", "US") == NY


def _example_numbers():
    """National and international spellings of valid numbers of a few regions."""
    formats = [phonenumbers.PhoneNumberFormat.NATIONAL,
               phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164]
    spelled = []
    for region in ("US", "GB", "DE", "FR", "BR", "IN", "AU", "JP"):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                spelled += [phonenumbers.format_number(example, f) for f in formats]
    return spelled


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(raw=st.one_of(st.sampled_from(_example_numbers()),
                     st.from_regex(r"[+]?[0-9 ().-]{0,18}", fullmatch=True),
                     st.text(max_size=24)),
       region=st.sampled_from(["US", "GB", "DE", "BR", "IN", "JP"]))
def test_generated_cells_normalise_as_phonenumbers_does(raw, region):
    assert normalise_number(raw, region) == reference(raw, region)


# --- the file -------------------------------------------------------------------------------


def test_rows_are_read_reported_and_counted():
    data = (b"name,phone_number,notes\n"
            b"Ann,+12124567890,a\n"          # 1 taken
            b"Bob,(212) 456-7891,\n"         # 2 taken (national)
            b"Cy,not a number,\n"            # 3 invalid_number
            b"Di,212.456.7890,\n"            # 4 duplicate of 1
            b"\n"                            # 5 empty (a row follows)
            b"Ed,,x\n"                       # 6 empty phone_number
            b"Fy,+14155552671,x,extra\n"     # 7 column_count
            b",,\n"                          # 8 blank
            b"Gus,+442079460018\n"           # 9 taken (short row: fine)
            b"\n\n")                         # trailing blank lines: not rows
    upload = read(data)
    assert list(upload.numbers) == ["+12124567890", "+12124567891", "+442079460018"]
    assert [(r.row, r.reason) for r in upload.rejected] == [
        (3, "invalid_number"), (4, "duplicate"), (5, "empty"), (6, "empty"),
        (7, "column_count"), (8, "empty")]
    messages = {r.row: r.message for r in upload.rejected}
    assert messages[3] == "Row 3: 'not a number' is not a valid phone number (read as a US number)."
    assert messages[4] == "Row 4: +12124567890 is a duplicate of row 1."
    assert messages[6] == "Row 6 has an empty phone_number."
    assert messages[7] == "Row 7 has 4 cells but the header has 3 columns."
    assert upload.rejected_counts == {"empty": 3, "invalid_number": 1, "duplicate": 1,
                                      "column_count": 1}
    assert upload.rows_rejected == 6 and upload.delimiter == ","


@pytest.mark.parametrize(("data", "delimiter"), [
    (b"phone_number;name\n+12124567890;a\n\"(212) 456-7891\";\"b;c\"\n", ";"),
    (b"name\tphone_number\na\t+12124567890\nb\t212 456 7891\n", "\t"),
    (b"\xef\xbb\xbfphone_number\r\n+12124567890\r\n212-456-7891\r\n", ","),
])
def test_delimiters_quotes_bom_and_crlf(data, delimiter):
    upload = read(data)
    assert list(upload.numbers) == ["+12124567890", "+12124567891"]
    assert upload.delimiter == delimiter and upload.rows_rejected == 0


@pytest.mark.parametrize(("data", "words"), [
    (b"", "The file is empty"),
    (b"phone_number\n", "no data rows"),
    (b"phone_number\n\n\n", "no data rows"),
    (b"name,Phone_Number\na,+12124567890\n", "no phone_number column (column names are "
                                             "case-sensitive); found columns: 'name', "
                                             "'Phone_Number'."),
    (b"phone_number,phone_number\n+12124567890,+12124567891\n", "more than one phone_number"),
    (b"phone_number\nabc\n\n+1\n", "The file has no valid rows: all 3 data rows were "
                                   "rejected (2 invalid_number, 1 empty)."),
    (b"phone_number\n+12124567890\nZo\xe9\n", "not UTF-8 text (invalid byte at offset 28, "
                                               "line 3)"),
    (b"phone_number\n+1212\x00\n", "NUL"),
    (b"phone_number\n\"+12124567890\n", "quote is probably left unclosed"),
    (b"phone_number\n" + b"1" * (MAX_LINE_CHARS + 5) + b"\n", "Line 2 of the file is longer"),
    (b"phone_number," + b",".join(b"c%d" % i for i in range(1000)) + b"\n1\n",
     "The header has 1,001 columns"),
])
def test_an_unusable_file_says_why(data, words):
    assert words in file_error(data)


def test_other_columns_may_repeat_or_be_unnamed():
    # The import refuses these headers (its columns become custom fields); here they are
    # ignored.
    upload = read(b"x,phone_number,x,\n1,+12124567890,2,3\n")
    assert list(upload.numbers) == [NY]


def test_the_first_1000_rejections_are_listed_and_every_one_counted():
    lines = ["phone_number,a"]
    for _ in range(3000):
        lines += ["", "bogus,x", f"{NY},x", "", f"{NY},x,extra", ",,"]
    lines.append("+14155552671,x")
    data = ("\n".join(lines) + "\n").encode()
    upload = read(data)
    assert list(upload.numbers) == [NY, "+14155552671"]
    assert upload.rejected_counts == {"empty": 9000, "invalid_number": 3000,
                                      "duplicate": 2999, "column_count": 3000}
    assert upload.rows_rejected == 17_999
    assert len(upload.rejected) == MAX_LISTED_REJECTIONS
    assert upload.rejected == read(data, max_listed=10**9).rejected[:MAX_LISTED_REJECTIONS]


def test_numbers_come_in_ascending_digits_and_are_text_on_access():
    upload = read(b"phone_number\n+8613800138000\n+912345678901\n+12124567890\n")
    assert upload.numbers[0] == NY and upload.numbers[1:] == ["+912345678901",
                                                               "+8613800138000"]
    assert len(upload.numbers) == 3


def test_a_bad_region_is_the_callers_error():
    with pytest.raises(ValueError, match="default_region"):
        read_numbers(io.BytesIO(b"phone_number\n1\n"), default_region="XX")


# --- the same as the campaign import --------------------------------------------------------


def _cell():
    return st.one_of(st.sampled_from(["", " ", NY, "+14155552671", "(212) 456-7890", "bogus",
                                      "212.456.7891", "+442079460018", "x" * 50]),
                     st.text(alphabet=' ,;\t"\r\nab1+', max_size=8))


@st.composite
def csv_files(draw) -> bytes:
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    header = draw(st.permutations(["phone_number"] + [f"c{i}" for i in
                                                      range(draw(st.integers(0, 3)))]))
    lines = [delimiter.join(header)]
    for _ in range(draw(st.integers(0, 30))):
        cells = draw(st.lists(_cell(), max_size=len(header) + 2))
        if draw(st.booleans()):
            cells = ['"' + cell.replace('"', '""') + '"' for cell in cells]
        lines.append(delimiter.join(cells))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    data = (ending.join(lines) + ending * draw(st.integers(0, 2))).encode()
    if draw(st.integers(0, 4)) == 0:  # now and then, any bytes
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=6)) + data[at + draw(st.integers(0, 3)):]
    return data


def _imported(data: bytes):
    """The campaign import of the same file: (numbers in file order, (row, reason) of each
    rejection, counts) or the file error."""
    try:
        parsed = parse_contacts(io.BytesIO(data), campaign_id=CAMPAIGN, default_region="US")
    except ContactsFileError as exc:
        return exc.message
    with parsed.copy_data:
        rows = decode(parsed.copy_data.read(), parsed.columns)
    return ([row[3] for row in rows], [(r.row, r.reason) for r in parsed.rejected],
            parsed.rejected_counts)


@settings(max_examples=300, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(csv_files(), st.binary(max_size=200)))
def test_a_file_reads_as_the_campaign_import_reads_it(data):
    imported = _imported(data)
    try:
        upload = read(data)
    except DncFileError as exc:
        assert isinstance(imported, str), (exc.message, imported)
        return
    if isinstance(imported, str):
        # Only the names of the other columns, which this reader ignores, may differ.
        assert "header name" in imported or "empty name" in imported, imported
        return
    numbers, rejected, counts = imported
    assert sorted(upload.numbers, key=lambda n: int(n[1:])) == list(upload.numbers)
    assert set(upload.numbers) == set(numbers) and len(upload.numbers) == len(numbers)
    assert [(r.row, r.reason) for r in upload.rejected] == rejected
    assert upload.rejected_counts == {reason: counts[reason] for reason in REASONS}


# --- bounded whatever the file --------------------------------------------------------------


@st.composite
def pathological(draw) -> bytes:
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    lines = [delimiter.join(["phone_number"] + [f"c{i}" for i in range(draw(st.integers(0, 8)))])]
    shape = draw(st.sampled_from(["blank", "commas", "wide", "dups", "distinct", "long"]))
    for i in range(draw(st.integers(0, 400))):
        if shape == "blank":
            lines.append("")
        elif shape == "commas":
            lines.append(delimiter * draw(st.integers(1, 30)))
        elif shape == "wide":
            lines.append(delimiter.join([NY] + ["v"] * draw(st.integers(0, 60))))
        elif shape == "dups":
            lines.append(NY)
        elif shape == "distinct":
            lines.append(f"+1212{2000000 + i}")
        else:
            lines.append(NY + delimiter + "z" * draw(st.integers(0, 5000)))
    lines.append("+14155552671")
    return ("\n".join(lines) + "\n").encode()


@settings(max_examples=100, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=pathological())
def test_generated_pathological_files_are_bounded_and_counted_exactly(data):
    tracemalloc.start()
    try:
        upload = read(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * len(data) + FIXED_BYTES
    full = read(data, max_listed=10**9)
    assert upload.rejected == full.rejected[:MAX_LISTED_REJECTIONS]
    assert upload.rejected_counts == {reason: sum(r.reason == reason for r in full.rejected)
                                      for reason in REASONS}


_RSS_PROBE = textwrap.dedent("""
    import io, json, sys
    from gateway import phone_fast, phone_national
    from gateway.dnc_csv import DncFileError, read_numbers
    phone_fast.prepare("US"); phone_national.prepare("US")

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    MB = 5 << 20
    files = {
        "blank lines": lambda: b"phone_number\\n" + b"\\n" * MB + b"+12124567890\\n",
        "every row rejected": lambda: b"phone_number\\n" + b"55555\\n" * (MB // 6),
        "distinct numbers": lambda: b"phone_number\\n" + b"".join(
            b"+1212%07d\\n" % (2000000 + i) for i in range(MB // 13)),
        "national numbers": lambda: b"phone_number\\n" + b"".join(
            b"(212) %03d-%04d\\n" % (200 + i // 10000, i % 10000) for i in range(MB // 15)),
    }
    data = files[sys.argv[1]]()
    before = status("VmRSS:")
    open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM to the current RSS
    error, numbers = None, 0
    try:
        numbers = len(read_numbers(io.BytesIO(data), default_region="US").numbers)
    except DncFileError as exc:
        error = exc.message
    print(json.dumps({"size": len(data), "rise": status("VmHWM:") - before, "error": error,
                      "numbers": numbers}))
""")


@pytest.mark.parametrize("name", ["blank lines", "every row rejected", "distinct numbers",
                                  "national numbers"])
def test_peak_rss_of_a_5_mb_file_stays_within_10x(name):
    done = subprocess.run([sys.executable, "-c", _RSS_PROBE, name], capture_output=True,
                          text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    print(name, result)
    assert result["rise"] < 10 * result["size"], result
    if name == "every row rejected":
        assert result["error"].startswith("The file has no valid rows: all 873813 data rows")
    else:
        assert result["error"] is None and result["numbers"] >= 1, result
