"""Calling windows: the Python model (gateway.windows) parses what the API takes, and
agrees with the SQL functions the claim runs (window_open, window_next_open) on generated
windows, zones and instants, DST changes and zones that share no hours included."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.vocabulary import WEEKDAYS
from gateway.windows import CallingWindow, WindowError

# Fixed offsets, DST in either hemisphere, a half-hour offset and a 30-minute DST shift,
# a zone across the date line, and UTC.
ZONES = ["UTC", "America/New_York", "America/Los_Angeles", "America/Phoenix",
         "Europe/London", "Europe/Berlin", "Australia/Sydney", "Australia/Lord_Howe",
         "Asia/Kolkata", "Asia/Tokyo", "Pacific/Auckland", "Pacific/Kiritimati",
         "America/St_Johns", "Etc/GMT+5"]
# Instants near the 2026 DST changes of those zones, and anywhere else in two years.
DST_CHANGES = [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
               datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC),
               datetime(2026, 4, 4, 16, tzinfo=UTC), datetime(2026, 10, 3, 16, tzinfo=UTC)]
EXAMPLES = 300


def minutes_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def windows(draw) -> dict:
    days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True))
    start = draw(st.integers(0, 24 * 60 - 1))
    end = draw(st.integers(start + 1, 24 * 60))
    return {"days": days, "start": minutes_text(start), "end": minutes_text(end)}


@st.composite
def instants(draw) -> datetime:
    if draw(st.booleans()):
        near = draw(st.sampled_from(DST_CHANGES))
        return near + timedelta(seconds=draw(st.integers(-4 * 3600, 4 * 3600)))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return start + timedelta(seconds=draw(st.integers(0, 2 * 365 * 86400)),
                             microseconds=draw(st.integers(0, 999_999)))


def test_parse_gives_the_canonical_json():
    window = CallingWindow.parse({"days": ["fri", "mon"], "start": "09:00", "end": "24:00"})
    assert window.to_json() == {"days": ["mon", "fri"], "start": "09:00", "end": "24:00"}
    assert CallingWindow.parse(window.to_json()) == window


@pytest.mark.parametrize(("value", "field", "says"), [
    ([], "", "must be an object"),
    ({"days": ["mon"], "start": "09:00"}, "end", "is required"),
    ({"days": [], "start": "09:00", "end": "10:00"}, "days", "non-empty"),
    ({"days": "mon", "start": "09:00", "end": "10:00"}, "days", "non-empty list"),
    ({"days": ["monday"], "start": "09:00", "end": "10:00"}, "days", "is not a day"),
    ({"days": ["mon", "mon"], "start": "09:00", "end": "10:00"}, "days", "listed twice"),
    ({"days": ["mon"], "start": "9:00", "end": "10:00"}, "start", '"HH:MM"'),
    ({"days": ["mon"], "start": "24:00", "end": "10:00"}, "start", '"23:59"'),
    ({"days": ["mon"], "start": 900, "end": "10:00"}, "start", "text"),
    ({"days": ["mon"], "start": "10:00", "end": "10:00"}, "end", "after start"),
    ({"days": ["mon"], "start": "20:00", "end": "08:00"}, "end", "past midnight"),
    ({"days": ["mon"], "start": "09:00", "end": "24:01"}, "end", '"24:00"'),
    ({"days": ["mon"], "start": "09:00", "end": "10:00", "zone": "UTC"}, "zone",
     "not a field"),
])
def test_parse_names_what_is_wrong(value, field, says):
    with pytest.raises(WindowError) as caught:
        CallingWindow.parse(value)
    assert caught.value.field == field
    assert says in caught.value.message


def test_open_in_every_zone_of_a_number_that_spans_several():
    window = CallingWindow.parse({"days": list(WEEKDAYS), "start": "09:00", "end": "20:00"})
    at = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)  # 10:30 in New York, 07:30 in LA
    assert window.is_open(["America/New_York"], at)
    assert not window.is_open(["America/New_York", "America/Los_Angeles"], at)
    assert window.next_open(["America/New_York", "America/Los_Angeles"], at) == \
        datetime(2026, 12, 2, 17, tzinfo=UTC)  # 09:00 in LA
    # New York and Tokyo share 19:00-20:00 New York time (09:00-10:00 Tokyo, next day).
    assert window.next_open(["America/New_York", "Asia/Tokyo"], at) == \
        datetime(2026, 12, 3, 0, tzinfo=UTC)
    # 09:00-12:00 in zones twelve hours apart never meet.
    morning = CallingWindow.parse({"days": list(WEEKDAYS), "start": "09:00", "end": "12:00"})
    assert morning.next_open(["America/New_York", "Asia/Shanghai"], at) is None


async def test_python_and_the_database_agree(db):
    """On generated windows, zone sets and instants (many near DST changes), the Python
    model and the SQL functions the claim uses give the same open/closed answer and the
    same next opening."""
    await _agree(db, EXAMPLES)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_python_and_the_database_agree_long(db):
    await _agree(db, 5000)


async def _agree(db, examples: int) -> None:
    cases: list[tuple[dict, list[str], datetime]] = []

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(window=windows(), zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3,
                                            unique=True), at=instants())
    def collect(window, zones, at):
        cases.append((window, zones, at))

    collect()
    rows = await db.fetch("testing.windows_evaluate",
                          [json.dumps(window) for window, _, _ in cases],
                          [",".join(zones) for _, zones, _ in cases],
                          [at for _, _, at in cases])
    assert len(rows) == len(cases)
    opened = 0
    for (window_json, zones, at), row in zip(cases, rows, strict=True):
        window = CallingWindow.parse(window_json)
        where = (window_json, zones, at.isoformat())
        assert window.is_open(zones, at) == row["open"], where
        assert window.next_open(zones, at) == row["next_open"], (where, row["next_open"])
        opened += row["open"]
    # The generator reaches both answers.
    assert 0 < opened < len(cases)
