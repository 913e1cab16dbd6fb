"""The plain-E.164 fast path gives exactly what phonenumbers' full parse gives."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from gateway.phone_fast import fast_parse as _fast_parse


def _full(raw: str):
    try:
        number = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _fast(raw: str):
    number = _fast_parse(raw)
    if number is None:
        return "fallback"
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_matches_full_parse_for_every_country_code(seed):
    rng = random.Random(seed)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    taken = 0
    for _ in range(6000):
        code = str(rng.choice(codes))
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 13)))
        raw = "+" + code + digits
        fast = _fast(raw)
        if fast != "fallback":
            taken += 1
            assert fast == _full(raw), raw
    assert taken > 3000  # the fast path is the common case, not a rarity


def test_valid_numbers_of_every_region_agree():
    for region in phonenumbers.SUPPORTED_REGIONS:
        example = phonenumbers.example_number(region)
        if example is None:
            continue
        raw = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        fast = _fast(raw)
        assert fast in ("fallback", raw), region
        assert _full(raw) == raw


@pytest.mark.parametrize("raw", ["+1 212 200 0000", "2122000000", "+12122000000x12",
                                 "+390612345678", "+0123456789", "+1"])
def test_anything_else_takes_the_full_parser(raw):
    assert _fast_parse(raw) is None
