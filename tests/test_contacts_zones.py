"""Contacts' time zones and the do-not-call list at import.

The zone lookup (gateway.timezones) against phonenumbers on generated valid numbers of
every region and type; the import's zone numbers, its timezone column and its
do-not-call rejections; and through the API, what a campaign stores: campaign_zones,
contact_counts by zone, each contact's zone.
"""

from __future__ import annotations

import collections
import csv
import io
import random
import re
import uuid

import phonenumbers
import pytest
import trio
from conftest import API_KEY, Raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata
from phonenumbers.timezone import time_zones_for_number
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from gateway import digit_patterns, timezones
from gateway.contacts_csv import ContactsFileError, ContactsImport, parse_contacts
from gateway.phone_fast import national_prefix_pattern
from gateway.store import accounts
from gateway.vocabulary import RejectionReason
from tests import copy_payload

CAMPAIGN = "3f2b8c1e-7d4a-4e5b-9c6d-0a1b2c3d4e5f"
E164 = phonenumbers.PhoneNumberFormat.E164

# Real numbers of several zones (checked against phonenumbers by the tests that use them).
NY, NY2 = "+12125550100", "+12125550101"
CHICAGO = "+13125550100"
DENVER = "+13035550100"
LA = "+14155550100"
HONOLULU = "+18085550100"
ANCHORAGE = "+19075550100"     # Adak and Anchorage
BOISE = "+12083200000"         # Boise and Los Angeles
LONDON = "+442079460018"       # a fixed line: London
UK_MOBILE = "+447911123456"    # not geographical: the United Kingdom's four zones
ALMATY = "+77172123456"
KZ_MOBILE = "+77012345678"     # not geographical: the sixteen zones of +7
JM_MOBILE = "+18762109876"     # not geographical: the 42 zones of +1


def expected(e164: str) -> tuple[str, ...]:
    """phonenumbers' zones of the number, its Etc/Unknown as the country's (else UTC)."""
    number = phonenumbers.parse(e164)
    zones = time_zones_for_number(number)
    if list(zones) == ["Etc/Unknown"]:
        zones = TIMEZONE_DATA.get(str(number.country_code), ("UTC",))
    return tuple(sorted(zones))


def _valid(raw: str) -> str | None:
    try:
        number = phonenumbers.parse(raw)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, E164) if phonenumbers.is_valid_number(number) \
        else None


def _seeds() -> list[str]:
    """An example number of every type of every region and calling code of no country."""
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in range(11):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                found.append(phonenumbers.format_number(example, E164))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            found.append(phonenumbers.format_number(example, E164))
    return sorted(set(found))


SEEDS = _seeds()


def _variant(seed: str, rng: random.Random) -> str:
    """A valid number of the seed's region and mostly of its type: its last digits
    replaced (the seed itself when that is not valid)."""
    k = rng.randint(1, min(7, len(seed) - 3))
    return _valid(seed[:-k] + "".join(rng.choice("0123456789") for _ in range(k))) or seed


@st.composite
def valid_numbers(draw) -> str:
    seed = draw(st.sampled_from(SEEDS))
    return _variant(seed, random.Random(draw(st.integers(0, 2**32))))


# --- the lookup --------------------------------------------------------------------------


@settings(max_examples=1500, derandomize=True, deadline=None)
@given(number=valid_numbers())
def test_the_zones_of_a_number_are_phonenumbers_and_so_are_its_prefixes(number):
    zones = expected(number)
    assert timezones.zones_for_number(number) == zones
    # Whatever prefix the import remembers a number by holds for every number it starts.
    for end in range(2, len(number) + 1):
        assert timezones.prefix_zones(number[:end]) in (None, zones), (number, end)
        assert timezones.prefix_zones(number[:end], len(number)) in (None, zones), (number, end)


def test_every_region_and_type_with_variations_agree():
    rng = random.Random(20240607)
    numbers = {n for seed in SEEDS for n in [seed] + [_variant(seed, rng) for _ in range(20)]}
    assert len(numbers) > 15_000
    wrong = [n for n in sorted(numbers) if timezones.zones_for_number(n) != expected(n)]
    assert wrong == []


def _random_nanpa(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    found: set[str] = set()
    # Area codes of every NANPA region, then random ones.
    codes = sorted({n[2:5] for n in SEEDS if n.startswith("+1")})
    while len(found) < count:
        area = rng.choice(codes) if rng.random() < 0.5 else str(rng.randint(200, 999))
        number = _valid(f"+1{area}{rng.randint(2000000, 9999999)}")
        if number is not None:
            found.add(number)
    return sorted(found)


def test_nanpa_and_large_regions_are_decided_by_prefixes_without_phonenumbers(monkeypatch):
    numbers = _random_nanpa(3000, 1)
    rng = random.Random(2)
    for region in ("GB", "DE", "FR", "AU", "IN", "BR", "MX", "ES", "IT", "JP", "CN"):
        seeds = [n for n in SEEDS if phonenumbers.region_code_for_number(
            phonenumbers.parse(n)) == region]
        numbers += [_variant(rng.choice(seeds), rng) for _ in range(100)]
    wanted = {n: expected(n) for n in numbers}

    def refused(e164):
        raise AssertionError(f"{e164}: asked phonenumbers")

    decided = {n for n in numbers if not n.startswith(("+81", "+54"))}  # see below
    monkeypatch.setattr(timezones, "reference_zones", refused)
    for number in sorted(decided):
        assert timezones.zones_for_number(number) == wanted[number], number
    # Japan's national prefix is a pattern this does not read, Argentina's matches any
    # number (parse may strip it): their numbers are phonenumbers' to judge, one by one.
    assert not timezones._country("81").supported
    assert timezones.prefix_zones("+5411", 13) is None


def test_the_prefix_table_alone_is_wrong_for_numbers_that_are_not_geographical():
    def longest_prefix(e164):
        for n in range(TIMEZONE_LONGEST_PREFIX, 0, -1):
            if e164[1:1 + n] in TIMEZONE_DATA:
                return tuple(sorted(TIMEZONE_DATA[e164[1:1 + n]]))
        return None

    for number in (UK_MOBILE, KZ_MOBILE, JM_MOBILE):
        assert longest_prefix(number) != expected(number)
        assert timezones.zones_for_number(number) == expected(number)
    assert expected(UK_MOBILE) == ("Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey",
                                   "Europe/London")
    assert len(expected(JM_MOBILE)) == 42 and expected(JM_MOBILE) == timezones.country_zones("1")
    assert timezones.zones_for_number("+80012345678") == ("UTC",) == expected("+80012345678")


def _metadata() -> list[PhoneMetadata]:
    regions = [PhoneMetadata.metadata_for_region(r) for r in sorted(phonenumbers.SUPPORTED_REGIONS)]
    return regions + [PhoneMetadata.metadata_for_nongeo_region(c)
                      for c in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)]


def _run(pattern: digit_patterns.DigitPattern, digits: str) -> digit_patterns.State:
    state = pattern.initial
    for digit in digits:
        state = pattern.step(state, int(digit))
    return state


def test_the_automata_read_every_metadata_pattern_as_re_does():
    rng = random.Random(3)
    nsns = [str(phonenumbers.parse(n).national_number) for n in SEEDS]
    full: set[str] = set()
    prefix: set[str] = set()
    for metadata in _metadata():
        for name in ("general_desc", *timezones._SPECIAL_TYPES, "fixed_line", "mobile"):
            desc = getattr(metadata, name)
            if desc is not None and desc.national_number_pattern:
                full.add(desc.national_number_pattern)
        if metadata.leading_digits:
            prefix.add(metadata.leading_digits)
    unread = set()
    for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        found = national_prefix_pattern(str(cc))
        if found:
            prefix.add(found)
    for text, is_prefix in [(p, False) for p in sorted(full)] + [(p, True) for p in sorted(prefix)]:
        try:
            pattern = digit_patterns.DigitPattern(text, prefix=is_prefix)
        except digit_patterns.Unsupported:
            unread.add(text)
            continue
        compiled = re.compile(text)
        samples = rng.sample(nsns, 40) + ["".join(rng.choice("0123456789") for _ in range(
            rng.randint(1, 13))) for _ in range(40)]
        samples += [s[:rng.randint(1, len(s))] for s in samples[:40]]
        for digits in samples:
            state = _run(pattern, digits)
            if is_prefix:
                assert (state is digit_patterns.MATCHED) == bool(compiled.match(digits)), (text,
                                                                                       digits)
            else:
                assert pattern.possible(state, 0) == bool(compiled.fullmatch(digits)), (text,
                                                                                        digits)
                assert pattern.certain(state, 0) == pattern.possible(state, 0)
    # Only national prefixes that end in "$" (a whole national number) are not read.
    assert unread and all("$" in text for text in unread), unread


def test_possible_and_certain_say_what_completions_match():
    pattern = digit_patterns.DigitPattern(r"2(?:1[2-9]|5\d)\d{2}")
    assert pattern.certain(_run(pattern, "25"), 3)
    assert pattern.possible(_run(pattern, "21"), 3) and not pattern.certain(_run(pattern, "21"), 3)
    assert not pattern.possible(_run(pattern, "210"), 2)
    assert not pattern.possible(_run(pattern, "25"), 2)  # too short


async def test_every_zone_of_the_number_table_is_one_postgresql_knows(db):
    known = await timezones.known_zones(db)
    assert "America/New_York" in known and "america/new_york" not in known
    table = {zone for zones in TIMEZONE_DATA.values() for zone in zones}
    assert table | {"UTC"} <= known
    assert await timezones.known_zones(db) is known  # read once per process


# --- the import ----------------------------------------------------------------------------


def _import(data: bytes, **kwargs) -> tuple[ContactsImport, list[list]]:
    contacts = ContactsImport(io.BytesIO(data), campaign_id=CAMPAIGN,
                              default_region=kwargs.pop("region", "US"), **kwargs)
    payload = b"".join(contacts.chunks())
    return contacts, copy_payload.decode(payload, contacts.columns, zones=True)


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def test_fixture_numbers_are_valid_and_in_their_zones():
    for number in (NY, NY2, CHICAGO, DENVER, LA, HONOLULU, ANCHORAGE, BOISE, LONDON,
                   UK_MOBILE, ALMATY, KZ_MOBILE, JM_MOBILE):
        assert _valid(number) == number
    assert expected(NY) == ("America/New_York",) and expected(CHICAGO) == ("America/Chicago",)
    assert expected(ANCHORAGE) == ("America/Adak", "America/Anchorage")
    assert expected(BOISE) == ("America/Boise", "America/Los_Angeles")
    assert expected(LONDON) == ("Europe/London",) and len(expected(KZ_MOBILE)) == 16


def test_zone_numbers_in_order_of_first_appearance_and_accepted_contacts_counted():
    rows = [["phone_number", "name"], [NY, "a"], [LA, "b"], [NY2, "c"], [UK_MOBILE, "d"],
            ["bogus", "e"], [NY, "dup"], [LA.replace("0100", "0199"), "f"], [BOISE, "g"]]
    contacts, payload = _import(_csv(rows))
    assert contacts.zone_sets == [expected(NY), expected(LA), expected(UK_MOBILE),
                                  expected(BOISE)]
    assert contacts.zone_counts == [2, 2, 1, 1]
    assert [(r[1], r[4]) for r in payload] == [(0, NY), (1, LA), (0, NY2), (2, UK_MOBILE),
                                              (1, "+14155550199"), (3, BOISE)]


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_zones_and_counts_of_a_large_file_in_any_order(order):
    pool = [*_random_nanpa(400, 4), LONDON, UK_MOBILE, ALMATY, KZ_MOBILE]
    rng = random.Random(5)
    numbers = sorted(set(rng.choice(pool)[:-3] + f"{rng.randint(0, 999):03d}"
                         for _ in range(6000)))
    numbers = [n for n in numbers if _valid(n) == n]
    if order == "shuffled":
        rng.shuffle(numbers)
    contacts, payload = _import(_csv([["phone_number"]] + [[n] for n in numbers]))
    assert contacts.accepted == len(numbers)
    by_zone = collections.Counter(r[1] for r in payload)
    assert contacts.zone_counts == [by_zone[z] for z in range(len(contacts.zone_sets))]
    assert all(contacts.zone_sets[r[1]] == expected(r[4]) for r in payload)
    assert len(set(contacts.zone_sets)) == len(contacts.zone_sets)


def test_the_zone_of_a_number_is_looked_up_once_per_first_digits(monkeypatch):
    calls = collections.Counter()
    for name in ("prefix_zones", "zones_for_number", "reference_zones"):
        original = getattr(timezones, name)

        def counted(*args, name=name, original=original):
            calls[name] += 1
            return original(*args)

        monkeypatch.setattr(timezones, name, counted)
    rng = random.Random(6)
    areas = ["212", "312", "303", "415"]
    numbers = sorted({n for _ in range(20_000)
                      if (n := _valid(f"+1{rng.choice(areas)}{rng.randint(2000000, 9999999)}"))})
    rng.shuffle(numbers)
    contacts, _ = _import(_csv([["phone_number"]] + [[n] for n in numbers]))
    assert contacts.accepted == len(numbers)
    assert calls == {"prefix_zones": 4}
    assert sorted(contacts.zone_counts) == sorted(
        collections.Counter(n[2:5] for n in numbers).values())


@pytest.mark.parametrize("header", [["phone_number", "timezone", "name"],
                                    ["timezone", "name", "phone_number"],
                                    ["name", "phone_number", "timezone"]])
def test_the_timezone_column(header):
    cells = [(NY, "Europe/Paris", "a"), (LA, "", "b"), (CHICAGO, "  ", "c"),
             (DENVER, "europe/paris", "d"), (HONOLULU, "Mars/Olympus", "e"),
             (UK_MOBILE, " America/New_York ", "f"), (LONDON, "Europe/Paris", "g")]
    order = {"phone_number": 0, "timezone": 1, "name": 2}
    rows = [header] + [[cell[order[name]] for name in header] for cell in cells]
    contacts, payload = _import(_csv(rows))
    assert contacts.columns == ["name"]  # not a custom field
    assert [(r[3], r[4], contacts.zone_sets[r[1]], r[5]) for r in payload] == [
        (1, NY, ("Europe/Paris",), {"name": "a"}),
        (2, LA, ("America/Los_Angeles",), {"name": "b"}),
        (3, CHICAGO, ("America/Chicago",), {"name": "c"}),
        (6, UK_MOBILE, ("America/New_York",), {"name": "f"}),
        (7, LONDON, ("Europe/Paris",), {"name": "g"})]
    assert contacts.zone_counts == [2, 1, 1, 1]
    assert [(r.row, r.reason, r.message) for r in contacts.rejected] == [
        (4, RejectionReason.INVALID_TIMEZONE,
         "Row 4: timezone 'europe/paris' is not a time zone name; did you mean"
         " 'Europe/Paris'? (names are case-sensitive)"),
        (5, RejectionReason.INVALID_TIMEZONE,
         "Row 5: timezone 'Mars/Olympus' is not a time zone name; give an IANA name such as"
         " 'America/New_York', or leave the cell blank for the phone number's zones.")]
    assert contacts.rejected_counts[RejectionReason.INVALID_TIMEZONE] == 2


def test_timezone_cells_are_checked_against_the_zones_given():
    rows = [["phone_number", "timezone"], [NY, "Asia/Tokyo"], [LA, "Europe/Paris"]]
    contacts, payload = _import(_csv(rows), known_zones=frozenset({"Europe/Paris"}))
    assert [(r.row, r.reason) for r in contacts.rejected] == [
        (1, RejectionReason.INVALID_TIMEZONE)]
    assert contacts.zone_sets == [("Europe/Paris",)] and [r[4] for r in payload] == [LA]


def test_a_row_with_a_bad_timezone_does_not_count_as_seen():
    rows = [["phone_number", "timezone"], [NY, "Nowhere"], [NY, ""], [NY, ""]]
    contacts, _ = _import(_csv(rows))
    assert [(r.row, r.reason, r.message) for r in contacts.rejected] == [
        (1, RejectionReason.INVALID_TIMEZONE, contacts.rejected[0].message),
        (3, RejectionReason.DUPLICATE, f"Row 3: {NY} is a duplicate of row 2.")]


def test_numbers_on_the_do_not_call_list_are_rejected_however_written():
    rows = [["phone_number", "name"], [NY, "a"], ["(212) 555-0101", "b"], [LA, "c"],
            ["212.555.0101", "d"], [NY, "e"]]
    contacts, payload = _import(_csv(rows), dnc_keys=frozenset({12125550100, 12125550101}))
    assert [r[4] for r in payload] == [LA]
    assert [(r.row, r.reason, r.message) for r in contacts.rejected] == [
        (1, RejectionReason.DO_NOT_CALL, f"Row 1: {NY} is on the do-not-call list."),
        (2, RejectionReason.DO_NOT_CALL, f"Row 2: {NY2} is on the do-not-call list."),
        (4, RejectionReason.DO_NOT_CALL, f"Row 4: {NY2} is on the do-not-call list."),
        (5, RejectionReason.DO_NOT_CALL, f"Row 5: {NY} is on the do-not-call list.")]
    assert contacts.rejected_counts[RejectionReason.DO_NOT_CALL] == 4
    assert contacts.rejected_counts[RejectionReason.DUPLICATE] == 0
    assert contacts.zone_sets == [expected(LA)] and contacts.zone_counts == [1]


def test_a_file_of_listed_numbers_only_has_no_valid_rows():
    with pytest.raises(ContactsFileError) as info:
        parse_contacts(io.BytesIO(f"phone_number\n{NY}\n{NY2}\n".encode()),
                       campaign_id=CAMPAIGN, default_region="US",
                       dnc_keys={12125550100, 12125550101})
    assert info.value.message == ("The file has no valid rows: all 2 data rows were"
                                  " rejected (2 do_not_call).")


def test_a_default_region_outside_nanpa_gets_its_zones_from_prefixes(monkeypatch):
    def refused(e164):
        raise AssertionError(f"{e164}: asked phonenumbers")

    monkeypatch.setattr(timezones, "reference_zones", refused)
    rows = [["phone_number"], ["020 7946 0018"], ["07911 123456"], ["0161 496 0000"], [NY]]
    contacts, payload = _import(_csv(rows), region="GB")
    assert [(r[4], contacts.zone_sets[r[1]]) for r in payload] == [
        (LONDON, ("Europe/London",)), (UK_MOBILE, expected(UK_MOBILE)),
        ("+441614960000", expected("+441614960000")), (NY, ("America/New_York",))]


# --- through the API -----------------------------------------------------------------------


async def _stored(raw: Raw, campaign_id: str) -> dict:
    """What the campaign's import wrote: its zones, its counts, its contacts' zones."""
    campaign = uuid.UUID(campaign_id)
    zones = {r["zone"]: tuple(r["names"]) for r in await raw.fetch(
        "SELECT zone, names FROM campaign_zones WHERE campaign_id = $1 ORDER BY zone",
        campaign)}
    counts = [(r["status"], r["zone"], r["n"]) for r in await raw.fetch(
        "SELECT status, zone, n FROM contact_counts WHERE campaign_id = $1"
        " ORDER BY status, zone", campaign)]
    contacts = {r["phone_number"]: tuple(r["names"]) for r in await raw.fetch(
        "SELECT c.phone_number, z.names FROM contacts c"
        " JOIN campaign_zones z ON z.campaign_id = c.campaign_id AND z.zone = c.zone"
        " WHERE c.campaign_id = $1", campaign)}
    total = await raw.fetchval("SELECT count(*) FROM contacts WHERE campaign_id = $1",
                               campaign)
    assert total == len(contacts)  # every contact has its zone's row
    return {"zones": zones, "counts": counts, "contacts": contacts}


async def test_contacts_in_several_zones_are_stored_with_their_zones(create_campaign, raw,
                                                                     api):
    numbers = [NY, CHICAGO, DENVER, LA, HONOLULU, ANCHORAGE, BOISE, LONDON, UK_MOBILE,
               ALMATY, KZ_MOBILE, NY2, "+14155550101"]
    response = await create_campaign(_csv([["phone_number"]] + [[n] for n in numbers]))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["import_report"]["rows_accepted"] == 13
    stored = await _stored(raw, body["id"])
    sets = list(dict.fromkeys(expected(n) for n in numbers))  # in order of first appearance
    assert stored["zones"] == dict(enumerate(sets))
    per_zone = collections.Counter(sets.index(expected(n)) for n in numbers)
    assert stored["counts"] == [("pending", z, per_zone[z]) for z in range(len(sets))]
    assert sum(n for _, _, n in stored["counts"]) == 13
    assert stored["contacts"] == {n: expected(n) for n in numbers}
    campaign = (await api.get(f"/api/v1/campaigns/{body['id']}")).json()
    assert campaign["contact_counts"]["pending"] == campaign["contact_counts"]["total"] == 13


async def test_the_timezone_column_through_the_api(create_campaign, raw, api):
    rows = [["phone_number", "first_name", "timezone"], [NY, "Ann", "Europe/Paris"],
            [LA, "Bob", ""], [CHICAGO, "Cy", "america/chicago"], [DENVER, "Di", "Nowhere/X"],
            [LONDON, "Ed", "Asia/Tokyo"]]
    response = await create_campaign(_csv(rows))
    assert response.status_code == 201, response.text
    body = response.json()
    report = body["import_report"]
    assert report["columns"] == ["first_name"] and report["rows_accepted"] == 3
    assert [(r["row"], r["reason"], r["message"]) for r in report["rejected"]] == [
        (3, "invalid_timezone", "Row 3: timezone 'america/chicago' is not a time zone name;"
                                " did you mean 'America/Chicago'? (names are case-sensitive)"),
        (4, "invalid_timezone", "Row 4: timezone 'Nowhere/X' is not a time zone name; give an"
                                " IANA name such as 'America/New_York', or leave the cell"
                                " blank for the phone number's zones.")]
    assert report["rejected_counts"]["invalid_timezone"] == 2
    stored = await _stored(raw, body["id"])
    assert stored["contacts"] == {NY: ("Europe/Paris",), LA: ("America/Los_Angeles",),
                                  LONDON: ("Asia/Tokyo",)}
    assert stored["zones"] == {0: ("Europe/Paris",), 1: ("America/Los_Angeles",),
                               2: ("Asia/Tokyo",)}
    assert stored["counts"] == [("pending", 0, 1), ("pending", 1, 1), ("pending", 2, 1)]
    contacts = (await api.get(f"/api/v1/campaigns/{body['id']}/contacts")).json()["data"]
    assert [c["custom_fields"] for c in contacts] == [{"first_name": "Ann"},
                                                      {"first_name": "Bob"},
                                                      {"first_name": "Ed"}]


async def _account_id(db) -> uuid.UUID:
    return (await accounts.authenticate(db, API_KEY)).account.id


async def test_numbers_on_the_do_not_call_list_are_rejected_at_import(create_campaign, raw,
                                                                      api, db):
    account = await _account_id(db)
    other = await accounts.create_account(db, name="Other", concurrent_max=1,
                                          calls_per_minute=60)
    await raw.execute("INSERT INTO dnc_numbers (account_id, number, source) VALUES"
                      " ($1, $2, 'api'), ($1, $3, 'upload'), ($4, $5, 'api')",
                      account, NY, LONDON, other.account.id, LA)
    rows = [["phone_number", "first_name"], [NY, "Ann"], ["(415) 555-0100", "Bob"],
            ["+44 20 7946 0018", "Cy"], [CHICAGO, "Di"], ["212-555-0100", "Ed"]]
    response = await create_campaign(_csv(rows))
    assert response.status_code == 201, response.text
    body = response.json()
    report = body["import_report"]
    assert report["rows_accepted"] == 2 and report["rows_rejected"] == 3
    assert [(r["row"], r["reason"], r["message"]) for r in report["rejected"]] == [
        (1, "do_not_call", f"Row 1: {NY} is on the do-not-call list."),
        (3, "do_not_call", f"Row 3: {LONDON} is on the do-not-call list."),
        (5, "do_not_call", f"Row 5: {NY} is on the do-not-call list.")]
    assert report["rejected_counts"]["do_not_call"] == 3
    stored = await _stored(raw, body["id"])
    assert set(stored["contacts"]) == {LA, CHICAGO}  # another account's list is its own
    assert sum(n for _, _, n in stored["counts"]) == 2

    before = await raw.fetchval("SELECT count(*) FROM campaigns")
    response = await create_campaign(f"phone_number\n{NY}\n(212) 555-0100\n".encode())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == "contacts"
    assert "all 2 data rows were rejected (2 do_not_call)" in error["message"]
    assert await raw.fetchval("SELECT count(*) FROM campaigns") == before


_POOL = [NY, NY2, CHICAGO, DENVER, LA, HONOLULU, ANCHORAGE, BOISE, LONDON, UK_MOBILE,
         ALMATY, KZ_MOBILE, JM_MOBILE, "+13102093456", "+18002345678"]
_LISTED = [CHICAGO, UK_MOBILE]
_CELLS = ["", " ", "Europe/Paris", "America/New_York", "UTC", "europe/paris", "Nowhere",
          "Asia/Tokyo "]


def _written(number: str, style: int) -> str:
    if style == 0 or not number.startswith("+1"):
        return number
    d = number[2:]
    return (f"({d[:3]}) {d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}", d)[style - 1]


_ROWS = st.lists(st.tuples(st.sampled_from([*_POOL, "bogus", ""]), st.integers(0, 3),
                           st.sampled_from(_CELLS)), min_size=1, max_size=12)


@pytest.mark.timeout(180)
async def test_generated_files_are_stored_with_the_right_zones_or_refused(
        create_campaign, raw, db):
    account = await _account_id(db)
    for number in _LISTED:
        await raw.execute("INSERT INTO dnc_numbers (account_id, number, source)"
                          " VALUES ($1, $2, 'api')", account, number)
    seen: collections.Counter = collections.Counter()

    async def upload(rows, with_zones):
        header = ["phone_number", "timezone", "note"] if with_zones else ["phone_number",
                                                                          "note"]
        lines = [header] + [[_written(n, style), cell, "x"] if with_zones
                            else [_written(n, style), "x"] for n, style, cell in rows]
        before = await raw.fetchval("SELECT count(*) FROM campaigns")
        response = await create_campaign(_csv(lines))
        after = await raw.fetchval("SELECT count(*) FROM campaigns")
        stored = await _stored(raw, response.json()["id"]) \
            if response.status_code == 201 else None
        return response, stored, after - before

    @settings(max_examples=30, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(rows=_ROWS, with_zones=st.booleans())
    def check(rows, with_zones):
        response, stored, added = trio.from_thread.run(upload, rows, with_zones)
        seen[response.status_code] += 1
        wanted: dict[str, tuple[str, ...]] = {}
        for number, _, cell in rows:
            if number in ("bogus", "") or number in _LISTED or number in wanted:
                continue
            name = cell.strip() if with_zones else ""
            if name and name not in ("Europe/Paris", "America/New_York", "UTC", "Asia/Tokyo"):
                continue  # a bad timezone: rejected, not seen
            wanted[number] = (name,) if name else expected(number)
        if not wanted:
            assert response.status_code == 400, response.text
            assert response.json()["error"]["field"] == "contacts" and added == 0
            return
        assert response.status_code == 201, response.text
        assert stored["contacts"] == wanted
        report = response.json()["import_report"]
        assert report["rows_accepted"] == len(wanted)
        assert report["rejected_counts"]["do_not_call"] == sum(n in _LISTED for n, _, _ in rows)
        counts = collections.Counter(stored["contacts"].values())
        assert stored["counts"] == [("pending", z, counts[names])
                                    for z, names in sorted(stored["zones"].items())]

    await trio.to_thread.run_sync(check, abandon_on_cancel=True)
    assert seen[201] and seen[400], seen
