"""Calling windows: the days and hours a contact may be called, in the contact's local time.

A window is ``{"days": ["mon", ...], "start": "HH:MM", "end": "HH:MM"}``: open on those
days from ``start`` (inclusive) to ``end`` (exclusive; ``"24:00"`` is the end of the day),
in each zone of a contact. A contact whose number spans several zones is inside its
window only while the window is open in all of them.

The database decides who may be dialed (``window_open`` and ``window_next_open`` in
migration 0008, evaluated inside the claim with PostgreSQL's zone rules); this module is
the same definition in Python, for the HTTP edge (parsing, the canonical JSON) and for
tests that check the two agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from gateway.vocabulary import WEEKDAYS

__all__ = ["CallingWindow", "WindowError"]

_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
END_OF_DAY = 24 * 60
# How many jumps window_next_open makes before it gives up (the SQL function's bound).
_MAX_JUMPS = 64


class WindowError(ValueError):
    """A window that cannot be used; ``field`` is the part at fault (``""``, ``"days"``,
    ``"start"``, ``"end"``) and ``message`` reads well after it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def _minutes(value: Any, field: str, *, end: bool) -> int:
    if not isinstance(value, str):
        raise WindowError(field, 'must be a time as "HH:MM" text, such as "09:00"')
    if end and value == "24:00":
        return END_OF_DAY
    match = _HHMM.fullmatch(value)
    if match is None:
        allowed = '"00:00" to "23:59"' + (' or "24:00"' if end else "")
        raise WindowError(field, f'must be a time as "HH:MM", {allowed} (got {value[:20]!r})')
    return int(match[1]) * 60 + int(match[2])


@attrs.frozen
class CallingWindow:
    """Open on ``days`` (ISO weekday numbers, 1 = Monday) from ``start`` to ``end``
    minutes after local midnight."""

    days: frozenset[int]
    start: int
    end: int

    @classmethod
    def parse(cls, value: Any) -> CallingWindow:
        """The window a JSON value describes, or :class:`WindowError` naming the part."""
        if not isinstance(value, Mapping):
            raise WindowError("", 'must be an object such as {"days": ["mon", "tue", "wed", '
                                  '"thu", "fri"], "start": "09:00", "end": "20:00"}')
        unknown = sorted(set(value) - {"days", "start", "end"})
        if unknown:
            raise WindowError(str(unknown[0])[:40], "is not a field of a calling window "
                              "(its fields are days, start and end)")
        for name in ("days", "start", "end"):
            if name not in value:
                raise WindowError(name, "is required")
        days = value["days"]
        if not isinstance(days, list) or not days:
            raise WindowError("days", f"must be a non-empty list of {', '.join(WEEKDAYS)}")
        numbers: set[int] = set()
        for day in days:
            if not isinstance(day, str) or day not in WEEKDAYS:
                shown = repr(day)[:20]
                raise WindowError("days", f"{shown} is not a day; days are "
                                          f"{', '.join(WEEKDAYS)}")
            number = WEEKDAYS.index(day) + 1
            if number in numbers:
                raise WindowError("days", f"{day!r} is listed twice")
            numbers.add(number)
        start = _minutes(value["start"], "start", end=False)
        end = _minutes(value["end"], "end", end=True)
        if end <= start:
            raise WindowError("end", f"must be after start ({value['start']}): a window "
                              "does not run past midnight")
        return cls(frozenset(numbers), start, end)

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON: days in week order, times as HH:MM."""
        return {"days": [WEEKDAYS[day - 1] for day in sorted(self.days)],
                "start": _hhmm(self.start), "end": _hhmm(self.end)}

    def is_open_in(self, zone: str, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(zone))
        # [start, end): both are whole minutes, so comparing the minute of day is exact.
        minute = local.hour * 60 + local.minute
        return local.isoweekday() in self.days and self.start <= minute < self.end

    def is_open(self, zones: Iterable[str], at: datetime) -> bool:
        """Open at ``at`` in every zone of ``zones``."""
        return all(self.is_open_in(zone, at) for zone in zones)

    def next_open_in(self, zone: str, at: datetime) -> datetime | None:
        """The first instant at or after ``at`` at which the window is open in ``zone``."""
        tz = ZoneInfo(zone)
        local = at.astimezone(tz).replace(tzinfo=None)
        day = local.date()
        for _ in range(8):
            if day.isoweekday() in self.days:
                opens = _at(day, self.start)
                closes = _at(day, self.end)
                if local < closes:
                    if local >= opens:
                        return at
                    return _from_local(opens, tz)
            day += timedelta(days=1)
        return None

    def next_open(self, zones: Iterable[str], at: datetime) -> datetime | None:
        """The first instant at or after ``at`` at which the window is open in every zone
        of ``zones``; None when they share no open time within a few weeks."""
        names = list(zones)
        candidate = at
        for _ in range(_MAX_JUMPS):
            nexts = [self.next_open_in(zone, candidate) for zone in names]
            if any(found is None for found in nexts):
                return None
            latest = max((found for found in nexts if found is not None), default=candidate)
            if latest == candidate:
                return candidate
            candidate = latest
        return None


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _at(day: date, minutes: int) -> datetime:
    return datetime.combine(day, time()) + timedelta(minutes=minutes)


def _from_local(local: datetime, tz: ZoneInfo) -> datetime:
    """The instant of wall time ``local`` in ``tz``, as PostgreSQL's ``timestamp AT TIME
    ZONE`` reads it: a time that happens twice (the hour repeated when clocks go back) is
    the second one, a time that never happens (skipped when clocks go forward) is read with
    the offset from before the change."""
    first, second = local.replace(tzinfo=tz, fold=0), local.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        repeated = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == local
        if repeated:
            return second.astimezone(UTC)
    return first.astimezone(UTC)
