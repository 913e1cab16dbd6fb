"""An exact, compiled fast path for ``phonenumbers.is_valid_number`` on plain E.164 strings.

``phonenumbers.is_valid_number(phonenumbers.parse(raw, None))`` costs ~10-15 µs a number:
the parser does a lot of general work, and validation re-runs up to eleven separate
``fullmatch`` calls (plus length checks) per candidate region. For a plain E.164 string
(``\\+[1-9][0-9]{6,14}``) almost all of that is redundant, so `e164_validity` replays the
same decision with precompiled data:

* The country calling code is split off exactly like ``phonenumberutil._extract_country_code``
  (the first of the 1-, 2- and 3-digit prefixes that is a known calling code).
* Numbers the full parser might treat differently are left undecided (None): a national
  number starting with "0" (leading-zero flags) or matching the country's
  ``national_prefix_for_parsing`` (which parse may strip). These are exactly the cases where
  `fast_parse` returns None. Otherwise parse would build
  ``PhoneNumber(country_code, int(national))``, whose E.164 form is ``raw`` itself.
* ``_number_type_helper(nsn, metadata) != UNKNOWN`` is compiled, per region and per national
  number length, into ONE regex: a lookahead for the general description's pattern followed
  by an alternation of the type descriptions (premium rate, toll free, shared cost, VoIP,
  personal number, pager, UAN, voicemail, fixed line and - unless the metadata says mobile
  and fixed line share a pattern - mobile) whose ``possible_length`` admits that length (an
  empty ``possible_length`` admits every length; a description without a pattern never
  matches). Lengths the general description rejects have no regex (invalid).
* The region is chosen like ``region_code_for_number`` / ``_region_code_for_number_from_list``
  (``leading_digits`` decides with ``re.match`` when present, otherwise full validation), and
  ``is_valid_number_for_region``'s metadata / calling-code consistency checks are
  precomputed per region.

Everything is built lazily, per calling code, on first use; importing the module is cheap.
``tests/test_phone_fast.py`` compares the result with phonenumbers on a few hundred thousand
numbers across every calling code.
"""

from __future__ import annotations

import functools
import re
import threading
import typing

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc, phonenumberutil

__all__ = ["e164_validity", "fast_parse", "nsn_validity", "prepare"]

_PLAIN_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_NON_GEO = "001"  # phonenumbers.phonemetadata.REGION_CODE_FOR_NON_GEO_ENTITY

# The calling codes as strings: '_extract_country_code' tries int(number[:i]) for i = 1..3;
# for a digit string without a leading zero that is the same as a lookup of number[:i].
_CALLING_CODES: frozenset[str] = frozenset(
    str(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)

# The order in which _number_type_helper tries the type descriptions; "mobile" is only
# tried when the metadata's mobile and fixed-line patterns differ.
_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
               "uan", "voicemail", "fixed_line")

# An entry per calling code (the key is its decimal string):
#   (national_prefix_match | None, mode, data)
# mode _SINGLE: data is the one region's {nsn length: fullmatch}
# mode _MULTI:  data is a tuple of steps (kind, match, payload) in phonenumbers' region order,
#               where a region's payload is ({nsn length: fullmatch}, consistent):
#               _FULL  - a region without leading_digits, picked iff its fullmatch succeeds
#               _LEAD  - a region picked iff match(leading_digits) succeeds
#               _LEADS - consecutive _LEAD regions merged into one regex of named groups;
#                        payload maps the group name (Match.lastgroup) to the region's payload
# mode _UNDECIDABLE: the metadata could not be compiled; always answer None.
_SINGLE, _MULTI, _UNDECIDABLE = 0, 1, 2
_FULL, _LEAD, _LEADS = 0, 1, 2

_Matcher = typing.Callable[[str], typing.Any]
_Entry = tuple[_Matcher | None, int, typing.Any]

_entries: dict[str, _Entry] = {}
_build_lock = threading.Lock()


def e164_validity(raw: str) -> bool | None:
    """For a plain E.164 string (regex ``\\+[1-9][0-9]{6,14}``, nothing else), return exactly
    ``phonenumbers.is_valid_number(phonenumbers.parse(raw, None))`` -- True or False -- or None
    when the fast path cannot decide (then the caller uses the full phonenumbers path).

    When a bool is returned, ``parse(raw)`` succeeds and its E.164 form is ``raw`` itself.
    """
    if not _PLAIN_E164.fullmatch(raw):
        return None
    digits = raw[1:]
    if digits[:1] in _CALLING_CODES:
        k = 1
    elif digits[:2] in _CALLING_CODES:
        k = 2
    elif digits[:3] in _CALLING_CODES:
        k = 3
    else:
        return None  # parse raises INVALID_COUNTRY_CODE
    nsn = digits[k:]  # at least 4 digits: the regex allows >= 7 digits, k <= 3
    if nsn[0] == "0":
        return None  # italian_leading_zero and friends: the full parser decides
    cc = digits[:k]
    entry = _entries.get(cc)
    if entry is None:
        entry = _entry_for(cc)
    prefix, mode, data = entry
    if prefix is not None and prefix(nsn):
        return None  # parse may strip a national prefix
    return _decide(mode, data, nsn)


def nsn_validity(cc: str, nsn: str) -> bool | None:
    """``phonenumbers.is_valid_number(PhoneNumber(country_code=int(cc),
    national_number=int(nsn)))`` for a known calling code `cc` and a national significant
    number of ASCII digits not starting with "0" (None: undecidable, use phonenumbers).

    Unlike `e164_validity`, this judges a number object already built, so the national
    prefix question (what parse would strip) is the caller's.
    """
    entry = _entries.get(cc)
    if entry is None:
        entry = _entry_for(cc)
    return _decide(entry[1], entry[2], nsn)


def _decide(mode: int, data: typing.Any, nsn: str) -> bool | None:
    if mode == _SINGLE:
        fullmatch = data.get(len(nsn))
        return fullmatch is not None and fullmatch(nsn) is not None
    if mode == _MULTI:
        length = len(nsn)
        for kind, match, payload in data:
            if kind == _FULL:
                by_length, consistent = payload
                fullmatch = by_length.get(length)
                if fullmatch is not None and fullmatch(nsn) is not None:
                    return consistent  # picked because it validates; the rest is bookkeeping
                continue
            found = match(nsn)
            if found:
                # region_code_for_number picks this region; is_valid_number_for_region then
                # validates with the same metadata.
                by_length, consistent = payload[found.lastgroup] if kind == _LEADS else payload
                if not consistent:
                    return False
                fullmatch = by_length.get(length)
                return fullmatch is not None and fullmatch(nsn) is not None
        return False  # no region: is_valid_number_for_region(numobj, None) is False
    return None


def _entry_for(cc: str) -> _Entry:
    with _build_lock:
        entry = _entries.get(cc)
        if entry is None:
            entry = _entries[cc] = _build_entry(int(cc))
        return entry


def _build_entry(country_code: int) -> _Entry:
    prefix = _national_prefix_match(country_code)
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[country_code]
    try:
        if len(regions) == 1:
            return prefix, _SINGLE, _validity_for_region(country_code, regions[0])
        steps: list[tuple[int, typing.Any, typing.Any]] = []
        run: list[tuple[str, tuple]] = []  # consecutive regions decided by leading_digits
        for region in regions:
            # _region_code_for_number_from_list skips regions without metadata.
            metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
            if metadata is None:
                continue
            # When this region is picked, is_valid_number_for_region re-fetches the same
            # metadata and also checks the calling code: `consistent`.
            payload = (_validators(metadata), _region_consistent(country_code, region))
            if metadata.leading_digits is None:
                steps.extend(_leading_steps(run))
                run = []
                steps.append((_FULL, None, payload))
            else:
                run.append((metadata.leading_digits, payload))
        steps.extend(_leading_steps(run))
        return prefix, _MULTI, tuple(steps)
    except re.error:
        return prefix, _UNDECIDABLE, None


def _leading_steps(run: list[tuple[str, tuple]]) -> list[tuple[int, typing.Any, typing.Any]]:
    """Steps for consecutive regions chosen by ``re.match(leading_digits, nsn)``, tried in
    order. They are merged into one alternation of named groups: re tries alternatives left
    to right and ``match`` needs no particular end, so the first group that matches is the
    first region whose own pattern matches -- one regex call instead of one per region."""
    if not run:
        return []
    if any(re.search(r"\\[1-9]|\(\?P", pattern) for pattern, _ in run):
        # Group numbers or names would clash: test them one by one.
        return [(_LEAD, re.compile(pattern).match, payload) for pattern, payload in run]
    names = [f"_r{i}" for i in range(len(run))]
    combined = "|".join(f"(?P<{name}>{pattern})"
                        for name, (pattern, _) in zip(names, run, strict=True))
    payloads = dict(zip(names, (p for _, p in run), strict=True))
    return [(_LEADS, re.compile(combined).match, payloads)]


def prepare(region: str) -> None:
    """Build the region's calling code now rather than on the first number of the first
    import (the +1 plan alone compiles ~25 regions' patterns: tens of ms)."""
    country_code = phonenumbers.country_code_for_region(region)
    if country_code:
        _entry_for(str(country_code))


def never_matches(text: str) -> None:
    """A match that never succeeds (the stand-in where no one-call match can be built)."""
    return None


def deciding_validators(cc: str) -> list[tuple[int, str]] | None:
    """``(national number length, validator pattern)`` of the region that alone decides
    that a national number of calling code ``cc`` is valid: the only region, or the first
    one tried without leading digits (and consistent with the calling code). A national
    number that fully matches its length's pattern is valid, exactly as `nsn_validity`
    finds it; None when no region decides so (the steps must be taken one by one)."""
    _, mode, data = _entry_for(cc)
    if mode == _SINGLE:
        by_length = data
    elif mode == _MULTI and data and data[0][0] == _FULL and data[0][2][1]:
        by_length = data[0][2][0]
    else:
        return None
    return [(length, match.__self__.pattern) for length, match in sorted(by_length.items())]


def national_prefix_pattern(cc: str) -> str | None:
    """The pattern of what `e164_validity` leaves to phonenumbers at the start of a
    national number (the national prefix parse may strip)."""
    country_code = int(cc)
    region = phonenumberutil.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    return (metadata.national_prefix_for_parsing or None) if metadata else None


@functools.cache
def valid_e164_in(region: str) -> _Matcher:
    """A match that succeeds only for plain E.164 strings of ``region``'s calling code that
    `e164_validity` finds valid, in one regex call (~0.6 µs instead of ~1.7); a failed match
    decides nothing (ask `e164_validity`). Most of a contact list is in the default region.

    The regex is `e164_validity`'s steps for that calling code, in order, for the case it
    returns True: ASCII digits (7 to 15), the calling code, no leading zero, no national
    prefix (a negative lookahead on its pattern), and the deciding region's validator for
    the number's length (`deciding_validators`). Without a deciding region, a match that
    never succeeds. ``tests/test_phone_fast.py`` checks it against `e164_validity`.
    """
    country_code = phonenumbers.country_code_for_region(region)
    if not country_code:
        return never_matches
    cc = str(country_code)
    validators = deciding_validators(cc)
    lengths = [(n, pattern) for n, pattern in validators or () if len(cc) + n <= 15]
    if not lengths:
        return never_matches
    prefix = national_prefix_pattern(cc)
    no_prefix = "" if prefix is None else f"(?!(?:{prefix}))"
    alternatives = "|".join(f"(?=[0-9]{{{n}}}\\Z)(?:{pattern})" for n, pattern in lengths)
    try:
        return re.compile(f"\\+(?=[0-9]{{7,15}}\\Z){cc}(?!0){no_prefix}(?:{alternatives})"
                          ).fullmatch
    except re.error:
        return never_matches


def fast_parse(raw: str) -> phonenumbers.PhoneNumber | None:
    """The number ``phonenumbers.parse(raw)`` would build, for a plain E.164 string, without
    the parser's general work; None when the case needs the full parser.

    Exact by construction: with a '+' the region is ignored; the country code is split off
    the same way; a national number that starts with 0 (leading-zero flags) or with the
    country's national prefix (which parse may strip) goes to the full parser.
    ``tests/test_contacts_fast_parse.py`` compares both on random numbers of every country
    code.
    """
    if not _PLAIN_E164.fullmatch(raw):
        return None
    country_code, national = phonenumberutil._extract_country_code(raw[1:])
    if not country_code or national[:1] in ("", "0"):
        return None
    prefix = _prefix_match(country_code)
    if prefix is not None and prefix(national):
        return None
    return phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))


@functools.cache
def _prefix_match(country_code: int) -> _Matcher | None:
    return _national_prefix_match(country_code)


def _national_prefix_match(country_code: int) -> _Matcher | None:
    """The match of the pattern phonenumbers strips from the start of a national number
    (None: none)."""
    region = phonenumberutil.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    prefix = metadata.national_prefix_for_parsing if metadata else None
    return re.compile(prefix).match if prefix else None


def _region_consistent(country_code: int, region: str) -> bool:
    """Whether is_valid_number_for_region(numobj, region) gets past its metadata and
    calling-code checks for a number with this calling code."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region.upper())
    if metadata is None:
        return False
    if region != _NON_GEO and country_code != phonenumberutil.country_code_for_valid_region(region):
        return False
    return True


def _validity_for_region(country_code: int, region: str) -> dict[int, _Matcher]:
    """{nsn length: fullmatch} deciding is_valid_number_for_region (empty: always False)."""
    if not _region_consistent(country_code, region):
        return {}
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region.upper())
    return {} if metadata is None else _validators(metadata)  # not None: checked above


def _validators(metadata: PhoneMetadata) -> dict[int, _Matcher]:
    """{nsn length: fullmatch} such that fullmatch(nsn) is truthy iff
    _number_type_helper(nsn, metadata) != UNKNOWN; a missing length is always UNKNOWN."""
    general = metadata.general_desc
    if general is None or not general.national_number_pattern:
        return {}
    general_pattern = general.national_number_pattern
    names = list(_TYPE_DESCS)
    if not metadata.same_mobile_and_fixed_line_pattern:
        names.append("mobile")
    descs: list[tuple[str, tuple[int, ...]]] = []  # (pattern, possible lengths) with a pattern
    for name in names:
        desc: PhoneNumberDesc | None = getattr(metadata, name, None)
        if desc is not None and desc.national_number_pattern:
            descs.append((desc.national_number_pattern, desc.possible_length))
    # An empty possible_length means "no restriction" (see _is_number_matching_desc).
    lengths = general.possible_length or range(1, 18)
    result: dict[int, _Matcher] = {}
    for length in lengths:
        patterns: list[str] = []
        for pattern, possible_length in descs:
            if possible_length and length not in possible_length:
                continue
            if pattern not in patterns:
                patterns.append(pattern)
        if patterns:
            result[length] = _compile_validator(general_pattern, tuple(patterns)).fullmatch
    return result


@functools.cache
def _compile_validator(general: str, types: tuple[str, ...]) -> re.Pattern[str]:
    """fullmatch(nsn) iff fullmatch(general, nsn) and fullmatch(t, nsn) for some t."""
    for pattern in (general, *types):
        # Backreferences and inline flags would change meaning inside a combined pattern.
        if re.search(r"\\[1-9]|\(\?P=|\(\?[aiLmsux-]", pattern):
            raise re.error(f"pattern can't be combined: {pattern!r}")
    alternatives = "|".join(f"(?:{t})" for t in types)
    return re.compile(f"(?=(?:{general})\\Z)(?:{alternatives})")
