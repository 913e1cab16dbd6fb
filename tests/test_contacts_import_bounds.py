"""The CSV import is bounded whatever the file: the report lists at most the first 1,000
rejected rows and counts all of them exactly; memory stays within 10x the file; huge lines,
cells and headers are a clear file error naming where.

Memory is measured two ways: tracemalloc around the parse for generated small files (the
bound is 10x the file plus a fixed 1 MB: a worker's buffers, the header's keys, the
listed rejections), and the peak RSS of a fresh interpreter for 5 MB pathological files
(tracemalloc makes a per-row loop tens of times slower).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.contacts_csv import (
    MAX_COLUMNS,
    MAX_LISTED_REJECTIONS,
    REJECTION_REASONS,
    ContactsFileError,
    ContactsImport,
)
from gateway.contacts_lines import MAX_LINE_CHARS

CAMPAIGN = "3f2b8c1e-7d4a-4e5b-9c6d-0a1b2c3d4e5f"
NY = "+12124567890"
FIXED_BYTES = 1 << 20


def run(data: bytes, **kwargs) -> tuple[ContactsImport, int, str | None]:
    """Parse `data`; (the import, payload bytes, file error message or None)."""
    contacts = ContactsImport(io.BytesIO(data), campaign_id=CAMPAIGN, default_region="US",
                              **kwargs)
    size = 0
    try:
        for chunk in contacts.chunks():
            size += len(chunk)
    except ContactsFileError as exc:
        return contacts, size, exc.message
    return contacts, size, None


def check_report(contacts: ContactsImport, error: str | None) -> None:
    counts = contacts.rejected_counts
    assert list(counts) == list(REJECTION_REASONS)
    assert sum(counts.values()) == contacts.rows_rejected
    assert len(contacts.rejected) == min(contacts.rows_rejected, MAX_LISTED_REJECTIONS)
    assert contacts.rejected_truncated == (contacts.rows_rejected > MAX_LISTED_REJECTIONS)
    rows = [r.row for r in contacts.rejected]
    assert rows == sorted(rows) and len(set(rows)) == len(rows)
    if error is None:
        assert contacts.accepted >= 1


# --- the report -----------------------------------------------------------------------------


def test_report_lists_the_first_1000_and_counts_every_reason_exactly():
    lines = ["phone_number,a"]
    for _ in range(3000):
        lines += ["", "bogus,x", f"{NY},x", "", f"{NY},x,extra", ",,"]
    lines.append("+14155552671,x")
    contacts, _, error = run(("\n".join(lines) + "\n").encode())
    assert error is None
    assert contacts.accepted == 2
    assert contacts.rejected_counts == {"empty": 9000, "invalid_number": 3000,
                                        "duplicate": 2999, "column_count": 3000,
                                        "do_not_call": 0, "invalid_timezone": 0}
    assert contacts.rows_rejected == 17_999 and contacts.rejected_truncated
    full, _, _ = run(("\n".join(lines) + "\n").encode(), max_listed=10**9)
    assert contacts.rejected == full.rejected[:MAX_LISTED_REJECTIONS]
    assert full.rejected_counts == contacts.rejected_counts
    check_report(contacts, error)


def test_not_truncated_when_everything_is_listed():
    contacts, _, error = run(f"phone_number\n{NY}\nbogus\n{NY}\n".encode())
    assert error is None and not contacts.rejected_truncated
    assert contacts.rejected_counts == {"empty": 0, "invalid_number": 1, "duplicate": 1,
                                        "column_count": 0, "do_not_call": 0,
                                        "invalid_timezone": 0}


def test_no_valid_rows_message_counts_every_row_even_past_the_list():
    data = ("phone_number\n" + "bogus\n" * 2500 + "\n" * 1500 + f"{NY}x,1\n").encode()
    _, _, error = run(data)
    assert error == ("The file has no valid rows: all 4001 data rows were rejected "
                     "(2500 invalid_number, 1500 empty, 1 column_count).")


# --- bounds on lines, cells, the header ----------------------------------------------------


@pytest.mark.parametrize("quoted", [False, True])
def test_a_huge_line_is_a_file_error_naming_its_line(quoted):
    cell = b"x" * (MAX_LINE_CHARS + 10)
    if quoted:
        cell = b'"' + cell + b'"'
    _, _, error = run(b"phone_number,notes\n" + f"{NY},a\n".encode() + NY.encode() + b","
                      + cell + b"\n")
    assert error and "Line 3 of the file is longer than" in error


@pytest.mark.parametrize("quoted", [False, True])
def test_a_cell_past_the_csv_field_limit_is_a_file_error_naming_its_row(quoted):
    cell = b"x" * 200_000
    if quoted:
        cell = b'"' + cell + b'"'
    _, _, error = run(b"phone_number,notes\n" + f"{NY},a\n".encode() + NY.encode() + b","
                      + cell + b"\n")
    assert error and "a cell is longer than 131,072 characters" in error and "data row 2" in error


def test_a_header_past_the_column_limit_is_a_file_error():
    header = ",".join(["phone_number"] + [f"c{i}" for i in range(MAX_COLUMNS)])
    _, _, error = run(f"{header}\n{NY}\n".encode())
    assert error == (f"The header has {MAX_COLUMNS + 1:,} columns (split on commas); at most "
                     f"{MAX_COLUMNS:,} are supported.")


def test_the_widest_header_allowed_is_imported_in_bounded_chunks():
    header = ",".join(["phone_number"] + [f"column number {i}" for i in range(MAX_COLUMNS - 1)])
    rows = [f"+1212{2000000 + i}" + ",v" * (MAX_COLUMNS - 1) for i in range(300)]
    data = (header + "\n" + "\n".join(rows) + "\n").encode()
    contacts = ContactsImport(io.BytesIO(data), campaign_id=CAMPAIGN, default_region="US")
    sizes = [len(chunk) for chunk in contacts.chunks()]
    assert contacts.accepted == 300 and len(contacts.columns) == MAX_COLUMNS - 1
    assert sum(sizes) > 1.5 * len(data)  # every value is quoted in its JSON array
    assert len(sizes) > 1 and max(sizes) < 2 << 20  # cut by size, not only every 5,000 rows


# --- generated pathological files -----------------------------------------------------------


def _cell():
    return st.one_of(st.sampled_from(["", " ", NY, "+14155552671", "(212) 456-7890", "bogus",
                                      "212.456.7891", "x" * 50]),
                     st.text(alphabet=' ,;\t"\r\nab1+', max_size=8))


@st.composite
def pathological(draw) -> bytes:
    columns = draw(st.integers(1, 12))
    header = ["phone_number"] + [f"c{i}" for i in range(columns - 1)]
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    lines = [delimiter.join(header)]
    shape = draw(st.sampled_from(["blank", "commas", "wide", "dups", "mixed", "long"]))
    count = draw(st.integers(0, 400))
    for _ in range(count):
        if shape == "blank":
            lines.append("")
        elif shape == "commas":
            lines.append(delimiter * draw(st.integers(1, 30)))
        elif shape == "wide":
            lines.append(delimiter.join([NY] + ["v"] * draw(st.integers(0, 60))))
        elif shape == "dups":
            lines.append(NY)
        elif shape == "long":
            lines.append(NY + delimiter + "z" * draw(st.integers(0, 5000)))
        else:
            lines.append(delimiter.join(draw(st.lists(_cell(), min_size=0, max_size=columns + 2))))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    return (ending.join(lines) + ending * draw(st.integers(0, 3))).encode()


@settings(max_examples=150, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=pathological())
def test_generated_pathological_files_are_bounded_and_reported_exactly(data):
    tracemalloc.start()
    try:
        contacts, _, error = run(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * len(data) + FIXED_BYTES
    check_report(contacts, error)
    if error is None:
        # The counts are those of a report that keeps every row.
        full, _, _ = run(data, max_listed=10**9)
        assert contacts.rejected == full.rejected[:MAX_LISTED_REJECTIONS]
        for reason in REJECTION_REASONS:
            assert contacts.rejected_counts[reason] == sum(r.reason == reason
                                                           for r in full.rejected)


# --- 5 MB files in a fresh interpreter: peak RSS -------------------------------------------

_RSS_PROBE = textwrap.dedent("""
    import io, json, sys
    from gateway import phone_fast, phone_national
    from gateway.contacts_csv import ContactsImport, ContactsFileError
    phone_fast.prepare("US"); phone_national.prepare("US")

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    MB = 5 << 20
    files = {  # built lazily: memory freed before the probe would hide its rise
        "blank lines": lambda: b"phone_number\\n" + b"\\n" * MB + b"+12124567890\\n",
        "blank comma rows": lambda: (b"phone_number,a,b\\n" + b",,,\\n" * (MB // 4)
                                     + b"+12124567890,,\\n"),
        "every row rejected": lambda: b"phone_number\\n" + b"55555\\n" * (MB // 6),
        "duplicates": lambda: b"phone_number\\n" + b"+12124567890\\n" * (MB // 13),
        "distinct numbers": lambda: b"phone_number\\n" + b"".join(
            b"+1212%07d\\n" % (2000000 + i) for i in range(MB // 13)),
        "long lines": lambda: (b"phone_number\\n" + (b"," * ((1 << 18) - 10) + b"\\n") * 20
                               + b"+12124567890\\n"),
        "wide rows": lambda: (
            (",".join(["phone_number"] + ["c%d" % i for i in range(999)]) + "\\n").encode()
            + b"".join(b"+1212%07d" % (2000000 + i) + b",v" * 999 + b"\\n"
                       for i in range(MB // 2000))),
    }
    name = sys.argv[1]
    data = files[name]()
    source = io.BytesIO(data)
    before = status("VmRSS:")
    open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM to the current RSS
    contacts = ContactsImport(source, campaign_id="3f2b8c1e-7d4a-4e5b-9c6d-0a1b2c3d4e5f",
                              default_region="US")
    error = None
    try:
        for chunk in contacts.chunks():
            pass
    except ContactsFileError as exc:
        error = exc.message
    print(json.dumps({"size": len(data), "rise": status("VmHWM:") - before, "error": error,
                      "accepted": contacts.accepted, "rejected": contacts.rows_rejected}))
""")


@pytest.mark.parametrize("name", [
    "blank lines", "every row rejected", "distinct numbers", "long lines", "wide rows",
    pytest.param("blank comma rows", marks=pytest.mark.slow),
    pytest.param("duplicates", marks=pytest.mark.slow)])
def test_peak_rss_of_a_5_mb_pathological_file_stays_within_10x(name):
    done = subprocess.run([sys.executable, "-c", _RSS_PROBE, name], capture_output=True,
                          text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    print(name, result)
    assert result["rise"] < 10 * result["size"], result
    if name == "every row rejected":
        assert result["error"].startswith("The file has no valid rows: all 873813 data rows")
    else:
        assert result["error"] is None and result["accepted"] >= 1, result
