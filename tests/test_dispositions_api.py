"""``POST /api/v1/calls/{id}/disposition``: the agent says how an answered call went.

Calls in every state (live, answered and recorded, unanswered, ended long ago, already
disposed) are written straight into the database, in a paused campaign that the engine
leaves alone, so each rule is checked on its own: the contact decided again (voicemail
and callback retried, at the first time the contact's window is open), the number listed
for do_not_call, the 404/409/400 answers that write nothing. One test holds the
recorder's write of the same call open while the disposition comes, and one goes
through the real engine: a disposition given while the sim call is live is applied when
the call ends. Generated bodies are never a 5xx nor half-written.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
import trio
import trio_asyncio
from conftest import Raw, us_number
from engine_helpers import engine_settings, rule, start
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.store import accounts
from gateway.vocabulary import WEEKDAYS, Disposition

LIVE_NUMBER = us_number(9000)  # the engine test's one contact: a long call
TALK_SECONDS = 4.0
EXAMPLES = 60


@pytest.fixture
def settings_overrides():
    return engine_settings([rule(LIVE_NUMBER, "answered", talk=TALK_SECONDS)])


@pytest.fixture
async def campaign(create_campaign, raw) -> uuid.UUID:
    """A paused campaign of 100 contacts (retries_per_contact 2: 3 attempts), its zone 0
    in New York."""
    csv = ("phone_number\n" + "\n".join(us_number(i) for i in range(100)) + "\n").encode()
    created = await create_campaign(csv, retries_per_contact=2, retry_delay_seconds=300)
    assert created.status_code == 201, created.text
    campaign_id = uuid.UUID(created.json()["id"])
    await raw.execute("UPDATE campaigns SET status = 'paused', started_at = now() "
                      "WHERE id = $1", campaign_id)
    await raw.execute("INSERT INTO campaign_zones (campaign_id, zone, names) "
                      "VALUES ($1, 0, '{America/New_York}') ON CONFLICT (campaign_id, zone) "
                      "DO UPDATE SET names = EXCLUDED.names", campaign_id)
    return campaign_id


async def make_call(raw: Raw, campaign_id: uuid.UUID, seq: int, *,
                    outcome: str | None = "answered", attempt: int = 1,
                    ended_ago: timedelta = timedelta(minutes=1),
                    answered: bool | None = None) -> tuple[str, datetime | None]:
    """Contact ``seq``'s attempt ``attempt`` as the engine leaves it: live (``outcome``
    None: the contact in_progress) or recorded (answered: completed; else failed).
    Returns the call id and its ended_at."""
    now = datetime.now(UTC)
    ended_at = None if outcome is None else now - ended_ago
    dialed_at = (ended_at or now) - timedelta(seconds=40)
    answered = outcome == "answered" if answered is None else answered
    answered_at = dialed_at + timedelta(seconds=5) if answered or outcome is None else None
    status = {None: "in_progress", "answered": "completed"}.get(outcome, "failed")
    await raw.execute(
        "UPDATE contacts SET status = $3, attempts = $4, last_outcome = $5, "
        "last_attempt_at = $6 WHERE campaign_id = $1 AND seq = $2",
        campaign_id, seq, status, attempt, outcome, dialed_at)
    call_id = await raw.fetchval(
        "INSERT INTO attempts (account_id, campaign_id, contact_id, contact_seq, attempt, "
        "  phone_number, dialed_at, outcome, answered_at, connected_at, ended_at, "
        "  duration_seconds, hangup_by) "
        "SELECT cp.account_id, cp.id, coalesce(c.id, contact_id(cp.contact_id_prefix, c.seq)), "
        "  c.seq, $3, c.phone_number, $4, $5::text, $6::timestamptz, $6::timestamptz, "
        "  $7::timestamptz, CASE WHEN $5::text = 'answered' THEN 35.0 END, "
        "  CASE WHEN $5::text = 'answered' THEN 'contact' END "
        "FROM contacts c JOIN campaigns cp ON cp.id = c.campaign_id "
        "WHERE c.campaign_id = $1 AND c.seq = $2 RETURNING id",
        campaign_id, seq, attempt, dialed_at, outcome, answered_at, ended_at)
    return str(call_id), ended_at


async def contact(raw: Raw, campaign_id: uuid.UUID, seq: int):
    return await raw.fetchrow("SELECT status, next_attempt_at, disposition, last_outcome "
                              "FROM contacts WHERE campaign_id = $1 AND seq = $2",
                              campaign_id, seq)


async def attempt_row(raw: Raw, call_id: str):
    return await raw.fetchrow("SELECT outcome, disposition, callback_at, disposition_notes, "
                              "disposition_at FROM attempts WHERE id = $1",
                              uuid.UUID(call_id))


async def dnc(raw: Raw) -> list[tuple[str, str]]:
    rows = await trio_asyncio.aio_as_trio(raw.conn.fetch)(
        "SELECT number, source FROM dnc_numbers ORDER BY number")
    return [(row["number"], row["source"]) for row in rows]


def url(call_id: str) -> str:
    return f"/api/v1/calls/{call_id}/disposition"


def iso(when: datetime) -> str:
    return when.isoformat()


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def set_policy(raw: Raw, campaign_id: uuid.UUID, policy: dict) -> None:
    await raw.execute("UPDATE campaigns SET retry_policy = $2::jsonb WHERE id = $1",
                      campaign_id, json.dumps(policy))


# -- a call whose result is recorded: the contact decided again ---------------------------

async def test_voicemail_retries_the_contact_after_the_policy_delay(api, raw, campaign):
    await set_policy(raw, campaign, {"voicemail": {"delay_seconds": 600, "max_attempts": 3}})
    call_id, ended_at = await make_call(raw, campaign, 0)
    response = await api.post(url(call_id), json={"disposition": "voicemail",
                                                  "notes": "left a message"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["outcome"], body["disposition"]) == (call_id, "answered",
                                                                 "voicemail")
    assert (body["callback_at"], body["disposition_notes"]) == (None, "left a message")
    row = await contact(raw, campaign, 0)
    assert (row["status"], row["disposition"], row["last_outcome"]) == \
        ("retry_pending", "voicemail", "answered")
    # No window applies (neither the campaign nor the account has one).
    assert row["next_attempt_at"] == ended_at + timedelta(seconds=600)
    stored = await attempt_row(raw, call_id)
    assert stored["disposition_at"] is not None and stored["disposition"] == "voicemail"
    page = (await api.get(f"/api/v1/campaigns/{campaign}/calls")).json()["data"]
    assert [(c["id"], c["disposition"], c["disposition_notes"]) for c in page] == \
        [(call_id, "voicemail", "left a message")]


@pytest.mark.parametrize(("status", "attempt", "policy", "expected"), [
    ("paused", 2, {}, "retry_pending"),        # 1 + retries_per_contact = 3 attempts
    ("paused", 3, {}, "failed"),
    ("running", 1, {"voicemail": {"max_attempts": 1}}, "failed"),
    ("running", 4, {"voicemail": {"max_attempts": 5}}, "retry_pending"),
    ("completed", 1, {}, "failed"),            # a stopped campaign dials nothing more
], ids=["attempts-left", "last-attempt", "policy-one", "policy-five", "stopped"])
async def test_voicemail_fails_the_contact_without_attempts_left(
        api, raw, campaign, status, attempt, policy, expected):
    await set_policy(raw, campaign, policy)
    await raw.execute("UPDATE campaigns SET status = $2 WHERE id = $1", campaign, status)
    call_id, ended_at = await make_call(raw, campaign, 0, attempt=attempt)
    response = await api.post(url(call_id), json={"disposition": "voicemail"})
    assert response.status_code == 200, response.text
    row = await contact(raw, campaign, 0)
    assert (row["status"], row["disposition"]) == (expected, "voicemail")
    if expected == "retry_pending":  # the campaign's own delay: 300 s
        assert row["next_attempt_at"] == ended_at + timedelta(seconds=300)
    else:
        assert row["next_attempt_at"] is None


@pytest.mark.parametrize(("attempt", "expected", "events"), [
    (3, "failed", 1),          # no attempt left: the contact finishes again, as failed
    (1, "retry_pending", 0),   # retried: its retry's result will finish it
], ids=["fails", "retried"])
async def test_a_contact_failed_by_a_late_voicemail_is_announced_again(
        api, raw, campaign, attempt, expected, events):
    """A completed contact's contact.finished went out when its call ended; a voicemail
    disposition that fails it afterwards sends another, with what it finished as."""
    created = await api.post("/api/v1/webhooks", json={
        "url": "http://127.0.0.1:9/hooks", "events": ["contact.finished", "call.ended"]})
    assert created.status_code == 201, created.text
    call_id, _ = await make_call(raw, campaign, 0, attempt=attempt)
    response = await api.post(url(call_id), json={"disposition": "voicemail"})
    assert response.status_code == 200, response.text
    assert (await contact(raw, campaign, 0))["status"] == expected
    rows = await trio_asyncio.aio_as_trio(raw.conn.fetch)(
        "SELECT type, campaign_id, payload::text AS payload FROM webhook_deliveries "
        "WHERE endpoint_id = $1", uuid.UUID(created.json()["id"]))
    assert len(rows) == events
    for row in rows:
        assert (row["type"], row["campaign_id"]) == ("contact.finished", campaign)
        event = json.loads(row["payload"])
        assert event["type"] == "contact.finished"
        shown = event["data"]["contact"]
        assert (shown["status"], shown["disposition"], shown["attempts"]) == \
            ("failed", "voicemail", attempt)
        listed = (await api.get(f"/api/v1/campaigns/{campaign}/contacts")).json()["data"][0]
        assert shown["id"] == listed["id"] and listed["status"] == "failed"


def _new_york_noon(days_ahead: int) -> datetime:
    zone = ZoneInfo("America/New_York")
    day = datetime.now(zone).date() + timedelta(days=days_ahead)
    return datetime(day.year, day.month, day.day, 12, tzinfo=zone)


@pytest.mark.parametrize("window", [None, "campaign", "account"])
async def test_callback_is_due_at_callback_at_in_the_window(api, raw, campaign, window):
    callback_at = _new_york_noon(2)
    expected = callback_at
    if window is not None:  # 09:00-10:00 New York time, every day: the next morning
        win = json.dumps({"days": list(WEEKDAYS), "start": "09:00", "end": "10:00"})
        if window == "campaign":
            await raw.execute("UPDATE campaigns SET calling_window = $2::jsonb WHERE id = $1",
                              campaign, win)
        else:
            await raw.execute("UPDATE accounts SET calling_window = $2::jsonb WHERE id = "
                              "(SELECT account_id FROM campaigns WHERE id = $1)", campaign, win)
        expected = (callback_at + timedelta(days=1)).replace(hour=9)
    call_id, _ = await make_call(raw, campaign, 3, attempt=2)
    response = await api.post(url(call_id), json={"disposition": "callback",
                                                  "callback_at": iso(callback_at)})
    assert response.status_code == 200, response.text
    assert parse(response.json()["callback_at"]) == callback_at
    row = await contact(raw, campaign, 3)
    assert (row["status"], row["disposition"]) == ("retry_pending", "callback")
    assert row["next_attempt_at"] == expected


@pytest.mark.parametrize(("status", "attempt"), [("paused", 6), ("completed", 1)],
                         ids=["sixth-attempt", "stopped"])
async def test_callback_without_a_next_attempt_leaves_the_contact_completed(
        api, raw, campaign, status, attempt):
    await raw.execute("UPDATE campaigns SET status = $2 WHERE id = $1", campaign, status)
    call_id, _ = await make_call(raw, campaign, 0, attempt=attempt)
    response = await api.post(url(call_id), json={
        "disposition": "callback", "callback_at": iso(datetime.now(UTC) + timedelta(hours=1))})
    assert response.status_code == 200, response.text
    row = await contact(raw, campaign, 0)
    assert (row["status"], row["disposition"], row["next_attempt_at"]) == \
        ("completed", "callback", None)


@pytest.mark.parametrize("disposition", ["completed", "not_interested"])
async def test_done_dispositions_leave_the_contact_completed(api, raw, campaign, disposition):
    call_id, _ = await make_call(raw, campaign, 0)
    response = await api.post(url(call_id), json={"disposition": disposition})
    assert response.status_code == 200, response.text
    row = await contact(raw, campaign, 0)
    assert (row["status"], row["disposition"]) == ("completed", disposition)
    assert await dnc(raw) == []


async def test_do_not_call_lists_the_number(api, raw, campaign):
    first, _ = await make_call(raw, campaign, 0)
    second, _ = await make_call(raw, campaign, 1)
    await raw.execute("INSERT INTO dnc_numbers (account_id, number, source) "
                      "SELECT account_id, $2, 'api' FROM campaigns WHERE id = $1",
                      campaign, us_number(1))
    for call_id in (first, second):  # already listed is fine: it stays as it was listed
        response = await api.post(url(call_id), json={"disposition": "do_not_call"})
        assert response.status_code == 200, response.text
    assert await dnc(raw) == [(us_number(0), "disposition"), (us_number(1), "api")]
    for seq in (0, 1):
        row = await contact(raw, campaign, seq)
        assert (row["status"], row["disposition"]) == ("completed", "do_not_call")


async def test_an_older_attempt_does_not_decide_the_contact(api, raw, campaign):
    """The contact has been dialed again since (its latest attempt is not this call)."""
    call_id, _ = await make_call(raw, campaign, 0)
    await raw.execute("UPDATE contacts SET attempts = 2, status = 'failed' "
                      "WHERE campaign_id = $1 AND seq = 0", campaign)
    response = await api.post(url(call_id), json={"disposition": "voicemail"})
    assert response.status_code == 200, response.text
    row = await contact(raw, campaign, 0)
    assert (row["status"], row["disposition"]) == ("failed", None)


async def test_contact_pages_show_the_disposition(api, raw, campaign):
    call_id, _ = await make_call(raw, campaign, 0)
    assert (await api.post(url(call_id), json={"disposition": "not_interested"})
            ).status_code == 200
    contacts = (await api.get(f"/api/v1/campaigns/{campaign}/contacts")).json()["data"]
    assert contacts[0]["disposition"] == "not_interested"
    assert {c["disposition"] for c in contacts[1:]} == {None}


# -- a live call: kept for the recorder ---------------------------------------------------

async def test_live_call_keeps_the_disposition_for_its_result(api, raw, campaign):
    call_id, _ = await make_call(raw, campaign, 5, outcome=None)
    callback_at = datetime.now(UTC) + timedelta(days=3)
    response = await api.post(url(call_id), json={
        "disposition": "callback", "callback_at": iso(callback_at), "notes": "after 5 pm"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["outcome"], body["ended_at"], body["disposition"]) == (None, None, "callback")
    stored = await attempt_row(raw, call_id)
    assert (stored["outcome"], stored["disposition"], stored["disposition_notes"]) == \
        (None, "callback", "after 5 pm")
    assert stored["callback_at"] == callback_at
    # The contact is the recorder's to decide when the call ends.
    row = await contact(raw, campaign, 5)
    assert (row["status"], row["disposition"], row["next_attempt_at"]) == \
        ("in_progress", None, None)


async def test_result_recorded_meanwhile_is_decided_on(api, raw, campaign, db, database_url):
    """The recorder writes the call's result (attempt, then contact) at the moment the
    disposition comes: the disposition waits for the attempt row, then sees the result
    and decides the contact, which the recorder had just completed."""
    call_id, _ = await make_call(raw, campaign, 0, outcome=None)
    recorder = Raw(await trio_asyncio.aio_as_trio(asyncpg.connect)(database_url))
    answers: list[httpx.Response] = []
    try:
        await recorder.execute("BEGIN")
        await recorder.execute(
            "UPDATE attempts SET outcome = 'answered', ended_at = now(), "
            "duration_seconds = 30, hangup_by = 'contact' WHERE id = $1", uuid.UUID(call_id))
        await recorder.execute(
            "UPDATE contacts SET status = 'completed', last_outcome = 'answered' "
            "WHERE campaign_id = $1 AND seq = 0", campaign)
        async with trio.open_nursery() as nursery:
            async def post() -> None:
                answers.append(await api.post(url(call_id), json={"disposition": "voicemail"}))

            nursery.start_soon(post)
            with trio.fail_after(10):
                while await db.fetchval("testing_engine.waiting_on_a_lock") == 0:
                    await trio.sleep(0.02)
            assert answers == []  # it waits for the recorder
            await recorder.execute("COMMIT")
    finally:
        with trio.CancelScope(shield=True):
            await trio_asyncio.aio_as_trio(recorder.conn.close)()
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["outcome"] == "answered"
    row = await contact(raw, campaign, 0)
    assert (row["status"], row["disposition"]) == ("retry_pending", "voicemail")


# -- refusals -----------------------------------------------------------------------------

@pytest.mark.parametrize(("outcome", "ended_ago", "answered", "words"), [
    ("busy", timedelta(minutes=1), False, "without being answered"),
    ("agent_unavailable", timedelta(minutes=1), True, "without being answered"),
    ("interrupted", timedelta(minutes=1), True, "without being answered"),
    ("answered", timedelta(hours=24, minutes=1), True, "24 hours"),
])
async def test_calls_that_cannot_take_one_are_409(api, raw, campaign, outcome, ended_ago,
                                                  answered, words):
    call_id, _ = await make_call(raw, campaign, 0, outcome=outcome, ended_ago=ended_ago,
                                 answered=answered)
    response = await api.post(url(call_id), json={"disposition": "do_not_call"})
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "conflict" and words in error["message"]
    assert (await attempt_row(raw, call_id))["disposition"] is None
    assert await dnc(raw) == []


async def test_within_24_hours_is_accepted(api, raw, campaign):
    call_id, _ = await make_call(raw, campaign, 0, ended_ago=timedelta(hours=23, minutes=59))
    response = await api.post(url(call_id), json={"disposition": "completed"})
    assert response.status_code == 200, response.text


async def test_a_second_disposition_is_409(api, raw, campaign):
    call_id, _ = await make_call(raw, campaign, 0)
    assert (await api.post(url(call_id), json={"disposition": "voicemail"})).status_code == 200
    before = await contact(raw, campaign, 0)
    response = await api.post(url(call_id), json={"disposition": "do_not_call"})
    assert response.status_code == 409
    assert "already has a disposition (voicemail)" in response.json()["error"]["message"]
    assert (await attempt_row(raw, call_id))["disposition"] == "voicemail"
    assert await contact(raw, campaign, 0) == before and await dnc(raw) == []


async def test_unknown_and_other_accounts_calls_are_404(api, raw, campaign, db):
    call_id, _ = await make_call(raw, campaign, 0)
    other = await accounts.create_account(db, name="other", concurrent_max=5,
                                          calls_per_minute=5)
    async with httpx.AsyncClient(base_url=str(api.base_url), headers={
            "Authorization": f"Bearer {other.api_key}"}) as them:
        response = await them.post(url(call_id), json={"disposition": "do_not_call"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert call_id not in response.text
    assert (await attempt_row(raw, call_id))["disposition"] is None and await dnc(raw) == []
    response = await api.post(url(str(uuid.uuid4())), json={"disposition": "completed"})
    assert response.status_code == 404 and response.json()["error"]["message"] == \
        "call not found"
    async with httpx.AsyncClient(base_url=str(api.base_url)) as anonymous:
        assert (await anonymous.post(url(call_id), json={"disposition": "completed"})
                ).status_code == 401


def _bad_bodies() -> list[tuple[object, str]]:
    soon = iso(datetime.now(UTC) + timedelta(hours=1))
    return [
        ({}, "disposition"),
        ({"disposition": "maybe"}, "disposition"),
        ({"disposition": None}, "disposition"),
        ({"disposition": "callback"}, "callback_at"),
        ({"disposition": "callback", "callback_at": None}, "callback_at"),
        ({"disposition": "voicemail", "callback_at": soon}, "callback_at"),
        ({"disposition": "callback", "callback_at": "2020-01-01T00:00:00Z"}, "callback_at"),
        ({"disposition": "callback",
          "callback_at": iso(datetime.now(UTC) + timedelta(days=30, minutes=1))},
         "callback_at"),
        ({"disposition": "callback", "callback_at": "2031-01-01T10:00:00"}, "callback_at"),
        ({"disposition": "callback", "callback_at": "tomorrow"}, "callback_at"),
        ({"disposition": "callback", "callback_at": "0001-01-01T00:00:00+01:00"},
         "callback_at"),
        ({"disposition": "callback", "callback_at": "9999-12-31T23:59:59-05:00"},
         "callback_at"),
        ({"disposition": "completed", "notes": "n" * 2001}, "notes"),
        ({"disposition": "completed", "notes": "a\x00b"}, "notes"),
        ({"disposition": "completed", "notes": 7}, "notes"),
        ({"disposition": "completed", "colour": "red"}, "colour"),
        ([], "body"),
        ("completed", "body"),
    ]


async def test_invalid_bodies_are_400_naming_the_field(api, raw, campaign):
    call_id, _ = await make_call(raw, campaign, 0, outcome=None)
    for body, field in _bad_bodies():
        response = await api.post(url(call_id), json=body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("validation_error", field), (body, error)
        assert error["message"].startswith(f"{field}: ")
    response = await api.post(url(call_id), content=b"{not json",
                              headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "body"
    assert (await attempt_row(raw, call_id))["disposition"] is None
    # At the bound: 2,000 characters of notes are taken.
    response = await api.post(url(call_id), json={"disposition": "completed",
                                                  "notes": "é" * 2000})
    assert response.status_code == 200, response.text


async def test_messages_say_what_is_wrong_and_what_is_allowed(api, raw, campaign):
    call_id, _ = await make_call(raw, campaign, 0, outcome=None)
    cases = [({"disposition": "callback"}, "required with the callback disposition"),
             ({"disposition": "completed", "callback_at": iso(datetime.now(UTC)
                                                              + timedelta(hours=1))},
              "only given with the callback disposition"),
             ({"disposition": "callback", "callback_at": "2020-01-01T00:00:00Z"},
              "must be in the future"),
             ({"disposition": "callback", "callback_at": iso(datetime.now(UTC)
                                                             + timedelta(days=31))},
              "at most 30 days ahead"),
             ({"disposition": "maybe"}, "'voicemail'")]
    for body, words in cases:
        message = (await api.post(url(call_id), json=body)).json()["error"]["message"]
        assert words in message, (body, message)


# -- generated bodies ---------------------------------------------------------------------

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=30), st.lists(st.integers(), max_size=2),
                    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
# callback_at: ("in", seconds from now) is made into a time when the request is sent.
_TIMES = st.one_of(
    st.tuples(st.just("in"), st.integers(-86_400, 31 * 86_400)),
    st.sampled_from(["2031-01-01T10:00:00", "2031-02-30T10:00:00Z", "9999-12-31T23:59:59Z",
                     "0001-01-01T00:00:00+05:00", "2031-01-01T10:00:00+23:59", "", "now",
                     "2031-01-01", "1e9"]),
    _VALUES)
_BODIES = st.one_of(
    st.fixed_dictionaries({}, optional={
        "disposition": st.one_of(st.sampled_from([d.value for d in Disposition]),
                                 st.sampled_from(["Callback", "CALLBACK", " voicemail", ""]),
                                 _VALUES),
        "callback_at": _TIMES,
        "notes": st.one_of(st.text(max_size=40), st.text(min_size=1995, max_size=2005),
                           st.just("\x00"), _VALUES),
        "extra": _VALUES}),
    _VALUES)


def _materialise(body):
    if isinstance(body, dict) and isinstance(body.get("callback_at"), tuple):
        seconds = body["callback_at"][1]
        return {**body, "callback_at": iso(datetime.now(UTC) + timedelta(seconds=seconds))}
    return body


@pytest.mark.timeout(180)
async def test_generated_bodies_are_never_5xx_nor_half_written(api, raw, campaign):
    seqs = iter(range(100))
    seen: dict[int, int] = {}

    async def post(body):
        seq = next(seqs)
        call_id, _ = await make_call(raw, campaign, seq, outcome=None)
        dnc_before = await dnc(raw)
        response = await api.post(url(call_id), json=_materialise(body))
        return response, await attempt_row(raw, call_id), dnc_before, await dnc(raw)

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(body=_BODIES)
    def check(body):
        response, stored, dnc_before, dnc_after = trio.from_thread.run(post, body)
        status = response.status_code
        seen[status] = seen.get(status, 0) + 1
        assert status in (200, 400), (status, response.text[:300])
        if status == 400:
            error = response.json()["error"]
            assert error["code"] == "validation_error" and error["message"], error
            # A field of the body, or one it lacks (disposition; callback_at for a callback).
            named = error["field"].split(".")[0]
            assert error["field"] == "body" or named in body or \
                (named in ("disposition", "callback_at") and named not in body), error
            assert error["message"].startswith(error["field"] + ": ")
            assert stored["disposition"] is None and dnc_after == dnc_before
        else:
            answer = response.json()
            assert stored["disposition"] == answer["disposition"] == body["disposition"]
            assert (stored["callback_at"] is None) == (answer["disposition"] != "callback")
            assert stored["disposition_notes"] == body.get("notes")

    await trio.to_thread.run_sync(check, abandon_on_cancel=True)
    assert 200 in seen and 400 in seen, seen


# -- through the engine -------------------------------------------------------------------

@pytest.mark.timeout(60)
async def test_disposition_given_while_live_is_applied_when_the_call_ends(
        api, create_campaign, raw):
    created = (await create_campaign(f"phone_number\n{LIVE_NUMBER}\n".encode(),
                                     retries_per_contact=1, retry_delay_seconds=0)).json()
    await start(api, created["id"])
    calls_url = f"/api/v1/campaigns/{created['id']}/calls"
    with trio.fail_after(10):
        while not (calls := (await api.get(calls_url)).json()["data"]):
            await trio.sleep(0.05)
    assert calls[0]["outcome"] is None  # live: TALK_SECONDS of talk
    callback_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    response = await api.post(url(calls[0]["id"]), json={
        "disposition": "callback", "callback_at": iso(callback_at), "notes": "busy now"})
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] is None
    with trio.fail_after(TALK_SECONDS + 10):
        while (call := (await api.get(calls_url)).json()["data"][0])["outcome"] is None:
            await trio.sleep(0.05)
    assert (call["outcome"], call["disposition"], call["disposition_notes"]) == \
        ("answered", "callback", "busy now")
    assert parse(call["callback_at"]) == callback_at
    # The recorder decided the contact by the disposition: called back at callback_at.
    row = await contact(raw, uuid.UUID(created["id"]), 0)
    assert (row["status"], row["disposition"]) == ("retry_pending", "callback")
    assert row["next_attempt_at"] == callback_at
    campaign = (await api.get(f"/api/v1/campaigns/{created['id']}")).json()
    assert campaign["status"] == "running"
    assert (await api.post(f"/api/v1/campaigns/{created['id']}/stop")).status_code == 200
