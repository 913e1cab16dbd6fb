"""Each contact's time zones, found from its number as phonenumbers finds them, cheaply.

The answer for a valid E.164 number is ``phonenumbers.timezone.time_zones_for_number(
phonenumbers.parse(e164))``, its "Etc/Unknown" replaced by the zones of the number's
country and, if those are unknown too, ``("UTC",)``; as a sorted tuple (`reference_zones`).
phonenumbers parses the number again, finds its type (a dozen regexes, and for +1 the
choice among 25 regions) and looks its digits up in its prefix table, ~23 µs a number:
over two seconds of a 100k-row import. Yet the answer is mostly the prefix table's
(``TIMEZONE_DATA``, longest prefix first), which needs only the first few digits:
numbers whose type is not geographical (UK mobiles, toll-free, a Jamaican mobile...)
get their country's zones instead, and the type needs the regexes.

So `prefix_zones` answers for a prefix of a number, once for all the numbers that share
it, exactly: the answer of every valid number starting with that prefix, or None when
they may differ. It replays the number type and the region choice of phonenumbers on the
prefix, each metadata pattern run as an automaton over digits
(:mod:`gateway.digit_patterns`): after the prefix, a pattern can still match some
completion of each length, or every one, or none. The result is sure when the type's
class (geographical or not) is the same for every completion that is valid, or when both
classes give the same zones; the prefix table's part is sure when no longer table entry
starts with the prefix. It never guesses: when unsure it answers None and the caller
asks a longer prefix, then the number itself (`zones_for_number`). A number that starts
with a national prefix phonenumbers might strip when parsing is left to phonenumbers.

The first prefix worth asking is the calling code and `PREFIX_DIGITS` digits (the +1
area code): it decides most numbers. `zones_for_number` then asks longer ones for
numbers of the same length (Barbados and Jamaica tell fixed lines from mobiles by the
seventh digit; a few area codes span two zones), and at worst the number itself.
``tests/test_contacts_zones.py`` compares `zones_for_number` with `reference_zones` on
generated valid numbers of every region and type.
"""

from __future__ import annotations

import functools
import threading
import typing
import zoneinfo

import attrs
import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType
from phonenumbers.timezone import UNKNOWN_TIMEZONE, time_zones_for_number
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from gateway.digit_patterns import MATCHED, DigitPattern, State, Unsupported
from gateway.phone_fast import national_prefix_pattern

if typing.TYPE_CHECKING:
    from gateway.db import Database

__all__ = ["PREFIX_DIGITS", "UTC_ZONES", "country_zones", "deciding_prefix",
           "default_known_zones", "known_zones", "prefix_divisor", "prefix_length",
           "prefix_zones", "reference_zones", "zones_for_number"]

UTC_ZONES: tuple[str, ...] = ("UTC",)
_CALLING_CODES = frozenset(str(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
# The types phonenumbers tries before fixed line and mobile (_number_type_helper's order):
# none of them is geographical.
_SPECIAL_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
                  "pager", "uan", "voicemail")
_NEVER: tuple[str, ...] = ()  # no prefix decides: ask phonenumbers
_NO_NUMBER: tuple[str, ...] = ("",)  # no valid number starts so


def reference_zones(e164: str) -> tuple[str, ...]:
    """The zones of a valid E.164 number, by the definition (phonenumbers in full)."""
    number = phonenumbers.parse(e164)
    zones = tuple(time_zones_for_number(number))
    if zones == (UNKNOWN_TIMEZONE,):
        return country_zones(str(number.country_code))
    return tuple(sorted(zones))


@functools.cache
def _table_zones(entry: str) -> tuple[str, ...]:
    return tuple(sorted(TIMEZONE_DATA[entry]))


def _longer_entries() -> dict[str, tuple[str, ...] | None]:
    """For each start of a prefix table entry shorter than the entry: the zones of every
    entry that starts so (None: they differ)."""
    found: dict[str, tuple[str, ...] | None] = {}
    for key in TIMEZONE_DATA:
        zones = _table_zones(key)
        for n in range(1, len(key)):
            start = key[:n]
            found[start] = zones if found.get(start, zones) == zones else None
    return found


_LONGER = _longer_entries()


def _table_answer(digits: str, country: tuple[str, ...]) -> tuple[str, ...] | None:
    """The prefix table's zones for every number starting with ``digits`` (its longest
    entry that starts them; ``country`` when none does), None when longer entries give
    some of them other zones."""
    entry = next((digits[:n] for n in range(min(len(digits), TIMEZONE_LONGEST_PREFIX), 0, -1)
                  if digits[:n] in TIMEZONE_DATA), None)
    answer = country if entry is None else _table_zones(entry)
    if digits in _LONGER and _LONGER[digits] != answer:
        return None
    return answer


@functools.cache
def country_zones(cc: str) -> tuple[str, ...]:
    """The zones of calling code ``cc`` as a whole (what phonenumbers gives numbers of a
    type that is not geographical); UTC when it has none (+800 and the other codes of
    no country)."""
    zones = TIMEZONE_DATA.get(cc)
    return tuple(sorted(zones)) if zones else UTC_ZONES


def zones_for_number(e164: str) -> tuple[str, ...]:
    """`reference_zones`, from the shortest prefix that decides it when one does."""
    return deciding_prefix(e164)[0]


def deciding_prefix(e164: str) -> tuple[tuple[str, ...], int]:
    """The zones of a valid E.164 number and the length of the shortest prefix that
    decides them for the numbers of its length (+1 310 209 starts Los Angeles numbers
    and is a whole Canadian one): the calling code and `PREFIX_DIGITS` digits, or more;
    0 when none does (then they are `reference_zones`)."""
    start = prefix_length(_calling_code(e164))
    for end in range(start, len(e164) + 1):
        # The first asked as the import asks it; deeper ones without looking ahead: the
        # next is asked anyway.
        zones = _prefix_zones(e164[:end], len(e164), int(end == start))
        if zones is not None:
            return (zones, end) if zones else (reference_zones(e164), 0)
    return reference_zones(e164), 0


# The national digits that decide most numbers' zones: the area code of +1.
PREFIX_DIGITS = 3


def prefix_length(cc: str) -> int:
    """The length of the prefix worth asking `prefix_zones` first for numbers of calling
    code ``cc`` ("+", the code and `PREFIX_DIGITS` digits)."""
    return 1 + len(cc) + PREFIX_DIGITS


@functools.cache
def prefix_divisor(region: str) -> int:
    """``int(e164[1:]) // prefix_divisor(region)`` is the calling code and `PREFIX_DIGITS`
    digits for a number of the region of its usual length (its example fixed line's or
    mobile's, the longer), more digits for a longer number, fewer for a shorter one."""
    usual = [len(phonenumbers.national_significant_number(example))
             for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE)
             if (example := phonenumbers.example_number_for_type(region, kind)) is not None]
    cc = str(phonenumbers.country_code_for_region(region))
    return 10 ** max(0, max(usual or _country(cc).lengths or [0]) - PREFIX_DIGITS)


def prefix_zones(prefix: str, length: int | None = None) -> tuple[str, ...] | None:
    """The zones of every valid number that starts with ``prefix`` ("+" and digits) and
    has ``length`` characters (None: any length), or None when they are not all the same
    (or this can't tell, or ``prefix`` doesn't hold a whole calling code)."""
    try:
        return _prefix_zones(prefix, length, 1) or None
    except ValueError:  # no calling code: some numbers shorter than the usual ones
        return None


@functools.lru_cache(maxsize=1 << 15)
def _prefix_zones(prefix: str, length: int | None,
                  look_ahead: int) -> tuple[str, ...] | None:
    """`prefix_zones`, or ``()`` when no longer prefix would decide either; looking
    ``look_ahead`` digits further when unsure."""
    cc = _calling_code(prefix)
    return _country(cc).zones(prefix[1 + len(cc):],
                              None if length is None else length - 1 - len(cc), look_ahead)


def _calling_code(e164: str) -> str:
    for length in (2, 3, 4):
        if e164[1:length] in _CALLING_CODES:
            return e164[1:length]
    raise ValueError(f"{e164!r} does not start with + and a calling code")


# --- the zones known to PostgreSQL ----------------------------------------------------------

_known: frozenset[str] | None = None


async def known_zones(db: Database) -> frozenset[str]:
    """The zone names PostgreSQL knows (``pg_timezone_names``: a timezone cell must be one),
    read once per process (the view reads every zone file: ~30 ms)."""
    global _known
    if _known is None:
        _known = frozenset(await db.fetchval("campaigns.known_zones"))
    return _known


@functools.cache
def default_known_zones() -> frozenset[str]:
    """Python's zone names: the import's default when it is given none (tests, tools)."""
    return frozenset(zoneinfo.available_timezones())


@attrs.frozen
class _Desc:
    """A number description: its pattern's index in the country's patterns, and the
    national number lengths it allows (empty: any)."""

    pattern: int
    lengths: frozenset[int]


@attrs.frozen
class _Region:
    leading: int | None  # its leading digits' pattern (regions that share a calling code)
    general: _Desc
    lengths: frozenset[int]  # of the general description: the only ones valid
    specials: tuple[_Desc, ...]  # the non-geographical types, in phonenumbers' order
    fixed: _Desc | None
    mobile: _Desc | None  # None: the same pattern as fixed lines (only fixed is tried)


class _Country:
    """A calling code's metadata as phonenumbers uses it to find a valid number's type:
    the region first (the only one; else the first whose leading digits match, or whose
    patterns the number matches, in order), then the first type description it matches."""

    def __init__(self, cc: str) -> None:
        self.cc = cc
        self.country = country_zones(cc)
        self.geo_mobile = phonenumbers.is_number_type_geographical(PhoneNumberType.MOBILE,
                                                                    int(cc))
        self.patterns: list[DigitPattern] = []
        self._index: dict[tuple[str, bool], int] = {}
        self.regions: list[_Region] = []
        self._states: dict[str, dict[int, State]] = {}
        try:
            self.national_prefix = self._load()
            self.supported = True
        except Unsupported:
            self.supported = False
        self.lengths = sorted(set().union(*(r.lengths for r in self.regions)))

    def _pattern(self, text: str, *, prefix: bool = False) -> int:
        index = self._index.get((text, prefix))
        if index is None:
            self.patterns.append(DigitPattern(text, prefix=prefix))
            index = self._index[(text, prefix)] = len(self.patterns) - 1
        return index

    def _load(self) -> int | None:
        country_code = int(self.cc)
        codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[country_code]
        shared = len(codes) > 1
        for code in codes:
            metadata = (PhoneMetadata.metadata_for_region(code.upper(), None) if shared
                        else PhoneMetadata.metadata_for_region_or_calling_code(
                            country_code, code.upper()))
            if metadata is None:  # skipped by phonenumbers too
                continue

            def desc(name: str, metadata: PhoneMetadata = metadata) -> _Desc | None:
                found = getattr(metadata, name, None)
                if found is None or not found.national_number_pattern:
                    return None  # never matches (_match_national_number)
                return _Desc(self._pattern(found.national_number_pattern),
                             frozenset(found.possible_length))

            general = desc("general_desc")
            if general is None:
                continue  # no number is valid in it: never chosen, or chosen and invalid
            leading = (self._pattern(metadata.leading_digits, prefix=True)
                       if shared and metadata.leading_digits is not None else None)
            self.regions.append(_Region(
                leading=leading, general=general,
                lengths=general.lengths or frozenset(range(1, 18)),
                specials=tuple(d for name in _SPECIAL_TYPES if (d := desc(name))),
                fixed=desc("fixed_line"),
                mobile=None if metadata.same_mobile_and_fixed_line_pattern else desc("mobile")))
        prefix = national_prefix_pattern(self.cc)
        return None if prefix is None else self._pattern(prefix, prefix=True)

    def _after(self, national: str) -> dict[int, State]:
        """The state of every pattern that can still match after the digits ``national``,
        by index (most are out after a few digits: only the others are stepped)."""
        states = self._states.get(national)
        if states is None:
            if not national:
                states = {i: p.initial for i, p in enumerate(self.patterns) if p.initial}
            else:
                digit, patterns = int(national[-1]), self.patterns
                states = {i: after for i, state in self._after(national[:-1]).items()
                          if (after := patterns[i].step(state, digit))}
            if len(self._states) > 10_000:  # a bound (~10 MB), not a policy: it refills
                self._states.clear()
            self._states[national] = states
        return states

    def zones(self, national: str, length: int | None = None,
              look_ahead: int = 1) -> tuple[str, ...] | None:
        """The zones of every valid number of this calling code whose national number
        starts with ``national`` (and has ``length`` digits; None: any); None: they may
        differ, or phonenumbers may read such a number otherwise (a national prefix);
        ``_NEVER``: no longer prefix decides either."""
        if not self.supported or (national and not national.isdigit()):
            return _NEVER
        found = self._zones(national, length, look_ahead)
        return None if found is _NO_NUMBER else found

    def _zones(self, national: str, length: int | None,
               look_ahead: int) -> tuple[str, ...] | None:
        states = self._after(national)
        prefix = None if self.national_prefix is None else states.get(self.national_prefix)
        if prefix is MATCHED:
            return _NEVER  # parse may strip it: the number may not be what its digits say
        if prefix and length != len(national):
            return None  # it may still match (a whole number where it doesn't is fine)
        geographical: set[bool] = set()
        for size in self.lengths if length is None else (length,):
            if size >= len(national):
                for region in self._candidates(states, size - len(national), size):
                    geographical |= self._classes(region, states, size - len(national), size)
        if not geographical:
            return _NO_NUMBER
        if geographical == {False}:
            return self.country
        table = _table_answer(self.cc + national, self.country)  # None: longer entries differ
        if table is not None and (geographical == {True} or table == self.country):
            return table
        if not look_ahead or (length is not None and len(national) >= length):
            return None
        # The next digit may tell (+1 310: the table's entries are +1 310 2 to 9, all Los
        # Angeles; +1 310 0 and 1 start no valid number): the same for each that starts some.
        found = {self._zones(national + digit, length, look_ahead - 1)
                 for digit in "0123456789"} - {_NO_NUMBER}
        if length is None:  # any length: the prefix may be a whole number itself
            found = (found | {self._zones(national, len(national), 0)}) - {_NO_NUMBER}
        if not found:
            return _NO_NUMBER
        answer = found.pop()
        return answer if not found and answer else None

    def _possible(self, desc: _Desc | None, states: dict[int, State], rest: int,
                  length: int) -> bool:
        if desc is None or desc.pattern not in states:
            return False
        return (not desc.lengths or length in desc.lengths) \
            and self.patterns[desc.pattern].possible(states[desc.pattern], rest)

    def _certain(self, desc: _Desc | None, states: dict[int, State], rest: int,
                 length: int) -> bool:
        if desc is None or desc.pattern not in states:
            return False
        return (not desc.lengths or length in desc.lengths) \
            and self.patterns[desc.pattern].certain(states[desc.pattern], rest)

    def _valid(self, region: _Region, states: dict[int, State], rest: int, length: int,
               test: typing.Callable[..., bool]) -> bool:
        return test(region.general, states, rest, length) and any(
            test(desc, states, rest, length)
            for desc in (*region.specials, region.fixed, region.mobile))

    def _candidates(self, states: dict[int, State], rest: int,
                    length: int) -> list[_Region]:
        """The regions a valid completion (``rest`` more digits) may be numbered in."""
        if len(self.regions) == 1:
            return self.regions
        found = []
        for region in self.regions:
            if region.leading is not None:
                state = states.get(region.leading)
                if not state or (rest == 0 and state is not MATCHED):
                    continue  # its leading digits can no longer match
                if self._valid(region, states, rest, length, self._possible):
                    found.append(region)
                if state is MATCHED:
                    break  # every completion that gets this far is this region's
            elif self._valid(region, states, rest, length, self._possible):
                found.append(region)  # the completions valid in it
                if self._valid(region, states, rest, length, self._certain):
                    break
        return found

    def _classes(self, region: _Region, states: dict[int, State], rest: int,
                 length: int) -> set[bool]:
        """Whether the type of a completion valid in ``region`` may be geographical (True),
        or not (False): a superset of the truth, which is all it takes to be sure."""
        if not self._possible(region.general, states, rest, length):
            return set()
        if any(self._certain(d, states, rest, length) for d in region.specials):
            return {False}
        found = set()
        if any(self._possible(d, states, rest, length) for d in region.specials):
            found.add(False)
        if self._possible(region.fixed, states, rest, length):
            found.add(True)  # a fixed line, or fixed line or mobile
        if self._possible(region.mobile, states, rest, length):
            if self.geo_mobile:
                found.add(True)
            elif not self._certain(region.fixed, states, rest, length):
                found.add(False)  # a mobile only: not geographical here
        return found


_countries: dict[str, _Country] = {}
_build_lock = threading.Lock()


def _country(cc: str) -> _Country:
    found = _countries.get(cc)
    if found is None:
        with _build_lock:
            found = _countries.get(cc)
            if found is None:
                found = _countries[cc] = _Country(cc)
    return found
