"""An exact fast path for numbers written the usual ways: ``(212) 555-0100``, ``212.555.0100``,
``2125550100``, ``020 7946 0018`` in a default region, and ``+1 212-555-0100``.

``phonenumbers.parse(raw, region)`` costs ~20 µs a number: it searches the text for a
number, checks it against its large "viable number" and extension patterns, then looks for
an international prefix, the region's calling code and a national prefix. For text made
only of ASCII digits and the usual formatting characters (space, ``(``, ``)``, ``-``,
``.``, and one ``+`` before every digit) the first steps are certain: the number is the
digit string D, viable once it has 3 digits, with no extension (every extension pattern
needs a letter, ``#``, ``,``, ``;`` or ``~``). `national_e164` then replays the remaining
steps on D with the region's metadata:

* D starting with a match of the region's international prefix (IDD, e.g. "011") or with
  the region's calling code ("44...") is left to phonenumbers (parse may strip either).
* The national prefix (``national_prefix_for_parsing``) is handled by phonenumbers' own
  ``_maybe_strip_national_prefix_carrier_code``, then kept or undone by the same length
  test parse applies; a prefix rule with a transform (Brazil's carrier codes) is left to
  phonenumbers.
* A national number outside parse's 2..17 digits or starting with "0" (the leading-zero
  flags) is left to phonenumbers.

What remains is exactly ``PhoneNumber(country_code, int(N))``: its E.164 form is
``+<cc><N>`` and its validity is `phone_fast.nsn_validity`. With a '+', D is a plain E.164
string and `phone_fast.e164_validity` decides. ``tests/test_contacts_import_national.py``
compares the result with phonenumbers on hundreds of thousands of numbers in national formats.
"""

from __future__ import annotations

import re
import threading
import typing

import attrs
from phonenumbers import PhoneMetadata, phonenumberutil
from phonenumbers.phonenumberutil import ValidationResult

from gateway.phone_fast import deciding_validators, e164_validity, never_matches, nsn_validity

__all__ = ["NationalFastPath", "national_e164", "national_fast_path"]

FORMATTING_CHARS = " ()-."  # what the usual ways of writing a number put between digits
_FORMATTING = str.maketrans("", "", FORMATTING_CHARS)
_MAX_INPUT = 250  # phonenumberutil._MAX_INPUT_STRING_LENGTH: longer input is TOO_LONG
_MIN_NSN, _MAX_NSN = 2, 17  # parse raises outside these (TOO_SHORT_NSN, TOO_LONG)
# After a national prefix is stripped, parse keeps the stripped number unless its length
# test gives one of these.
_KEEP_UNSTRIPPED = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                    ValidationResult.INVALID_LENGTH)


@attrs.frozen
class _Plan:
    cc: str
    idd: typing.Callable[[str], typing.Any] | None  # match of the international prefix
    prefix_transform: bool  # the prefix rule has a transform: left to phonenumbers
    prefix: typing.Callable[[str], typing.Any] | None  # None: no national_prefix_for_parsing
    metadata: PhoneMetadata
    keep_stripped: frozenset[int]  # lengths whose stripped number parse keeps
    # Succeeds only for digits that the steps below find valid without a prefix to strip
    # (see _accept_pattern): the usual number in one regex call.
    accept: typing.Callable[[str], typing.Any]


_plans: dict[str, _Plan | None] = {}
_lock = threading.Lock()


@attrs.frozen
class NationalFastPath:
    """`national_e164`'s usual case as two C calls, for an import's per-row loop: for a
    text ``raw`` of at most `max_chars` characters that does not start with '+', when
    ``accept(raw.translate(FORMATTING))`` matches the digits D, ``national_e164(raw,
    region)`` is ``(e164_prefix + D, True)``. A failed match decides nothing (ask
    `national_e164`)."""

    accept: typing.Callable[[str], typing.Any]
    e164_prefix: str  # "+" and the region's calling code
    max_chars: int = _MAX_INPUT


FORMATTING = _FORMATTING


def national_fast_path(region: str) -> NationalFastPath:
    """The region's fast path; for a region without a plan, one whose match never succeeds."""
    plan = _plans[region] if region in _plans else _plan_for(region)
    if plan is None:
        return NationalFastPath(accept=never_matches, e164_prefix="+")
    return NationalFastPath(accept=plan.accept, e164_prefix="+" + plan.cc)


def national_e164(raw: str, region: str) -> tuple[str, bool] | None:
    """``(E.164, valid)`` exactly as ``format_number(parse(raw, region), E164)`` and
    ``is_valid_number(parse(raw, region))`` give them, or None when the fast path cannot
    decide (then parse may also raise: the caller uses phonenumbers). When a tuple is
    returned, parse succeeds."""
    if len(raw) > _MAX_INPUT:
        return None
    digits = raw.translate(_FORMATTING)
    if digits[:1] == "+":
        # One '+' before every digit (formatting may precede it: "(+44) 20..."). parse
        # reads the digits after it as an international number, like '+' + digits.
        e164 = digits
        valid = e164_validity(e164) if e164[1:].isdigit() and e164.isascii() else None
        return None if valid is None else (e164, valid)
    try:
        plan = _plans[region]
    except KeyError:
        plan = _plan_for(region)
    if plan is not None and plan.accept(digits):
        return "+" + plan.cc + digits, True
    if len(digits) < 3 or not digits.isdigit() or not digits.isascii():
        return None
    if plan is None:
        return None
    cc = plan.cc
    if digits.startswith(cc) or (plan.idd is not None and plan.idd(digits)):
        return None
    national = digits
    if plan.prefix is not None:
        found = plan.prefix(digits)
        if found:
            groups = found.groups()
            if plan.prefix_transform and groups and groups[-1] is not None:
                return None
            _, stripped, _ = phonenumberutil._maybe_strip_national_prefix_carrier_code(
                digits, plan.metadata)
            if len(stripped) in plan.keep_stripped:
                national = stripped
    if not _MIN_NSN <= len(national) <= _MAX_NSN or national[0] == "0":
        return None
    valid = nsn_validity(cc, national)
    return None if valid is None else ("+" + cc + national, valid)


def _plan_for(region: str) -> _Plan | None:
    with _lock:
        if region not in _plans:
            _plans[region] = _build_plan(region)
        return _plans[region]


def _build_plan(region: str) -> _Plan | None:
    metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
    if metadata is None or not metadata.country_code:
        return None
    try:
        idd = re.compile(metadata.international_prefix).match \
            if metadata.international_prefix else None
        rule = metadata.national_prefix_for_parsing
        prefix = re.compile(rule).match if rule else None
    except re.error:
        return None
    # _test_number_length with the UNKNOWN type depends on the length alone.
    keep = frozenset(length for length in range(0, _MAX_NSN + 1)
                     if phonenumberutil._test_number_length("5" * length, metadata)
                     not in _KEEP_UNSTRIPPED)
    cc = str(metadata.country_code)
    accept: typing.Callable[[str], typing.Any]
    try:
        accept = re.compile(_accept_pattern(cc, metadata.international_prefix or None,
                                            rule or None)).fullmatch
    except re.error:
        accept = never_matches
    return _Plan(cc=cc, idd=idd,
                 prefix_transform=bool(metadata.national_prefix_transform_rule),
                 prefix=prefix, metadata=metadata, keep_stripped=keep, accept=accept)


def _accept_pattern(cc: str, idd: str | None, prefix: str | None) -> str:
    """`national_e164`'s steps, in order, for digits it finds valid with nothing stripped:
    ASCII digits (at least 3), not starting with the calling code, the international
    prefix or the national prefix (negative lookaheads on their patterns), no leading
    zero, and the deciding region's validator for the length
    (`phone_fast.deciding_validators`); a pattern that never matches without one."""
    lengths = [(n, pattern) for n, pattern in deciding_validators(cc) or ()
               if _MIN_NSN <= n <= _MAX_NSN]
    if not lengths:
        return "(?!)"
    checks = "".join(f"(?!(?:{p}))" for p in (idd, prefix) if p)
    alternatives = "|".join(f"(?=[0-9]{{{n}}}\\Z)(?:{pattern})" for n, pattern in lengths)
    return f"(?=[0-9]{{3,}}\\Z)(?!{cc}){checks}(?!0)(?:{alternatives})"


def prepare(region: str) -> None:
    """Build the region's plan (and its calling code's validators) before the first import."""
    plan = _plan_for(region)
    if plan is not None:
        nsn_validity(plan.cc, "2")
