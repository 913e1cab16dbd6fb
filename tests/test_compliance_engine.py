"""Compliance dialing through the real API and engine: calling windows in each contact's
zone (a window that opens during the test, fixed-offset and DST zones, a number in
several zones), the do-not-call list changed mid-campaign, retries by outcome.

In-process gateways (``serve``) on the test's database with the sim carrier. Where time
matters trio's MockClock drives it: the engine's "now" (what the claim compares with the
windows) comes from trio's clock, so hours pass in an instant and every dial's time can
be checked against its contact's window.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing
from conftest import multipart, us_number
from engine_helpers import FAST, MOCK_CLOCK_LEASE, engine_settings, rule
from test_engine_faults import serving, start

from gateway.clock import utcnow
from gateway.db import Database
from gateway.store import dialing
from gateway.vocabulary import DO_NOT_CALL_OUTCOME, WEEKDAYS, ContactStatus, Outcome
from gateway.windows import CallingWindow

_numbers = itertools.count(7000)
EVERY_DAY = list(WEEKDAYS)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.01)


# The gateway's periodic loops at a pace that lets the mock clock cover hours in seconds
# (each jump of the clock goes to the next timer of any loop), the lease as every whole
# gateway on the mock clock has it.
SLOW_LOOPS = {"scheduler_poll_seconds": 5.0, "caps_refresh_seconds": 5.0, **MOCK_CLOCK_LEASE}


async def travel_to(hour: int, minute: int = 0, zone: str = "UTC") -> datetime:
    """Move the test's clock (and so the engine's "now") to the next hh:mm in ``zone``;
    call it before the gateway starts, when nothing else waits on the clock (the jump is
    instant)."""
    now = utcnow()
    local = now.astimezone(ZoneInfo(zone))
    target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    while target <= local:
        target = (target + timedelta(days=1)).replace(hour=hour, minute=minute)
    await trio.sleep((target.astimezone(UTC) - now).total_seconds())
    return utcnow()


def fixed_zone(utc_offset_hours: int) -> str:
    """The IANA fixed-offset zone of UTC+offset (POSIX signs: Etc/GMT-3 is UTC+3)."""
    assert -12 <= utc_offset_hours <= 14
    if utc_offset_hours == 0:
        return "UTC"
    return f"Etc/GMT{'-' if utc_offset_hours > 0 else '+'}{abs(utc_offset_hours)}"


async def _campaign(api, csv: str, **fields) -> str:
    agent = await api.post("/api/v1/agents", json={"name": "Ava"})
    number = await api.post("/api/v1/phone-numbers",
                            json={"number": f"+1415555{next(_numbers):04d}"})
    assert agent.status_code == number.status_code == 201, (agent.text, number.text)
    form = {"name": "compliance", "agent_id": agent.json()["id"],
            "phone_number_id": number.json()["id"], "retry_delay_seconds": "0",
            **{key: value if isinstance(value, str) else json.dumps(value)
               for key, value in fields.items()}}
    body, content_type = multipart(form, {"contacts": csv.encode()})
    created = await api.post("/api/v1/campaigns", content=body,
                             headers={"Content-Type": content_type})
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def _history(database_url: str, campaign_id: str) -> tuple[list[dict], list[dict]]:
    db = await Database.open(database_url, min_size=1, max_size=1)
    try:
        attempts = [dict(r) for r in await db.fetch("testing.compliance_attempts", campaign_id)]
        contacts = [dict(r) for r in await db.fetch("testing.compliance_contacts", campaign_id)]
    finally:
        await db.close()
    return attempts, contacts


async def _until_done(api, campaign_id: str, poll: float = 5.0) -> dict:
    while True:
        campaign = (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()
        if campaign["status"] in ("completed", "failed"):
            return campaign
        await trio.sleep(poll)


class ClaimCounter:
    """Counts the dial loop's claims (to tell sleeping from polling)."""

    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        real = dialing.claim

        async def counted(*args, **kwargs):
            self.calls += 1
            return await real(*args, **kwargs)

        monkeypatch.setattr(dialing, "claim", counted)


@pytest.mark.timeout(60)
async def test_contacts_wait_for_their_window_and_are_called_when_it_opens(
        clock, aio_loop, database_url, tmp_path, monkeypatch):
    """At 12:00 UTC, a 10:05-14:00 window: contacts in UTC+0 are inside it and called at
    once (and one in Europe/London, a DST zone, in winter at UTC+0 too); those in UTC-2
    (10:00 local) wait five minutes, counted in waiting_for_window, the actor asleep (a
    handful of claims, not one a second), and are called when their 10:05 comes; those in
    UTC+3 (15:00 local) wait for tomorrow and are never called today. Every dial is
    inside its contact's window, in its zone."""
    claims = ClaimCounter(monkeypatch)
    overrides = engine_settings([rule("*", Outcome.ANSWERED, ring=FAST, talk=1.0)],
                                **SLOW_LOOPS)
    window = {"days": EVERY_DAY, "start": "10:05", "end": "14:00"}
    now = await travel_to(12)
    groups = {"open": fixed_zone(0), "waits": fixed_zone(-2), "tomorrow": fixed_zone(3)}
    rows = ["phone_number,timezone"]
    for i in range(12):
        rows.append(f"{us_number(i)},{list(groups.values())[i % 3]}")
    rows.append(f"{us_number(12)},Europe/London")
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        campaign_id = await _campaign(api, "\n".join(rows) + "\n", calling_window=window,
                                      max_concurrent_calls="5")
        created = (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()
        assert created["waiting_for_window"] == 8, created
        await start(api, campaign_id)
        await trio.sleep(60)
        campaign = (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()
        assert campaign["status"] == "running"
        assert campaign["contact_counts"]["completed"] == 5, campaign
        assert campaign["waiting_for_window"] == 8, campaign
        assert (await _snapshot(api, campaign_id))["waiting_for_window"] == 8
        claims_before = claims.calls
        await trio.sleep(5 * 60)  # 12:06: the UTC-2 contacts' 10:05 has come
        campaign = (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()
        assert campaign["contact_counts"]["completed"] == 9, campaign
        assert campaign["waiting_for_window"] == 4, campaign
        # Asleep until the window opened (then a claim per contact or batch), not polling.
        assert claims.calls - claims_before < 20, claims.calls - claims_before
        stopped = await api.post(f"/api/v1/campaigns/{campaign_id}/stop")
        assert stopped.status_code == 200, stopped.text
    attempts, contacts = await _history(database_url, campaign_id)
    parsed = CallingWindow.parse(window)
    zones = {c["phone_number"]: c["zone_names"] for c in contacts}
    assert sorted(tuple(z) for z in zones.values()) == sorted(
        [(zone,) for zone in groups.values()] * 4 + [("Europe/London",)])
    for attempt in attempts:
        assert parsed.is_open(zones[attempt["phone_number"]], attempt["dialed_at"]), attempt
    dialed = defaultdict(list)
    for attempt in attempts:
        dialed[zones[attempt["phone_number"]][0]].append(attempt["dialed_at"])
    assert len(dialed[groups["open"]]) == 4 and len(dialed["Europe/London"]) == 1
    assert max(dialed[groups["open"]]) < now + timedelta(seconds=30)
    assert len(dialed[groups["waits"]]) == 4
    assert min(dialed[groups["waits"]]) >= now + timedelta(minutes=5)
    assert groups["tomorrow"] not in dialed
    skipped = [c for c in contacts if c["zone_names"] == [groups["tomorrow"]]]
    assert [c["status"] for c in skipped] == [ContactStatus.SKIPPED] * 4


async def _snapshot(api, campaign_id: str) -> dict:
    async with api.stream("GET", f"/api/v1/campaigns/{campaign_id}/events") as events:
        async for line in events.aiter_lines():
            if line.startswith("data: "):
                return json.loads(line[6:])
    raise AssertionError("no snapshot")


@pytest.mark.timeout(60)
async def test_a_number_in_several_zones_waits_for_the_hours_they_share(
        clock, aio_loop, database_url, tmp_path):
    """+1 208 555 0100 may be in Boise or in Los Angeles (its prefix spans Mountain and
    Pacific time). At 08:55 in Los Angeles (09:55 in Boise, inside a 09:00-17:00 window)
    it waits, and is called at 09:00 Los Angeles time, when the window is open in both."""
    overrides = engine_settings([rule("*", Outcome.ANSWERED, ring=FAST)], **SLOW_LOOPS)
    window = {"days": EVERY_DAY, "start": "09:00", "end": "17:00"}
    zones = ["America/Boise", "America/Los_Angeles"]
    started = await travel_to(8, 55, "America/Los_Angeles")
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        campaign_id = await _campaign(api, "phone_number\n+12085550100\n",
                                      calling_window=window)
        await start(api, campaign_id)
        done = await _until_done(api, campaign_id, poll=30)
    assert done["status"] == "completed"
    [attempt], [contact] = await _history(database_url, campaign_id)
    assert sorted(contact["zone_names"]) == zones
    expected = started + timedelta(minutes=5)
    assert CallingWindow.parse(window).next_open(zones, started) == expected
    assert expected <= attempt["dialed_at"] < expected + timedelta(seconds=10), \
        (started, attempt["dialed_at"])


@pytest.mark.timeout(60)
async def test_numbers_added_to_the_do_not_call_list_mid_campaign_are_never_dialed(
        aio_loop, database_url, tmp_path):
    """One call at a time, 1 s each: after the first calls, five numbers still to be
    called go on the list; they are skipped (last_outcome do_not_call, no attempt) and
    the campaign completes with the rest called."""
    overrides = engine_settings([rule("*", Outcome.ANSWERED, ring=FAST, talk=1.0)])
    numbers = [us_number(100 + i) for i in range(12)]
    csv = "phone_number\n" + "\n".join(numbers) + "\n"
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        campaign_id = await _campaign(api, csv, max_concurrent_calls="1")
        await start(api, campaign_id)
        while (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()[
                "contact_counts"]["completed"] < 2:
            await trio.sleep(0.1)
        listed = numbers[6:11]
        added = await api.post("/api/v1/dnc", json={"numbers": listed})
        assert added.status_code == 200, added.text
        done = await _until_done(api, campaign_id, poll=0.2)
    assert done["status"] == "completed"
    assert done["contact_counts"]["skipped"] == 5
    assert done["contact_counts"]["completed"] == 7
    attempts, contacts = await _history(database_url, campaign_id)
    assert not {a["phone_number"] for a in attempts} & set(listed)
    for contact in contacts:
        if contact["phone_number"] in listed:
            assert (contact["status"], contact["last_outcome"], contact["attempts"]) == \
                (ContactStatus.SKIPPED, DO_NOT_CALL_OUTCOME, 0)


@pytest.mark.timeout(60)
async def test_retries_follow_the_policy_of_each_outcome(
        clock, aio_loop, database_url, tmp_path):
    """busy: 3 attempts 60 s apart; no_answer: 2 attempts 300 s apart; failed is not in
    the policy: retries_per_contact (1) and retry_delay_seconds (120) apply."""
    overrides = engine_settings([rule(us_number(200), Outcome.BUSY),
                                 rule(us_number(201), Outcome.NO_ANSWER),
                                 rule(us_number(202), Outcome.FAILED),
                                 rule("*", Outcome.ANSWERED)], **SLOW_LOOPS)
    policy = {"busy": {"delay_seconds": 60, "max_attempts": 3},
              "no_answer": {"delay_seconds": 300, "max_attempts": 2}}
    csv = "phone_number\n" + "\n".join(us_number(200 + i) for i in range(4)) + "\n"
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        campaign_id = await _campaign(api, csv, retry_policy=policy, retries_per_contact="1",
                                      retry_delay_seconds="120")
        await start(api, campaign_id)
        done = await _until_done(api, campaign_id, poll=10)
    assert done["status"] == "completed"
    attempts, contacts = await _history(database_url, campaign_id)
    by_number = defaultdict(list)
    for attempt in attempts:
        by_number[attempt["phone_number"]].append(attempt)
    expected = {us_number(200): (3, 60), us_number(201): (2, 300), us_number(202): (2, 120),
                us_number(203): (1, None)}
    for number, (count, delay) in expected.items():
        made = by_number[number]
        assert len(made) == count, (number, made)
        for earlier, later in itertools.pairwise(made):
            gap = (later["dialed_at"] - earlier["ended_at"]).total_seconds()
            assert delay <= gap < delay + 5, (number, gap)
    final = {c["phone_number"]: (c["status"], c["last_outcome"]) for c in contacts}
    assert final == {us_number(200): ("failed", "busy"), us_number(201): ("failed", "no_answer"),
                     us_number(202): ("failed", "failed"),
                     us_number(203): ("completed", "answered")}


@pytest.mark.timeout(60)
async def test_dispositions_by_rule_decide_the_contacts(clock, aio_loop, database_url, tmp_path):
    """The simulated agent marks calls by rule: a voicemail is retried by the policy's
    voicemail entry (2 attempts, 60 s apart) and then fails; a contact who always asks
    to be called back 120 s later is called 6 times, never more, then completed; a
    do_not_call puts the number on the account's list. Snapshots count every disposition."""
    voicemail, callback, dnc = us_number(300), us_number(301), us_number(302)
    rules = [{**rule(voicemail, Outcome.ANSWERED), "disposition": "voicemail"},
             {**rule(callback, Outcome.ANSWERED), "disposition": "callback",
              "callback_after_seconds": 120},
             {**rule(dnc, Outcome.ANSWERED), "disposition": "do_not_call"}]
    overrides = engine_settings(rules, **SLOW_LOOPS)
    policy = {"voicemail": {"delay_seconds": 60, "max_attempts": 2}}
    csv = f"phone_number\n{voicemail}\n{callback}\n{dnc}\n"
    async with serving(database_url, tmp_path, overrides) as gw, gw.client() as api:
        campaign_id = await _campaign(api, csv, retry_policy=policy, retries_per_contact="5")
        await start(api, campaign_id)
        done = await _until_done(api, campaign_id, poll=30)
        snapshot = await _snapshot(api, campaign_id)
        listed = (await api.get("/api/v1/dnc", params={"number": dnc})).json()
    assert done["status"] == "completed"
    attempts, contacts = await _history(database_url, campaign_id)
    made = defaultdict(list)
    for attempt in attempts:
        made[attempt["phone_number"]].append(attempt)
    assert [a["disposition"] for a in made[voicemail]] == ["voicemail"] * 2
    assert [a["disposition"] for a in made[callback]] == ["callback"] * 6
    for earlier, later in itertools.pairwise(made[callback]):
        assert later["dialed_at"] >= earlier["callback_at"] >= earlier["ended_at"]
    assert [a["disposition"] for a in made[dnc]] == ["do_not_call"]
    final = {c["phone_number"]: (c["status"], c["attempts"], c["disposition"])
             for c in contacts}
    assert final == {voicemail: ("failed", 2, "voicemail"),
                     callback: ("completed", 6, "callback"),
                     dnc: ("completed", 1, "do_not_call")}
    assert snapshot["dispositions"] == {"completed": 0, "voicemail": 2, "callback": 6,
                                        "do_not_call": 1, "not_interested": 0}
    assert [entry["source"] for entry in listed["data"]] == ["disposition"]
