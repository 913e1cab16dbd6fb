"""The concurrency budget, pacing, scheduling and terminal failures, end to end.

Real PostgreSQL, the real server, the sim carrier with tiny ring/talk times. Timestamps in
the attempt history come from the gateway's clock (:func:`gateway.clock.utcnow`), which the
in-process server shares with the test, so the test can compare its own instants with them.
Sleeps appear only where a test asserts that something does NOT happen during a window;
each one says so.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import trio
from conftest import API_KEY, contacts_csv, us_number
from engine_helpers import (
    check_attempt_invariants,
    engine_settings,
    max_overlap,
    outcome_counts,
    rule,
    start,
    wait_for,
    wait_status,
)

from gateway.clock import utcnow
from gateway.engine.campaign import REFERENCE_CHECK_SECONDS
from gateway.store import accounts

UNLIMITED_RATE = 1_000_000


def limits(rules, *, concurrent_max: int = 50, calls_per_minute: int = UNLIMITED_RATE,
           **engine) -> dict:
    """engine_settings(), with the caps the bootstrap account is created with."""
    overrides = engine_settings(rules, **engine)
    overrides["accounts"] = {"default_concurrent_max": concurrent_max,
                             "default_calls_per_minute": calls_per_minute}
    return overrides


async def _attempts(db, campaign_id):
    return [dict(row) for row in await db.fetch("testing.attempts", campaign_id)]


async def _account_id(db):
    return (await accounts.authenticate(db, API_KEY)).account.id


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _live_at(attempts, instant) -> int:
    """Calls live at ``instant`` (a call ending exactly then is no longer live)."""
    return sum(1 for a in attempts
               if a["dialed_at"] <= instant and (a["ended_at"] is None or instant < a["ended_at"]))


def _peak_at_dials(attempts, since) -> int:
    """The most calls live at any dial instant from ``since`` on (peaks happen at dials)."""
    return max((_live_at(attempts, a["dialed_at"]) for a in attempts if a["dialed_at"] >= since),
               default=0)


async def _set_agent_inactive(api, agent_id):
    response = await api.patch(f"/api/v1/agents/{agent_id}", json={"status": "inactive"})
    assert response.status_code == 200, response.text


async def _delete_number(api, number_id):
    response = await api.delete(f"/api/v1/phone-numbers/{number_id}")
    assert response.status_code == 204, response.text


# -- 1. the start-time budget check ----------------------------------------------------------

@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*", "answered", ring=0.3)], concurrent_max=10)])
async def test_simultaneous_starts_cannot_both_pass_the_budget(api, create_campaign):
    for round_ in range(5):
        ids = [(await create_campaign(contacts_csv(20, start=100 * round_),
                                      max_concurrent_calls=6)).json()["id"] for _ in range(2)]
        responses = {}

        async def post_start(campaign_id, into):
            into[campaign_id] = await api.post(f"/api/v1/campaigns/{campaign_id}/start")

        async with trio.open_nursery() as nursery:
            for campaign_id in ids:
                nursery.start_soon(post_start, campaign_id, responses)

        codes = sorted(r.status_code for r in responses.values())
        assert codes == [200, 409], (round_, [r.text for r in responses.values()])
        winner = next(cid for cid, r in responses.items() if r.status_code == 200)
        loser = next(cid for cid, r in responses.items() if r.status_code == 409)
        assert responses[winner].json()["status"] == "running"
        error = responses[loser].json()["error"]
        assert error["code"] == "concurrency_budget_exceeded"
        message = error["message"]
        # The numbers: needs 6, 6 already reserved, of 10, 4 free.
        assert {"6", "10", "4"} <= set(re.findall(r"\d+", message)), message
        assert "4 free" in message and "pause" in message.lower(), message
        assert "max_concurrent_calls" in message, message
        assert (await api.get(f"/api/v1/campaigns/{loser}")).json()["status"] == "draft"

        # Once the winner is stopped, the loser fits: the refusal changed nothing.
        assert (await start(api, winner, "stop"))["status"] == "completed"
        assert (await start(api, loser))["status"] == "running"
        assert (await start(api, loser, "stop"))["status"] == "completed"


# -- 2. the run-time budget ------------------------------------------------------------------

@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*", "answered", talk=0.05)], concurrent_max=5)])
async def test_live_calls_stay_within_the_account_and_each_campaign_cap(api, db,
                                                                        create_campaign):
    a = (await create_campaign(contacts_csv(40), max_concurrent_calls=3)).json()
    b = (await create_campaign(contacts_csv(40, start=1000), max_concurrent_calls=2)).json()
    await start(api, a["id"])
    await start(api, b["id"])
    for campaign in (a, b):
        done = await wait_status(api, campaign["id"], "completed", "failed")
        assert done["status"] == "completed" and done["contact_counts"]["completed"] == 40
    attempts = [dict(row) for row in await db.fetch("testing.all_attempts")]
    assert len(attempts) == 80 and all(x["outcome"] == "answered" for x in attempts)
    caps = {a["id"]: 3, b["id"]: 2}
    for campaign_id, cap in caps.items():
        mine = [x for x in attempts if str(x["campaign_id"]) == campaign_id]
        check_attempt_invariants(mine, retries_per_contact=0)
        assert max_overlap(mine) == cap  # reached, never passed
    assert max_overlap(attempts) <= 5


@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*", "answered", talk=0.05)], concurrent_max=5)])
async def test_lowering_concurrent_max_at_run_time_caps_live_calls(api, db, create_campaign):
    """The start-time check cannot catch this: both campaigns fit 5 when they start, then
    the operator lowers the account to 3. Only the run-time budget keeps live calls <= 3."""
    a = (await create_campaign(contacts_csv(50), max_concurrent_calls=3)).json()
    b = (await create_campaign(contacts_csv(50, start=1000), max_concurrent_calls=2)).json()
    await start(api, a["id"])
    await start(api, b["id"])
    await wait_for(api, a["id"], lambda c: c["contact_counts"]["completed"] >= 10)
    await accounts.set_limits(db, await _account_id(db), concurrent_max=3)
    lowered_at = utcnow()
    for campaign in (a, b):
        done = await wait_status(api, campaign["id"], "completed", "failed")
        assert done["status"] == "completed" and done["contact_counts"]["completed"] == 50
    attempts = [dict(row) for row in await db.fetch("testing.all_attempts")]
    assert len(attempts) == 100
    before = [x for x in attempts if x["ended_at"] <= lowered_at]
    assert max_overlap(before) == 5
    # caps_refresh_seconds is 0.2 s and a call lasts ~0.06 s: from 0.8 s on (a margin for
    # slow machines), every live call was granted under the new cap.
    settled = lowered_at + timedelta(seconds=0.8)
    assert sum(1 for x in attempts if x["dialed_at"] >= settled) >= 20
    assert _peak_at_dials(attempts, settled) == 3


# -- 3. calls_per_minute ---------------------------------------------------------------------

@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*", "answered")], calls_per_minute=30)])
async def test_calls_per_minute_caps_dials_in_the_window(api, db, create_campaign):
    created = (await create_campaign(contacts_csv(60), max_concurrent_calls=10)).json()
    await start(api, created["id"])
    await wait_for(api, created["id"], lambda c: c["contact_counts"]["completed"] >= 30)
    # Window: the next dial is allowed 60 s after the first; for 1 s nothing may be dialed.
    await trio.sleep(1.0)
    attempts = await _attempts(db, created["id"])
    assert len(attempts) == 30
    assert all(x["outcome"] == "answered" for x in attempts)
    campaign = (await api.get(f"/api/v1/campaigns/{created['id']}")).json()
    assert campaign["status"] == "running"
    assert campaign["contact_counts"]["pending"] == 30
    stopped = await start(api, created["id"], "stop")
    assert stopped["contact_counts"]["skipped"] == 30
    assert len(await _attempts(db, created["id"])) == 30


@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*", "answered", ring=0.05)])])
async def test_calls_per_minute_zero_is_a_kill_switch(api, db, create_campaign):
    account_id = await _account_id(db)
    created = (await create_campaign(contacts_csv(150), max_concurrent_calls=10)).json()
    cid = created["id"]
    await start(api, cid)
    await wait_for(api, cid, lambda c: c["contact_counts"]["completed"] >= 10)
    await accounts.set_limits(db, account_id, calls_per_minute=0)
    switched = trio.current_time()
    # caps_refresh_seconds (0.2 s) + the poll + one call (0.05 s), with a margin: dialing
    # has stopped.
    await wait_for(api, cid, lambda c: c["contact_counts"]["in_progress"] == 0
                   and trio.current_time() - switched > 0.8)
    held = await db.fetchval("testing.engine_attempt_count", cid)
    # Window: with calls_per_minute = 0 nothing may be dialed.
    await trio.sleep(0.6)
    assert await db.fetchval("testing.engine_attempt_count", cid) == held
    campaign = (await api.get(f"/api/v1/campaigns/{cid}")).json()
    assert campaign["status"] == "running" and campaign["contact_counts"]["pending"] > 0
    assert held < 150

    await accounts.set_limits(db, account_id, calls_per_minute=UNLIMITED_RATE)
    done = await wait_status(api, cid, "completed", "failed")
    assert done["status"] == "completed" and done["contact_counts"]["completed"] == 150
    attempts = await _attempts(db, cid)
    assert len(attempts) == 150
    check_attempt_invariants(attempts, retries_per_contact=0)


# -- 4. scheduled starts ---------------------------------------------------------------------

@pytest.mark.parametrize("settings_overrides", [limits([rule("*", "answered")])])
async def test_scheduled_campaign_starts_by_itself_at_its_time(api, db, create_campaign):
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    response = await create_campaign(contacts_csv(20), scheduled_at=_rfc3339(at))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "scheduled"
    scheduled_at = _parse(created["scheduled_at"])
    assert abs((scheduled_at - at).total_seconds()) < 0.01

    running = await wait_status(api, created["id"], "running", "completed", "failed")
    assert running["status"] in ("running", "completed")
    assert _parse(running["started_at"]) >= scheduled_at  # not before its time
    done = await wait_status(api, created["id"], "completed", "failed")
    assert done["status"] == "completed" and done["contact_counts"]["completed"] == 20
    attempts = await _attempts(db, created["id"])
    assert len(attempts) == 20
    assert min(x["dialed_at"] for x in attempts) >= scheduled_at


SLOW_PREFIX = us_number(0)[:8] + "*"   # contacts_csv(n) with n <= 10000: +1212200xxxx


@pytest.mark.parametrize("settings_overrides", [
    limits([rule(SLOW_PREFIX, "answered", ring=2.0), rule("*", "answered")], concurrent_max=5)])
async def test_scheduled_campaign_waits_for_the_budget(api, db, create_campaign):
    holder = (await create_campaign(contacts_csv(10), max_concurrent_calls=5)).json()
    await start(api, holder["id"])
    await wait_for(api, holder["id"], lambda c: c["contact_counts"]["in_progress"] == 5)

    at = datetime.now(UTC) + timedelta(seconds=0.5)
    response = await create_campaign(contacts_csv(20, start=20000), max_concurrent_calls=3,
                                     scheduled_at=_rfc3339(at))
    assert response.status_code == 201, response.text
    waiting = response.json()
    assert waiting["status"] == "scheduled"
    # Window: its time has come and gone (10+ scheduler polls), but the budget is full.
    await trio.sleep_until(trio.current_time()
                           + (at - datetime.now(UTC)).total_seconds() + 0.5)
    still = (await api.get(f"/api/v1/campaigns/{waiting['id']}")).json()
    assert still["status"] == "scheduled" and still["started_at"] is None

    stopped = await start(api, holder["id"], "stop")
    assert stopped["status"] == "completed"
    running = await wait_status(api, waiting["id"], "running", "completed", "failed")
    assert running["status"] in ("running", "completed")
    assert _parse(running["started_at"]) >= _parse(stopped["completed_at"])
    done = await wait_status(api, waiting["id"], "completed", "failed")
    assert done["status"] == "completed" and done["contact_counts"]["completed"] == 20
    # The holder's 5 live calls kept their slots: the account never passed 5 live calls.
    attempts = [dict(row) for row in await db.fetch("testing.all_attempts")]
    held = [x for x in attempts if str(x["campaign_id"]) == holder["id"]]
    assert len(attempts) == 20 + len(held) and len(held) >= 5
    assert max_overlap(attempts) == 5
    # While all 5 holder calls were live, the started campaign dialed nothing.
    first_holder_end = min(x["ended_at"] for x in attempts
                           if str(x["campaign_id"]) == holder["id"])
    assert min(x["dialed_at"] for x in attempts
               if str(x["campaign_id"]) == waiting["id"]) >= first_holder_end


# -- 5. terminal failures --------------------------------------------------------------------

@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*", "answered", ring=0.3)])])
async def test_a_broken_reference_fails_the_running_campaign(api, db, create_campaign, agent_id,
                                                             number_id):
    """Two campaigns at once: one loses its agent (PATCH inactive), the other its caller-ID
    number (DELETE). Each fails on its own, naming what broke."""
    other_agent = (await api.post("/api/v1/agents", json={"name": "Bo"})).json()["id"]
    other_number = (await api.post("/api/v1/phone-numbers",
                                   json={"number": "+14155550101"})).json()["id"]
    by_agent = (await create_campaign(contacts_csv(30), max_concurrent_calls=3,
                                      phone_number_id=other_number)).json()["id"]
    by_number = (await create_campaign(contacts_csv(30, start=1000), max_concurrent_calls=3,
                                       agent_id=other_agent)).json()["id"]
    for cid in (by_agent, by_number):
        await start(api, cid)
        await wait_for(api, cid, lambda c: c["contact_counts"]["in_progress"] > 0)
    broken = trio.current_time()
    await _set_agent_inactive(api, agent_id)
    await _delete_number(api, number_id)

    for cid, named in ((by_agent, "agent"), (by_number, "phone number")):
        failed = await wait_status(api, cid, "failed", "completed")
        # The actor re-checks references every REFERENCE_CHECK_SECONDS, plus one call (0.3 s).
        assert trio.current_time() - broken < REFERENCE_CHECK_SECONDS + 1.0
        assert failed["status"] == "failed", failed
        assert named in failed["failure_reason"], failed["failure_reason"]
        assert failed["completed_at"] is not None

    for cid in (by_agent, by_number):
        settled = await wait_for(api, cid, lambda c: c["contact_counts"]["in_progress"] == 0)
        counts = settled["contact_counts"]
        assert settled["status"] == "failed"
        assert counts["skipped"] > 0 and counts["pending"] == counts["retry_pending"] == 0
        attempts = await _attempts(db, cid)
        # Calls in flight were not aborted: they ended and were recorded.
        assert attempts and all(x["outcome"] == "answered" for x in attempts)
        assert counts["completed"] == len(attempts)
        assert counts["completed"] + counts["skipped"] == 30


@pytest.mark.parametrize("settings_overrides", [
    limits([rule(us_number(0), "answered", ring=3.0), rule(us_number(1), "answered", ring=3.0),
            rule("*", "answered")])])
async def test_no_call_is_dialed_with_a_deactivated_agent(api, db, create_campaign, agent_id):
    """The first two calls outlast REFERENCE_CHECK_SECONDS, so the actor sits in
    budget.acquire while the agent is deactivated. When their slots free up, it must not
    dial anyone else with that agent (the campaign fails instead)."""
    created = (await create_campaign(contacts_csv(10), max_concurrent_calls=2)).json()
    cid = created["id"]
    await start(api, cid)
    await wait_for(api, cid, lambda c: c["contact_counts"]["in_progress"] == 2)
    deactivated_at = utcnow()
    await _set_agent_inactive(api, agent_id)
    failed = await wait_status(api, cid, "failed", "completed")
    assert failed["status"] == "failed" and "agent" in failed["failure_reason"]
    late = [round((x["dialed_at"] - deactivated_at).total_seconds(), 2)
            for x in await _attempts(db, cid)
            if x["dialed_at"] > deactivated_at + timedelta(seconds=REFERENCE_CHECK_SECONDS)]
    assert late == [], f"dialed {late} s after the agent was deactivated"


@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*", "failed", ring=0.05)], adapter_failure_seconds=0.3,
           adapter_failure_min_calls=5)])
async def test_a_carrier_rejecting_every_call_fails_the_campaign(api, db, create_campaign):
    created = (await create_campaign(contacts_csv(500), max_concurrent_calls=5,
                                     retries_per_contact=0)).json()
    cid = created["id"]
    await start(api, cid)
    failed = await wait_status(api, cid, "failed", "completed")
    assert failed["status"] == "failed", failed
    assert "carrier" in failed["failure_reason"], failed["failure_reason"]
    settled = await wait_for(api, cid, lambda c: c["contact_counts"]["in_progress"] == 0)
    counts = settled["contact_counts"]
    attempts = await _attempts(db, cid)
    assert outcome_counts(attempts) == {"failed": len(attempts)}
    assert len(attempts) >= 5
    assert counts["failed"] == len(attempts) and counts["skipped"] == 500 - len(attempts) > 0
    # Sustained: the first failure and the decision are at least adapter_failure_seconds apart.
    first_failure = min(x["ended_at"] for x in attempts)
    assert _parse(failed["completed_at"]) - first_failure >= timedelta(seconds=0.3)


@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*0", "answered", ring=0.03), rule("*5", "answered", ring=0.03),
            rule("*", "failed", ring=0.03)], adapter_failure_seconds=0.5,
           adapter_failure_min_calls=5)])
async def test_a_carrier_failing_only_some_calls_does_not_fail_the_campaign(api, db,
                                                                          create_campaign):
    """The counterpart of the test above: one answered call in five resets the streak."""
    created = (await create_campaign(contacts_csv(150), max_concurrent_calls=5)).json()
    await start(api, created["id"])
    done = await wait_status(api, created["id"], "completed", "failed")
    assert done["status"] == "completed", done["failure_reason"]
    assert done["contact_counts"]["completed"] == 30 and done["contact_counts"]["failed"] == 120
    # The run outlasted adapter_failure_seconds, so the threshold was really in play.
    assert _parse(done["completed_at"]) - _parse(done["started_at"]) > timedelta(seconds=0.5)
    assert done["failure_reason"] is None


AGENT_URI = "sip:ava@10.0.0.5:5060"


async def _fail_by_streak(api, db, create_campaign, agent_id, contacts: int = 500):
    """Run a campaign (agent Ava at AGENT_URI) until the failure streak fails it; (the
    campaign, its attempts)."""
    patched = await api.patch(f"/api/v1/agents/{agent_id}", json={"sip_uri": AGENT_URI})
    assert patched.status_code == 200, patched.text
    created = (await create_campaign(contacts_csv(contacts), max_concurrent_calls=5)).json()
    await start(api, created["id"])
    failed = await wait_status(api, created["id"], "failed", "completed")
    assert failed["status"] == "failed", failed
    settled = await wait_for(api, created["id"], lambda c: c["contact_counts"]["in_progress"] == 0)
    attempts = await _attempts(db, created["id"])
    assert len(attempts) >= 5 and settled["contact_counts"]["skipped"] == contacts - len(attempts)
    # Sustained: the first failure and the decision are at least adapter_failure_seconds apart.
    assert _parse(failed["completed_at"]) - min(x["ended_at"] for x in attempts) >= \
        timedelta(seconds=0.3)
    return failed, attempts


@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*", "answered", ring=0.05, agent="agent_unavailable")],
           adapter_failure_seconds=0.3, adapter_failure_min_calls=5)])
async def test_an_agent_unavailable_for_every_call_fails_the_campaign(api, db, create_campaign,
                                                                     agent_id):
    failed, attempts = await _fail_by_streak(api, db, create_campaign, agent_id)
    assert outcome_counts(attempts) == {"agent_unavailable": len(attempts)}
    reason = failed["failure_reason"]
    assert reason.startswith(f"the agent Ava ({AGENT_URI}) was unavailable for every call "
                             "for 0.3 s ("), reason
    assert "check its sip_uri" in reason and "carrier" not in reason


@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*[0-4]", "failed", ring=0.05),
            rule("*", "answered", ring=0.05, agent="agent_unavailable")],
           adapter_failure_seconds=0.3, adapter_failure_min_calls=5)])
async def test_carrier_failures_and_an_unavailable_agent_together_fail_the_campaign(
        api, db, create_campaign, agent_id):
    """Neither alone explains the streak: the reason names both, with their counts."""
    failed, attempts = await _fail_by_streak(api, db, create_campaign, agent_id)
    counts = outcome_counts(attempts)
    assert set(counts) == {"failed", "agent_unavailable"}
    reason = failed["failure_reason"]
    found = re.fullmatch(
        rf"no call reached the agent Ava \({re.escape(AGENT_URI)}\) for 0\.3 s \((\d+) calls "
        r"in a row: (\d+) rejected by the carrier, (\d+) answered but the agent was "
        r"unavailable\): check the trunk, and the agent's sip_uri and that it answers", reason)
    assert found, reason
    streak, carrier, agent = (int(group) for group in found.groups())
    assert streak == carrier + agent >= 5 and carrier > 0 and agent > 0
    assert carrier <= counts["failed"] and agent <= counts["agent_unavailable"]


@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*0", "answered", ring=0.05), rule("*5", "answered", ring=0.05),
            rule("*", "answered", ring=0.05, agent="agent_unavailable")],
           adapter_failure_seconds=1.0, adapter_failure_min_calls=5)])
async def test_an_agent_taking_some_calls_does_not_fail_the_campaign(api, db, create_campaign):
    """One connected call in five resets the streak; the others are retried like failed.
    The campaign lasts longer than the failure period (the first attempts alone take 30
    rounds of 0.05 s), while the failures after its last connected call take a few rounds
    (1 s leaves room for a slow machine)."""
    created = (await create_campaign(contacts_csv(150), max_concurrent_calls=5,
                                     retries_per_contact=1, retry_delay_seconds=0)).json()
    await start(api, created["id"])
    done = await wait_status(api, created["id"], "completed", "failed")
    assert done["status"] == "completed", done["failure_reason"]
    assert done["contact_counts"]["completed"] == 30 and done["contact_counts"]["failed"] == 120
    assert outcome_counts(await _attempts(db, created["id"])) == {"answered": 30,
                                                                  "agent_unavailable": 240}
    assert _parse(done["completed_at"]) - _parse(done["started_at"]) > timedelta(seconds=1.0)


@pytest.mark.parametrize("settings_overrides", [limits([rule("*", "answered")])])
async def test_an_inactive_agent_cannot_start_and_fails_a_scheduled_campaign(
        api, db, create_campaign, agent_id):
    draft = (await create_campaign(contacts_csv(5))).json()
    at = datetime.now(UTC) + timedelta(seconds=1.0)
    scheduled = (await create_campaign(contacts_csv(5), scheduled_at=_rfc3339(at))).json()
    assert scheduled["status"] == "scheduled"
    await _set_agent_inactive(api, agent_id)

    response = await api.post(f"/api/v1/campaigns/{draft['id']}/start")
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert "agent_id" in error["message"] and error.get("field") == "agent_id"
    assert (await api.get(f"/api/v1/campaigns/{draft['id']}")).json()["status"] == "draft"

    failed = await wait_status(api, scheduled["id"], "failed", "running", "completed")
    assert failed["status"] == "failed", failed
    assert "agent" in failed["failure_reason"]
    assert _parse(failed["completed_at"]) >= _parse(scheduled["scheduled_at"])
    assert failed["started_at"] is None
    assert failed["contact_counts"]["skipped"] == 5
    assert await _attempts(db, scheduled["id"]) == []


# -- 6. the call history ---------------------------------------------------------------------

CALL_FIELDS = {"id", "contact_id", "phone_number", "attempt", "outcome", "dialed_at",
               "answered_at", "connected_at", "ended_at", "duration_seconds", "hangup_by",
               "sip_call_id", "sip_status", "agent_sip_status", "agent_sip_call_id",
               "disposition", "callback_at", "disposition_notes"}


@pytest.mark.parametrize("settings_overrides", [
    limits([rule("*1", "busy"), rule("*", "answered", talk=0.2)])])
async def test_call_history_pages(api, db, create_campaign, gateway):
    created = (await create_campaign(contacts_csv(150), max_concurrent_calls=50)).json()
    cid = created["id"]
    await start(api, cid)
    done = await wait_status(api, cid, "completed", "failed")
    assert done["status"] == "completed"

    pages = []
    for number in range(3):
        response = await api.get(f"/api/v1/campaigns/{cid}/calls", params={"page": number})
        assert response.status_code == 200, response.text
        pages.append(response.json())
    assert [len(p["data"]) for p in pages] == [100, 50, 0]
    assert [p["has_more"] for p in pages] == [True, False, False]
    assert all(p["total"] == 150 and p["page_size"] == 100 for p in pages)
    assert [p["page"] for p in pages] == [0, 1, 2]

    calls = pages[0]["data"] + pages[1]["data"]
    assert all(set(call) == CALL_FIELDS for call in calls)
    stored = {str(x["id"]): x for x in await _attempts(db, cid)}
    assert [call["id"] for call in calls] == list(stored)  # every attempt once, dial order
    for call in calls:
        row = stored[call["id"]]
        assert call["contact_id"] == str(row["contact_id"])
        assert call["phone_number"] == row["phone_number"] and call["attempt"] == 1
        assert call["sip_call_id"] is None and call["sip_status"] is None  # sim adapter
        assert call["agent_sip_call_id"] is None and call["agent_sip_status"] is None
        dialed, ended = _parse(call["dialed_at"]), _parse(call["ended_at"])
        assert dialed <= ended
        if call["phone_number"].endswith("1"):
            assert call["outcome"] == "busy"
            assert call["answered_at"] is None and call["duration_seconds"] is None
            assert call["connected_at"] is None and call["hangup_by"] is None
        else:
            assert call["outcome"] == "answered"
            answered = _parse(call["answered_at"])
            assert dialed <= answered <= _parse(call["connected_at"]) <= ended
            assert call["hangup_by"] == "contact"
            assert 0.18 <= call["duration_seconds"] <= 0.6
            assert call["duration_seconds"] == pytest.approx(
                (ended - answered).total_seconds(), abs=0.002)
    assert sum(call["outcome"] == "busy" for call in calls) == 15

    other = await accounts.create_account(db, name="Other tenant", concurrent_max=5,
                                          calls_per_minute=60)
    async with gateway.client(other.api_key) as intruder:
        for path in (f"/api/v1/campaigns/{cid}/calls", f"/api/v1/campaigns/{cid}"):
            response = await intruder.get(path)
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "not_found"
            assert "phone_number" not in response.text
