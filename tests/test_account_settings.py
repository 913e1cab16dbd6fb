"""``GET`` and ``PATCH /api/v1/settings``: the account's default calling window, set,
shown, cleared, refused when invalid (naming the part, nothing changed), its own per
account, and used by the campaigns that have no window of their own."""

from __future__ import annotations

import json

import trio
from conftest import contacts_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_campaign_compliance_fields import (
    OPEN_ALWAYS,
    VALID_WINDOWS,
    WINDOWS,
    closed_everywhere_now,
)

from gateway.store import accounts
from gateway.windows import CallingWindow, WindowError

URL = "/api/v1/settings"
WEEKENDS = {"days": ["sun", "sat"], "start": "10:00", "end": "16:00"}
EXAMPLES = 100


async def _settings(client) -> dict:
    response = await client.get(URL)
    assert response.status_code == 200, response.text
    return response.json()


async def test_set_show_and_clear(api):
    assert await _settings(api) == {"calling_window": None}
    response = await api.patch(URL, json={"calling_window": WEEKENDS})
    assert response.status_code == 200, response.text
    canonical = {"days": ["sat", "sun"], "start": "10:00", "end": "16:00"}
    assert response.json() == {"calling_window": canonical}
    assert await _settings(api) == {"calling_window": canonical}
    cleared = await api.patch(URL, json={"calling_window": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json() == {"calling_window": None}
    assert await _settings(api) == {"calling_window": None}


# (body, the field the 400 names, words its message has)
BAD = [
    ({"calling_window": {**WEEKENDS, "days": ["sat", "sat"]}}, "calling_window.days", "twice"),
    ({"calling_window": {**WEEKENDS, "days": []}}, "calling_window.days", "non-empty"),
    ({"calling_window": {**WEEKENDS, "days": ["weekend"]}}, "calling_window.days", "weekend"),
    ({"calling_window": {**WEEKENDS, "start": "9:00"}}, "calling_window.start", "HH:MM"),
    ({"calling_window": {**WEEKENDS, "start": "24:00"}}, "calling_window.start", "23:59"),
    ({"calling_window": {**WEEKENDS, "end": "09:00"}}, "calling_window.end", "after"),
    ({"calling_window": {"days": ["mon"], "start": "09:00"}}, "calling_window.end", "required"),
    ({"calling_window": {**WEEKENDS, "zone": "UTC"}}, "calling_window.zone", "days, start"),
    ({"calling_window": "mon-fri"}, "calling_window", "object"),
    ({"calling_window": [WEEKENDS]}, "calling_window", "object"),
    ({"timezone": "UTC"}, "timezone", "not a known field"),
    ({"calling_window": WEEKENDS, "colour": "blue"}, "colour", "not a known field"),
    ({}, "body", "calling_window"),
    ([WEEKENDS], "body", "object"),
]


async def test_invalid_is_400_naming_the_part_and_changes_nothing(api):
    assert (await api.patch(URL, json={"calling_window": OPEN_ALWAYS})).status_code == 200
    for body, field, words in BAD:
        response = await api.patch(URL, json=body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error", body
        assert error["field"] == field, (body, error)
        assert error["message"].startswith(f"{field}: "), (body, error)
        assert words in error["message"], (body, error)
        assert await _settings(api) == {"calling_window": OPEN_ALWAYS}, body
    not_json = await api.patch(URL, content=b"{calling_window",
                               headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["error"]["field"] == "body"


async def test_each_account_has_its_own(gateway, api, db):
    other = await accounts.create_account(db, name="other", concurrent_max=1,
                                          calls_per_minute=1)
    async with gateway.client(other.api_key) as them:
        assert (await api.patch(URL, json={"calling_window": WEEKENDS})).status_code == 200
        assert await _settings(them) == {"calling_window": None}
        theirs = {"days": ["mon"], "start": "08:00", "end": "09:00"}
        assert (await them.patch(URL, json={"calling_window": theirs})).status_code == 200
        assert (await _settings(api))["calling_window"]["days"] == ["sat", "sun"]
        assert (await them.patch(URL, json={"calling_window": None})).status_code == 200
        assert (await _settings(api))["calling_window"]["days"] == ["sat", "sun"]
        assert await _settings(them) == {"calling_window": None}


async def test_campaigns_without_a_window_use_the_accounts(api, create_campaign):
    """The account's window applies to a campaign with none of its own (it is not copied
    into the campaign, which still shows null), and a campaign's own window wins. (Counted
    by zone: the rows the import writes in campaign_zones.)"""
    response = await api.patch(URL, json={"calling_window": closed_everywhere_now()})
    assert response.status_code == 200, response.text
    inherits = await create_campaign(contacts_csv(4))
    own = await create_campaign(contacts_csv(2), calling_window=json.dumps(OPEN_ALWAYS))
    assert inherits.status_code == own.status_code == 201, (inherits.text, own.text)
    assert inherits.json()["calling_window"] is None
    shown = {c["id"]: c["waiting_for_window"]
             for c in (await api.get("/api/v1/campaigns")).json()["data"]}
    assert shown == {inherits.json()["id"]: 4, own.json()["id"]: 0}
    # Cleared: nothing waits any more.
    await api.patch(URL, json={"calling_window": None})
    got = (await api.get(f"/api/v1/campaigns/{inherits.json()['id']}")).json()
    assert got["waiting_for_window"] == 0


def _expected(value) -> tuple[bool, object]:
    if value is None:
        return True, None
    try:
        return True, CallingWindow.parse(value).to_json()
    except WindowError:
        return False, None


async def test_generated_windows_are_stored_exactly_or_refused(api):
    seen = {"stored": 0, "refused": 0}

    async def patch(body):
        before = await _settings(api)
        response = await api.patch(URL, json=body)
        return response, before, await _settings(api)

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(window=st.one_of(VALID_WINDOWS, WINDOWS))
    def check(window):
        response, before, after = trio.from_thread.run(patch, {"calling_window": window})
        valid, stored = _expected(window)
        if valid:
            assert response.status_code == 200, (window, response.text)
            assert response.json() == after == {"calling_window": stored}, window
            seen["stored"] += 1
        else:
            assert response.status_code == 400, (window, response.text)
            error = response.json()["error"]
            assert error["field"].startswith("calling_window"), (window, error)
            assert error["message"].startswith(f"{error['field']}: "), error
            assert after == before, window
            seen["refused"] += 1

    await trio.to_thread.run_sync(check)
    assert seen["stored"] and seen["refused"], seen
