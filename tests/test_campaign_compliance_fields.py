"""The campaign fields ``calling_window`` and ``retry_policy``: JSON text in the form,
checked at the edge (a 400 naming the part at fault, nothing created), stored canonical,
shown on the campaign with ``waiting_for_window``; and their shape in /openapi.json.

Hypothesis runs in a worker thread and calls back into the test's trio loop for HTTP and
SQL, so the conftest's time bound holds; derandomized, bounded examples.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import trio
from conftest import contacts_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.http.schemas import MAX_RETRY_DELAY_SECONDS
from gateway.vocabulary import MAX_ATTEMPTS, POLICY_OUTCOMES, WEEKDAYS
from gateway.windows import CallingWindow, WindowError

MIN_DELAY = 60  # limits.min_retry_delay_seconds, by default
WINDOW = {"days": ["fri", "mon"], "start": "09:00", "end": "17:30"}
POLICY = {"no_answer": {"delay_seconds": 3600, "max_attempts": 3},
          "voicemail": {"max_attempts": 2}, "busy": {}}
EXAMPLES = 150


def closed_everywhere_now() -> dict[str, Any]:
    """A window open all day on one day only, neither yesterday, today nor tomorrow in UTC:
    every zone's local date now is one of those three, so it is closed in all of them."""
    day = WEEKDAYS[(datetime.now(UTC).weekday() + 3) % len(WEEKDAYS)]
    return {"days": [day], "start": "00:00", "end": "24:00"}


OPEN_ALWAYS = {"days": list(WEEKDAYS), "start": "00:00", "end": "24:00"}


async def _count(db) -> int:
    return await db.fetchval("testing.count_campaigns")


async def test_window_and_policy_are_stored_canonical_and_shown(create_campaign, api):
    response = await create_campaign(calling_window=json.dumps(WINDOW),
                                     retry_policy=json.dumps(POLICY))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["calling_window"] == {"days": ["mon", "fri"], "start": "09:00",
                                         "end": "17:30"}
    assert created["retry_policy"] == POLICY
    assert isinstance(created["waiting_for_window"], int)
    shown = {k: v for k, v in created.items() if k != "import_report"}
    assert (await api.get(f"/api/v1/campaigns/{created['id']}")).json() == shown
    listed = (await api.get("/api/v1/campaigns")).json()["data"]
    assert listed == [shown]


async def test_every_outcome_and_the_bounds_are_accepted(create_campaign):
    policy = {str(outcome): {"delay_seconds": MIN_DELAY, "max_attempts": MAX_ATTEMPTS}
              for outcome in POLICY_OUTCOMES}
    policy["busy"] = {"delay_seconds": MAX_RETRY_DELAY_SECONDS, "max_attempts": 1}
    window = {"days": ["sun", "sat", "wed"], "start": "00:00", "end": "24:00"}
    response = await create_campaign(calling_window=json.dumps(window),
                                     retry_policy=json.dumps(policy))
    assert response.status_code == 201, response.text
    assert response.json()["retry_policy"] == policy
    assert response.json()["calling_window"]["days"] == ["wed", "sat", "sun"]


async def test_without_them_no_window_and_no_policy(create_campaign, api):
    for fields in ({}, {"calling_window": "", "retry_policy": " "}, {"calling_window": "null"}):
        response = await create_campaign(**fields)
        assert response.status_code == 201, (fields, response.text)
        created = response.json()
        assert (created["calling_window"], created["retry_policy"],
                created["waiting_for_window"]) == (None, {}, 0), fields
        got = (await api.get(f"/api/v1/campaigns/{created['id']}")).json()
        assert (got["calling_window"], got["retry_policy"]) == (None, {})


def _window(**changes: Any) -> str:
    return json.dumps({**WINDOW, **changes})


def _without(key: str) -> str:
    return json.dumps({k: v for k, v in WINDOW.items() if k != key})


# (form field, its text, the field the 400 names, words its message has)
BAD = [
    ("calling_window", '{"days": ["mon"]', "calling_window", "JSON"),
    ("calling_window", "mon-fri 9-5", "calling_window", "JSON"),
    ("calling_window", '["mon", "09:00", "17:00"]', "calling_window", "object"),
    ("calling_window", '"09:00-17:00"', "calling_window", "object"),
    ("calling_window", _window(days=["mon", "funday"]), "calling_window.days", "funday"),
    ("calling_window", _window(days=["mon", "tue", "mon"]), "calling_window.days", "twice"),
    ("calling_window", _window(days=[]), "calling_window.days", "non-empty"),
    ("calling_window", _window(days="mon"), "calling_window.days", "list"),
    ("calling_window", _window(days=["Mon"]), "calling_window.days", "mon, tue"),
    ("calling_window", _without("days"), "calling_window.days", "required"),
    ("calling_window", _window(start="9:00"), "calling_window.start", "HH:MM"),
    ("calling_window", _window(start="24:00", end="24:00"), "calling_window.start", "23:59"),
    ("calling_window", _window(start="12:60"), "calling_window.start", "HH:MM"),
    ("calling_window", _window(start=900), "calling_window.start", "HH:MM"),
    ("calling_window", _window(end="24:01"), "calling_window.end", "24:00"),
    ("calling_window", _window(start="17:00", end="09:00"), "calling_window.end", "after"),
    ("calling_window", _window(end="09:00"), "calling_window.end", "after"),
    ("calling_window", _without("end"), "calling_window.end", "required"),
    ("calling_window", _window(timezone="UTC"), "calling_window.timezone", "days, start"),
    ("retry_policy", '{"busy": {}', "retry_policy", "JSON"),
    ("retry_policy", "[]", "retry_policy", "object"),
    ("retry_policy", "null", "retry_policy", "object"),
    ("retry_policy", '{"answered": {}}', "retry_policy.answered", "no_answer"),
    ("retry_policy", '{"interrupted": {"max_attempts": 2}}', "retry_policy.interrupted",
     "busy"),
    ("retry_policy", '{"busy": 3}', "retry_policy.busy", "object"),
    ("retry_policy", '{"busy": {"tries": 2}}', "retry_policy.busy.tries", "max_attempts"),
    ("retry_policy", '{"busy": {"max_attempts": 0}}', "retry_policy.busy.max_attempts", "1"),
    ("retry_policy", '{"no_answer": {"max_attempts": 7}}',
     "retry_policy.no_answer.max_attempts", "6"),
    ("retry_policy", '{"busy": {"max_attempts": 2.5}}', "retry_policy.busy.max_attempts",
     "integer"),
    ("retry_policy", '{"busy": {"max_attempts": "2"}}', "retry_policy.busy.max_attempts",
     "integer"),
    ("retry_policy", '{"busy": {"max_attempts": true}}', "retry_policy.busy.max_attempts",
     "integer"),
    ("retry_policy", '{"busy": {"max_attempts": null}}', "retry_policy.busy.max_attempts",
     "integer"),
    ("retry_policy", '{"failed": {"delay_seconds": 59}}',
     "retry_policy.failed.delay_seconds", "at least 60"),
    ("retry_policy", '{"failed": {"delay_seconds": -1}}',
     "retry_policy.failed.delay_seconds", "0"),
    ("retry_policy", json.dumps({"voicemail": {"delay_seconds": MAX_RETRY_DELAY_SECONDS + 1}}),
     "retry_policy.voicemail.delay_seconds", str(MAX_RETRY_DELAY_SECONDS)),
    ("retry_policy", '{"busy": {"delay_seconds": 600.5}}', "retry_policy.busy.delay_seconds",
     "integer"),
    ("retry_policy", '{"busy": {"delay_seconds": "600"}}', "retry_policy.busy.delay_seconds",
     "integer"),
]


async def test_every_invalid_shape_is_400_naming_the_part(create_campaign, db):
    # One server for the whole table: each gateway fixture costs a database and a start.
    for form_field, text, field, words in BAD:
        case = f"{form_field}={text}"
        before = await _count(db)
        response = await create_campaign(**{form_field: text})
        assert response.status_code == 400, (case, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error", case
        assert error["field"] == field, (case, error)
        assert error["message"].startswith(f"{field}: "), (case, error)
        assert words in error["message"], (case, error)
        assert await _count(db) == before == 0, case
        assert await db.fetchval("testing.count_contacts") == 0, case


async def test_configured_minimum_delay_applies_to_the_policy(create_campaign):
    # Exactly the minimum is fine; one second less is not (the same rule as
    # retry_delay_seconds).
    ok = await create_campaign(retry_policy=json.dumps({"busy": {"delay_seconds": MIN_DELAY}}))
    assert ok.status_code == 201, ok.text
    low = await create_campaign(retry_policy=json.dumps(
        {"busy": {"delay_seconds": MIN_DELAY}, "no_answer": {"delay_seconds": MIN_DELAY - 1}}))
    assert low.status_code == 400
    assert low.json()["error"]["field"] == "retry_policy.no_answer.delay_seconds"


async def test_waiting_for_window_counts_contacts_outside_it(create_campaign, api):
    """Pending contacts of a campaign whose window is closed in every zone now are all
    waiting; under a window open all week, none. (Counted by zone: the rows the import
    writes in campaign_zones.)"""
    closed = await create_campaign(contacts_csv(3),
                                   calling_window=json.dumps(closed_everywhere_now()))
    assert closed.status_code == 201, closed.text
    opened = await create_campaign(contacts_csv(2), calling_window=json.dumps(OPEN_ALWAYS))
    assert opened.status_code == 201, opened.text
    for response, pending, waiting in ((closed, 3, 3), (opened, 2, 0)):
        campaign = response.json()
        assert campaign["contact_counts"]["pending"] == pending
        assert campaign["waiting_for_window"] == waiting
        got = (await api.get(f"/api/v1/campaigns/{campaign['id']}")).json()
        assert got["waiting_for_window"] == waiting
    listed = {c["id"]: c["waiting_for_window"]
              for c in (await api.get("/api/v1/campaigns")).json()["data"]}
    assert listed == {closed.json()["id"]: 3, opened.json()["id"]: 0}


async def test_openapi_shows_the_shapes(api):
    spec = (await api.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    form = spec["paths"]["/api/v1/campaigns"]["post"]["requestBody"]["content"][
        "multipart/form-data"]["schema"]
    form = schemas[form["$ref"].rsplit("/", 1)[1]] if "$ref" in form else form
    window_ref = json.dumps(form["properties"]["calling_window"])
    assert "CallingWindowIn" in window_ref and "RetryPolicy" in json.dumps(
        form["properties"]["retry_policy"])
    window = schemas["CallingWindowIn"]
    assert window["properties"]["days"]["items"]["enum"] == list(WEEKDAYS)
    assert window["properties"]["days"]["minItems"] == 1
    start, end = window["properties"]["start"]["pattern"], window["properties"]["end"]["pattern"]
    assert "24:00" in end and "24:00" not in start
    assert window["examples"] and window["additionalProperties"] is False
    policy = schemas["RetryPolicy"]
    assert set(policy["properties"]) == set(POLICY_OUTCOMES)
    assert policy["additionalProperties"] is False
    rule = schemas["RetryRule"]["properties"]
    assert (rule["max_attempts"]["minimum"], rule["max_attempts"]["maximum"]) == \
        (1, MAX_ATTEMPTS)
    assert (rule["delay_seconds"]["minimum"], rule["delay_seconds"]["maximum"]) == \
        (0, MAX_RETRY_DELAY_SECONDS)
    out = schemas["CampaignOut"]["properties"]
    assert {"calling_window", "retry_policy", "waiting_for_window"} <= set(out)
    assert "outside" in out["waiting_for_window"]["description"]


# Generated fields: valid and invalid mixed, JSON or not. Valid ones are drawn on their own
# too (in any day order), so about half of the forms are accepted.
def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


VALID_WINDOWS = st.builds(
    lambda days, start, length: {"days": days, "start": _hhmm(start),
                                 "end": _hhmm(min(start + length, 24 * 60))},
    st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True),
    st.integers(0, 24 * 60 - 1), st.integers(1, 24 * 60))
_TIMES = st.one_of(
    st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 24), st.integers(0, 60)),
    st.sampled_from(["24:00", "9:00", "09:00:00", " 09:00", "09:0", "", "noon"]),
    st.integers(-1, 2400), st.none())
_DAYS = st.one_of(st.lists(st.sampled_from([*WEEKDAYS, "Mon", "monday", ""]), max_size=9),
                  st.sampled_from(list(WEEKDAYS)), st.none())
_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=8),
                  st.lists(st.integers(), max_size=2))
WINDOWS = st.one_of(
    st.fixed_dictionaries({"days": _DAYS, "start": _TIMES, "end": _TIMES},
                          optional={"zone": st.text(max_size=5)}),
    _JUNK)
_OUTCOMES = list(map(str, POLICY_OUTCOMES))
VALID_POLICIES = st.dictionaries(
    st.sampled_from(_OUTCOMES),
    st.fixed_dictionaries({}, optional={
        "delay_seconds": st.integers(MIN_DELAY, MAX_RETRY_DELAY_SECONDS),
        "max_attempts": st.integers(1, MAX_ATTEMPTS)}),
    max_size=len(_OUTCOMES))
_NUMBERS = st.one_of(st.integers(-2, 8), st.integers(MIN_DELAY - 2, MIN_DELAY + 2),
                     st.integers(MAX_RETRY_DELAY_SECONDS - 1, MAX_RETRY_DELAY_SECONDS + 1),
                     st.floats(allow_infinity=True, allow_nan=True), st.booleans(),
                     st.text(max_size=3), st.none())
RULES = st.one_of(st.fixed_dictionaries({}, optional={"delay_seconds": _NUMBERS,
                                                      "max_attempts": _NUMBERS,
                                                      "attempts": st.integers()}),
                  _JUNK)
POLICIES = st.one_of(
    st.dictionaries(st.sampled_from([*_OUTCOMES, "answered", "x"]), RULES, max_size=6),
    _JUNK)
# The field's text: JSON of a generated value, or any text at all; None: the field is absent.
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


def _field(valid, values):
    valid_text = valid.map(json.dumps)
    return st.one_of(valid_text, valid_text, valid_text, valid_text, values.map(json.dumps),
                     _TEXT, st.none())


def expected_window(text: str | None) -> tuple[bool, Any]:
    """(valid, what is stored) for the calling_window field's text."""
    if text is None or not text.strip():
        return True, None
    try:
        value = json.loads(text)
    except ValueError:
        return False, None
    if value is None:
        return True, None
    try:
        return True, CallingWindow.parse(value).to_json()
    except WindowError:
        return False, None


def _valid_number(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def expected_policy(text: str | None) -> tuple[bool, Any]:
    """(valid, what is stored) for the retry_policy field's text."""
    if text is None or not text.strip():
        return True, {}
    try:
        value = json.loads(text)
    except ValueError:
        return False, None
    if not isinstance(value, dict) or not set(value) <= set(POLICY_OUTCOMES):
        return False, None
    for rule in value.values():
        if not isinstance(rule, dict) or not set(rule) <= {"delay_seconds", "max_attempts"}:
            return False, None
        if "delay_seconds" in rule and not _valid_number(rule["delay_seconds"], MIN_DELAY,
                                                         MAX_RETRY_DELAY_SECONDS):
            return False, None
        if "max_attempts" in rule and not _valid_number(rule["max_attempts"], 1, MAX_ATTEMPTS):
            return False, None
    return True, value


async def test_generated_fields_are_stored_exactly_or_refused(create_campaign, db):
    seen = {"created": 0, "refused": 0}

    async def post(fields: dict[str, str]):
        before = await _count(db)
        response = await create_campaign(**fields)
        return response, before, await _count(db)

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(window=_field(VALID_WINDOWS, WINDOWS), policy=_field(VALID_POLICIES, POLICIES))
    def check(window, policy):
        fields = {name: text for name, text in (("calling_window", window),
                                                ("retry_policy", policy)) if text is not None}
        response, before, after = trio.from_thread.run(post, fields)
        assert response.status_code in (201, 400), (fields, response.text)
        window_ok, window_stored = expected_window(window)
        policy_ok, policy_stored = expected_policy(policy)
        if window_ok and policy_ok:
            assert response.status_code == 201, (fields, response.text)
            body = response.json()
            assert body["calling_window"] == window_stored, fields
            assert body["retry_policy"] == policy_stored, fields
            assert after == before + 1
            seen["created"] += 1
        else:
            assert response.status_code == 400, (fields, response.text)
            error = response.json()["error"]
            part = "calling_window" if not window_ok else "retry_policy"
            assert error["field"].startswith(part), (fields, error)
            assert error["message"].startswith(f"{error['field']}: "), error
            assert after == before, fields
            seen["refused"] += 1

    await trio.to_thread.run_sync(check)
    assert seen["created"] and seen["refused"], seen  # both sides were reached
