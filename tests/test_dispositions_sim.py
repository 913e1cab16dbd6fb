"""The simulated agent's dispositions, by rule: what a rule's settings accept, what the
sim's results carry (only for calls that reached the agent), and a campaign whose numbers
end in voicemail, a callback 60 s later and do_not_call, run by the engine against the
real server and PostgreSQL, with each contact decided by its disposition."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg
import pytest
import trio
import trio.testing
import trio_asyncio
from conftest import us_number
from engine_helpers import FAST, engine_settings, rule, start
from pydantic import ValidationError

from gateway.config import ConfigError, SimRule, SimSettings, load_settings
from gateway.telephony.base import IGNORE_PROGRESS, DialRequest
from gateway.telephony.sim import SimAdapter
from gateway.vocabulary import Disposition

VOICEMAIL, CALLBACK, DO_NOT_CALL, PLAIN = (us_number(i) for i in (7001, 7002, 7003, 7004))
CALLBACK_AFTER = 60.0


def _rule(pattern: str, disposition: str | None, **fields) -> dict:
    return {**rule(pattern, "answered", talk=0.02), "disposition": disposition, **fields}


RULES = [_rule(VOICEMAIL, "voicemail"),
         _rule(CALLBACK, "callback", callback_after_seconds=CALLBACK_AFTER),
         _rule(DO_NOT_CALL, "do_not_call", hangup_by="agent"),
         _rule(PLAIN, None)]


@pytest.fixture
def settings_overrides():
    return engine_settings(RULES)


# -- the rule's settings ------------------------------------------------------------------

def test_callback_needs_its_delay_and_only_callback_takes_one():
    assert SimRule(**_rule("*", "callback", callback_after_seconds=0)).callback_after_seconds == 0
    assert SimRule(**_rule("*", "voicemail")).disposition == Disposition.VOICEMAIL
    for fields, words in [
            (_rule("*", "callback"), "is required"),
            (_rule("*", "voicemail", callback_after_seconds=5), "only given"),
            (_rule("*", None, callback_after_seconds=5), "only given"),
            (_rule("*", "callback", callback_after_seconds=-1), "greater than or equal"),
            (_rule("*", "callback", callback_after_seconds=31 * 86400), "less than or equal"),
            (_rule("*", "maybe"), "'voicemail'")]:
        with pytest.raises(ValidationError) as raised:
            SimRule(**fields)
        [error] = raised.value.errors()
        field = "disposition" if fields["disposition"] == "maybe" else "callback_after_seconds"
        assert error["loc"] == (field,) and words in error["msg"], error


def test_a_config_file_error_names_the_rule_and_key(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('[[telephony.sim.rules]]\npattern = "*"\noutcome = "answered"\n'
                    'disposition = "callback"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})
    assert "setting telephony.sim.rules.0.callback_after_seconds: " in str(raised.value)


# -- the sim's results (a mock clock: no database here) -----------------------------------

def _request(number: str) -> DialRequest:
    return DialRequest(call_id=uuid.uuid4(), campaign_id=uuid.uuid4(), contact_id=uuid.uuid4(),
                       agent_id=uuid.uuid4(), attempt=1, to_number=number,
                       from_number="+14155550100", variables={})


async def _dial(rules: list[dict], number: str):
    adapter = SimAdapter(SimSettings(rules=[SimRule(**r) for r in rules]))
    return await adapter.dial(_request(number), IGNORE_PROGRESS, IGNORE_PROGRESS)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_the_agent_reports_the_rules_disposition(clock):
    voicemail = await _dial(RULES, VOICEMAIL)
    assert (voicemail.outcome, voicemail.disposition, voicemail.callback_at) == \
        ("answered", "voicemail", None)
    callback = await _dial(RULES, CALLBACK)
    assert callback.disposition == "callback"
    assert callback.ended_at is not None
    assert callback.callback_at == callback.ended_at + timedelta(seconds=CALLBACK_AFTER)
    listed = await _dial(RULES, DO_NOT_CALL)
    assert (listed.disposition, listed.hangup_by) == ("do_not_call", "agent")
    plain = await _dial(RULES, PLAIN)
    assert (plain.outcome, plain.disposition, plain.callback_at) == ("answered", None, None)
    # The seeded mix (no rule) says nothing either.
    assert (await _dial([], us_number(1))).disposition is None


@pytest.mark.parametrize(("outcome", "agent"), [
    ("busy", "answered"), ("no_answer", "answered"), ("failed", "answered"),
    ("invalid_number", "answered"), ("answered", "agent_unavailable")])
async def test_calls_that_never_reached_the_agent_carry_none(clock, outcome, agent):
    fields = {**rule("*", outcome, agent=agent), "disposition": "callback",
              "callback_after_seconds": 5}
    result = await _dial([fields], us_number(1))
    assert result.outcome == (outcome if agent == "answered" else agent)
    assert (result.disposition, result.callback_at) == (None, None)


# -- a campaign ---------------------------------------------------------------------------

async def _contacts(api, campaign_id: str) -> dict[str, dict]:
    data = (await api.get(f"/api/v1/campaigns/{campaign_id}/contacts")).json()["data"]
    return {c["phone_number"]: c for c in data}


@pytest.mark.timeout(60)
async def test_a_campaign_gets_each_rules_disposition(api, aio_loop, database_url,
                                                     create_campaign):
    csv = f"phone_number\n{VOICEMAIL}\n{CALLBACK}\n{DO_NOT_CALL}\n{PLAIN}\n".encode()
    created = (await create_campaign(csv, retries_per_contact=1, retry_delay_seconds=0)).json()
    await start(api, created["id"])
    # Settled: voicemail retried once (no delay) then failed; the callback waits its 60 s.
    with trio.fail_after(20):
        while True:
            contacts = await _contacts(api, created["id"])
            if contacts[VOICEMAIL]["status"] == "failed" and \
                    contacts[CALLBACK]["status"] == "retry_pending" and \
                    contacts[DO_NOT_CALL]["status"] == contacts[PLAIN]["status"] == "completed":
                break
            await trio.sleep(FAST * 5)
    calls = (await api.get(f"/api/v1/campaigns/{created['id']}/calls")).json()["data"]
    by_number: dict[str, list[dict]] = {}
    for call in calls:
        by_number.setdefault(call["phone_number"], []).append(call)
    assert [c["disposition"] for c in by_number[VOICEMAIL]] == ["voicemail", "voicemail"]
    assert [c["disposition"] for c in by_number[DO_NOT_CALL]] == ["do_not_call"]
    assert [c["disposition"] for c in by_number[PLAIN]] == [None]
    [callback] = by_number[CALLBACK]
    assert callback["disposition"] == "callback" and callback["outcome"] == "answered"
    callback_at = _time(callback["callback_at"])
    assert callback_at == _time(callback["ended_at"]) + timedelta(seconds=CALLBACK_AFTER)
    # Each contact decided by its disposition.
    assert _time(contacts[CALLBACK]["next_attempt_at"]) == callback_at
    assert {n: c["disposition"] for n, c in contacts.items()} == {
        VOICEMAIL: "voicemail", CALLBACK: "callback", DO_NOT_CALL: "do_not_call", PLAIN: None}
    assert [contacts[n]["attempts"] for n in (VOICEMAIL, CALLBACK, DO_NOT_CALL, PLAIN)] == \
        [2, 1, 1, 1]
    conn = await trio_asyncio.aio_as_trio(asyncpg.connect)(database_url)
    try:
        listed = await trio_asyncio.aio_as_trio(conn.fetch)(
            "SELECT number, source FROM dnc_numbers")
    finally:
        await trio_asyncio.aio_as_trio(conn.close)()
    assert [(row["number"], row["source"]) for row in listed] == [(DO_NOT_CALL, "disposition")]
    campaign = (await api.get(f"/api/v1/campaigns/{created['id']}")).json()
    assert campaign["status"] == "running"  # the callback is still to come
    assert (await api.post(f"/api/v1/campaigns/{created['id']}/stop")).status_code == 200


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
