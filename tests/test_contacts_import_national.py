"""gateway.phone_national.national_e164 agrees exactly with phonenumbers whenever it decides,
and its one-call fast path (`national_fast_path`, what an import's loop calls) agrees with it.

Numbers in the formats people type (national, with or without the trunk prefix, spaced,
dotted, dashed, parenthesised, international with '+') for the regions most imports use,
generated from phonenumbers' own example numbers, their one-digit mutations and random
digit strings, and from hypothesis. ``pytest -m slow`` runs a sample ten times larger.
"""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from gateway.phone_national import FORMATTING, national_e164, national_fast_path

REGIONS = ("US", "GB", "DE", "FR", "IN", "BR", "AU")
_TYPES = [getattr(PhoneNumberType, name) for name in dir(PhoneNumberType)
          if name.isupper() and name != "UNKNOWN"]
_STYLES = ("plain", "spaces", "dots", "dashes", "parens", "national", "international",
           "plus", "cc", "idd", "padded", "prefix")


def _full(raw: str, region: str):
    """What the importer's slow path computes: (E.164, valid), or "error" if parse raises."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return "error"
    return (phonenumbers.format_number(number, PhoneNumberFormat.E164),
            phonenumbers.is_valid_number(number))


def _fast_path_takes(raw: str, region: str) -> bool:
    """Whether the import loop's one-call path accepts raw; when it does, assert it gives
    what national_e164 gives."""
    usual = national_fast_path(region)
    if raw[:1] == "+" or len(raw) > usual.max_chars:
        return False
    digits = raw.translate(FORMATTING)
    if not usual.accept(digits):
        return False
    assert national_e164(raw, region) == (usual.e164_prefix + digits, True), (raw, region)
    return True


def _check(raw: str, region: str) -> bool:
    """Assert agreement; return whether the fast path decided."""
    _fast_path_takes(raw, region)
    fast = national_e164(raw, region)
    if fast is None:
        return False
    assert fast == _full(raw, region), (raw, region)
    return True


def _nsns(region: str, rng: random.Random) -> list[str]:
    """National significant numbers: the region's examples, mutations, random digits."""
    found = []
    for kind in _TYPES:
        example = phonenumbers.example_number_for_type(region, kind)
        if example is not None:
            found.append(phonenumbers.national_significant_number(example))
    out = []
    for nsn in found:
        out.append(nsn)
        for _ in range(6):
            i = rng.randrange(len(nsn))
            out.append(nsn[:i] + rng.choice("0123456789") + nsn[i + 1:])
        out.append(nsn[:-1])
        out.append(nsn + rng.choice("0123456789"))
    for _ in range(len(out)):
        out.append("".join(rng.choice("0123456789") for _ in range(rng.randint(3, 14))))
    return out


def _styled(nsn: str, region: str, style: str, rng: random.Random) -> str:
    cc = str(phonenumbers.country_code_for_region(region))
    prefix = phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix or ""
    digits = (prefix + nsn) if rng.random() < 0.6 else nsn
    if style == "plain":
        return digits
    if style in ("spaces", "dots", "dashes"):
        sep = {"spaces": " ", "dots": ".", "dashes": "-"}[style]
        cuts = sorted(rng.sample(range(1, len(digits)), min(3, len(digits) - 1)))
        parts = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
        return sep.join(parts)
    if style == "parens":
        k = rng.randint(1, max(1, len(digits) - 2))
        return f"({digits[:k]}) {digits[k:k + 3]}-{digits[k + 3:]}"
    number = phonenumbers.PhoneNumber(country_code=int(cc), national_number=int(nsn))
    if style == "national":
        return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    if style == "international":
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    if style == "plus":
        return rng.choice(["+", "(+", " +"]) + cc + rng.choice(["", " ", ") ", "-"]) + nsn
    if style == "cc":
        return cc + rng.choice(["", " ", "-"]) + nsn
    if style == "idd":
        return rng.choice(["00", "011", "0011", "001"]) + rng.choice(["", " "]) + cc + nsn
    if style == "padded":
        return rng.choice([" ", "  ", "-", "(", "."]) + digits + rng.choice([" ", ")", ".", "-"])
    return rng.choice(["1", "0", "00", "90", "1831", "0", "0 "]) + digits  # "prefix"


def _sample(seed: int, per_region: int) -> None:
    rng = random.Random(seed)
    for region in REGIONS:
        nsns = _nsns(region, rng)
        decided = 0
        for _ in range(per_region):
            raw = _styled(rng.choice(nsns), region, rng.choice(_STYLES), rng)
            decided += _check(raw, region)
        assert decided > per_region // 3, (region, decided)  # the common case is fast


@pytest.mark.parametrize("seed", range(2))
def test_generated_national_formats_agree_with_phonenumbers(seed):
    _sample(seed, per_region=4_000)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 110))
def test_many_generated_national_formats_agree_with_phonenumbers(seed):
    _sample(seed, per_region=6_000)  # 10 seeds x 7 regions x 6,000: 420,000 numbers


def test_random_us_numbers_in_the_three_usual_styles():
    rng = random.Random(7)
    decided = taken = valid = 0
    for _ in range(10_000):
        d = str(rng.randint(2_000_000_000, 9_999_999_999))
        raw = rng.choice([f"({d[:3]}) {d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}", d])
        decided += _check(raw, "US")
        taken += _fast_path_takes(raw, "US")
        found = national_e164(raw, "US")
        valid += found is not None and found[1]
    assert decided == 10_000  # every such number takes the fast path
    # Most valid ones in one regex call; the rest (Canada's, the Caribbean's: other
    # regions of +1) by the longer path.
    assert valid >= taken > 0.8 * valid > 3_000


@settings(max_examples=1_000, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.text(alphabet="0123456789 ()-.+", max_size=24),
       region=st.sampled_from((*REGIONS, "IT", "CA", "MX", "NL", "AR", "CN", "JP")))
def test_any_string_of_digits_and_formatting_agrees(raw, region):
    _check(raw, region)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(raw=st.text(max_size=30), region=st.sampled_from(REGIONS))
def test_any_text_agrees_or_is_left_to_phonenumbers(raw, region):
    _check(raw, region)


@pytest.mark.parametrize("raw", ["1-212-555-0100", "011 44 20 7946 0018", "212 555 0100 x12",
                                 "212-555-0100#", "2125550100;ext=1", "(212) 555-O100",
                                 "٢١٢٥٥٥٠١٠٠", "+1 212 555 0100 +1", "12", "0" * 300])
def test_anything_else_is_left_to_phonenumbers(raw):
    assert national_e164(raw, "US") is None
    assert not _fast_path_takes(raw, "US")


def test_a_region_without_a_plan_has_a_fast_path_that_never_matches():
    usual = national_fast_path("001")  # non-geographic entities have no national numbers
    assert not usual.accept("2125550100")
