"""Calling windows, retry policies, account settings and dispositions through the SDK (both
clients) and the CLI (``gateway campaigns create --calling-window/--retry-policy``,
``gateway settings ...``, ``gateway calls disposition ...``), against the real server on an
ephemeral port.

The calls given a disposition are written straight into the database (an answered attempt
in a paused campaign the engine leaves alone), so each answer is the route's own. Generated
JSON flags and retry policies are never a traceback nor a 5xx, and a refused one writes
nothing.
"""

from __future__ import annotations

import io
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import trio
import trio_asyncio
from conftest import API_KEY, contacts_csv, us_number
from gateway_process import clean_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli_client import run_cli

from gateway.cli_client import main
from gateway.client import (
    AsyncClient,
    CallingWindow,
    Client,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from gateway.vocabulary import POLICY_OUTCOMES, WEEKDAYS, Disposition, DncSource
from gateway.windows import CallingWindow as WindowModel
from gateway.windows import WindowError

WEEKDAYS_ONLY: CallingWindow = {"days": ["fri", "mon", "wed", "tue", "thu"], "start": "09:00",
                                "end": "20:00"}
CANONICAL = {**WEEKDAYS_ONLY, "days": ["mon", "tue", "wed", "thu", "fri"]}
POLICY = {"no_answer": {"delay_seconds": 3600, "max_attempts": 3},
          "voicemail": {"max_attempts": 2}, "busy": {"delay_seconds": 600}}
CSV = contacts_csv(5)
EXAMPLES = 40
GENERATED = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                     suppress_health_check=list(HealthCheck), print_blob=False)


def closed_today() -> CallingWindow:
    """A window on one day only, three days from today in UTC: in no US zone is it that day
    now, so every contact of a US number is outside it."""
    day = WEEKDAYS[(datetime.now(UTC).weekday() + 3) % 7]
    return {"days": [day], "start": "00:00", "end": "24:00"}


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
async def raw(aio_loop, database_url):
    """Plain SQL on a connection of its own (rows written as the engine would have)."""
    conn = await trio_asyncio.aio_as_trio(asyncpg.connect)(database_url)
    yield lambda method, *args: trio_asyncio.aio_as_trio(getattr(conn, method))(*args)
    with trio.CancelScope(shield=True):
        await trio_asyncio.aio_as_trio(conn.close)()


async def answered_call(raw, campaign_id: str, seq: int) -> str:
    """Contact ``seq``'s first attempt, answered and recorded a minute ago (the contact
    completed), in the campaign made paused; returns the call id."""
    campaign = uuid.UUID(campaign_id)
    await raw("execute", "UPDATE campaigns SET status = 'paused', started_at = now() "
                         "WHERE id = $1", campaign)
    ended_at = datetime.now(UTC) - timedelta(minutes=1)
    dialed_at = ended_at - timedelta(seconds=40)
    await raw("execute", "UPDATE contacts SET status = 'completed', attempts = 1, "
                         "last_outcome = 'answered', last_attempt_at = $3 "
                         "WHERE campaign_id = $1 AND seq = $2", campaign, seq, dialed_at)
    call_id = await raw(
        "fetchval",
        "INSERT INTO attempts (account_id, campaign_id, contact_id, contact_seq, attempt, "
        "  phone_number, dialed_at, outcome, answered_at, connected_at, ended_at, "
        "  duration_seconds, hangup_by) "
        "SELECT cp.account_id, cp.id, coalesce(c.id, contact_id(cp.contact_id_prefix, c.seq)), "
        "  c.seq, 1, c.phone_number, $3::timestamptz, 'answered', "
        "  $3::timestamptz + interval '5 s', $3::timestamptz + interval '5 s', $4, 35.0, "
        "  'contact' "
        "FROM contacts c JOIN campaigns cp ON cp.id = c.campaign_id "
        "WHERE c.campaign_id = $1 AND c.seq = $2 RETURNING id",
        campaign, seq, dialed_at, ended_at)
    return str(call_id)


# -- the SDK --------------------------------------------------------------------------------

async def test_create_with_a_window_and_a_policy_reads_them_back(gateway, agent_id, number_id):
    window = closed_today()
    async with AsyncClient(gateway.base_url, API_KEY) as client:
        created = await client.campaigns.create("windowed", agent_id, number_id, CSV,
                                                calling_window=WEEKDAYS_ONLY,
                                                retry_policy=POLICY)
        assert (created["calling_window"], created["retry_policy"]) == (CANONICAL, POLICY)
        assert isinstance(created["waiting_for_window"], int)
        again = await client.campaigns.get(created)
        assert (again["calling_window"], again["retry_policy"]) == (CANONICAL, POLICY)
        [listed] = (await client.campaigns.list())["data"]
        assert (listed["calling_window"], listed["retry_policy"]) == (CANONICAL, POLICY)

    def plain() -> tuple[dict, dict]:
        with Client(gateway.base_url, API_KEY) as client:
            closed = client.campaigns.create("closed", agent_id, number_id, CSV,
                                             calling_window=window, retry_policy={})
            default = client.campaigns.create("plain", agent_id, number_id, CSV)
            return closed, client.campaigns.get(default["id"])

    closed, default = await trio.to_thread.run_sync(plain)
    assert (closed["calling_window"], closed["retry_policy"]) == (window, {})
    assert closed["waiting_for_window"] == 5  # every contact is outside it now
    assert (default["calling_window"], default["retry_policy"]) == (None, {})
    assert default["waiting_for_window"] == 0


async def test_settings_round_trip_and_clearing(gateway, agent_id, number_id):
    closed = closed_today()
    async with AsyncClient(gateway.base_url, API_KEY) as client:
        assert await client.settings.get() == {"calling_window": None}
        assert await client.settings.update(calling_window=WEEKDAYS_ONLY) == {
            "calling_window": CANONICAL}
        assert await client.settings.get() == {"calling_window": CANONICAL}
        with pytest.raises(ValidationError) as caught:  # nothing named: nothing to change
            await client.settings.update()
        assert caught.value.field == "body"
        assert await client.settings.get() == {"calling_window": CANONICAL}

    def closed_account() -> tuple[dict, dict, dict]:
        with Client(gateway.base_url, API_KEY) as client:
            client.settings.update(calling_window=closed)
            campaign = client.campaigns.create("inherits", agent_id, number_id, CSV)
            cleared = client.settings.update(calling_window=None)
            return campaign, cleared, client.campaigns.get(campaign["id"])

    campaign, cleared, later = await trio.to_thread.run_sync(closed_account)
    # A campaign with no window of its own waits for the account's...
    assert (campaign["calling_window"], campaign["waiting_for_window"]) == (None, 5)
    # ... and calls at any hour once the account has none.
    assert cleared == {"calling_window": None}
    assert later["waiting_for_window"] == 0


async def test_dispositions_through_both_clients(gateway, agent_id, number_id, raw):
    async with AsyncClient(gateway.base_url, API_KEY) as client:
        campaign = await client.campaigns.create("disposed", agent_id, number_id, CSV,
                                                 retries_per_contact=1)
        first, second, third = [await answered_call(raw, campaign["id"], seq)
                                for seq in range(3)]
        callback_at = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
        call = await client.calls.disposition(first, Disposition.CALLBACK,
                                              callback_at=callback_at, notes="call after 5")
        assert (call["id"], call["disposition"], call["disposition_notes"]) == (
            first, "callback", "call after 5")
        assert parse(call["callback_at"]) == callback_at
        contact = (await client.campaigns.contacts(campaign))["data"][0]
        assert (contact["status"], contact["disposition"]) == ("retry_pending", "callback")
        assert parse(contact["next_attempt_at"]) == callback_at

        with pytest.raises(ConflictError):  # once only
            await client.calls.disposition(first, "completed")
        with pytest.raises(NotFoundError):
            await client.calls.disposition(str(uuid.uuid4()), "completed")
        with pytest.raises(ValidationError) as caught:
            await client.calls.disposition(second, "callback")
        assert caught.value.field == "callback_at"
        with pytest.raises(ValidationError) as caught:
            await client.calls.disposition(second, "completed", notes="x" * 2001)
        assert caught.value.field == "notes"
        with pytest.raises(ValueError, match="callback_at must be timezone-aware"):
            await client.calls.disposition(second, "callback", callback_at=datetime(2030, 1, 1))

    def do_not_call() -> tuple[dict, list, dict]:
        with Client(gateway.base_url, API_KEY) as client:
            [row] = [c for c in client.campaigns.calls(campaign["id"])["data"]
                     if c["id"] == second]
            called = client.calls.disposition(row, Disposition.DO_NOT_CALL)  # the call's dict
            listed = client.dnc.list(number=row["phone_number"])["data"]
            rfc = (datetime.now(UTC) + timedelta(days=1)).isoformat()
            return called, listed, client.calls.disposition(third, "callback", callback_at=rfc)

    called, listed, by_text = await trio.to_thread.run_sync(do_not_call)
    assert (called["disposition"], called["callback_at"]) == ("do_not_call", None)
    assert [(e["number"], e["source"]) for e in listed] == [(us_number(1), DncSource.DISPOSITION)]
    assert by_text["disposition"] == "callback" and by_text["callback_at"] is not None


async def test_bad_windows_and_policies_are_400s_naming_the_part(gateway, agent_id, number_id):
    bad = [({"calling_window": {**CANONICAL, "start": "25:00"}}, "calling_window.start"),
           ({"calling_window": {**CANONICAL, "days": []}}, "calling_window.days"),
           ({"calling_window": ["mon"]}, "calling_window"),
           ({"retry_policy": {"no_answer": {"max_attempts": 7}}},
            "retry_policy.no_answer.max_attempts"),
           ({"retry_policy": {"busy": {"delay_seconds": 5}}}, "retry_policy.busy.delay_seconds"),
           ({"retry_policy": {"answered": {}}}, "retry_policy.answered")]
    async with AsyncClient(gateway.base_url, API_KEY) as client:
        for fields, field in bad:
            with pytest.raises(ValidationError) as caught:
                await client.campaigns.create("bad", agent_id, number_id, CSV, **fields)
            assert caught.value.field == field, caught.value
            assert caught.value.message.startswith(f"{field}: ")
        assert (await client.campaigns.list())["total"] == 0
        with pytest.raises(ValidationError) as caught:
            await client.settings.update(calling_window={**CANONICAL, "end": "08:00"})
        assert caught.value.field == "calling_window.end"
        assert await client.settings.get() == {"calling_window": None}


_POLICY_VALUES = st.one_of(st.integers(-5, 3_000_000), st.sampled_from([0, 59, 60, 1, 6, 7]),
                           st.none(), st.booleans(), st.text(max_size=4), st.floats(0, 10))
_RULES = st.one_of(st.dictionaries(st.sampled_from(["delay_seconds", "max_attempts", "x"]),
                                   _POLICY_VALUES, max_size=3),
                   _POLICY_VALUES)
_POLICIES = st.one_of(st.dictionaries(st.sampled_from([*POLICY_OUTCOMES, "answered", ""]),
                                      _RULES, max_size=4),
                      st.lists(st.integers(), max_size=2), _POLICY_VALUES)


@pytest.mark.timeout(120)
async def test_generated_policies_are_stored_as_given_or_refused_whole(gateway, agent_id,
                                                                       number_id):
    seen: dict[int, int] = {}

    @GENERATED
    @given(policy=_POLICIES)
    def check(policy):
        with Client(gateway.base_url, API_KEY) as client:
            before = client.campaigns.list()["total"]
            try:
                created = client.campaigns.create("gen", agent_id, number_id, CSV,
                                                  retry_policy=policy)
            except ValidationError as exc:
                seen[400] = seen.get(400, 0) + 1
                assert exc.field and exc.field.split(".")[0] == "retry_policy", exc
                assert exc.message.startswith(f"{exc.field}: ")
                assert client.campaigns.list()["total"] == before  # nothing half-written
                return
            seen[201] = seen.get(201, 0) + 1
            # None is no policy; a given one reads back as given.
            assert created["retry_policy"] == (policy or {})
            assert client.campaigns.get(created["id"])["retry_policy"] == (policy or {})

    await trio.to_thread.run_sync(check, abandon_on_cancel=True)
    assert 201 in seen and 400 in seen, seen


# -- the CLI --------------------------------------------------------------------------------

@pytest.fixture
def cli(gateway, monkeypatch):
    """``await cli("settings", "show")`` -> (exit code, stdout, stderr)."""
    monkeypatch.delenv("GATEWAY_API_KEY", raising=False)
    monkeypatch.delenv("GATEWAY_BASE_URL", raising=False)
    return lambda *argv: run_cli(gateway, *argv)


async def ok(cli, *argv: str) -> dict:
    code, out, err = await cli(*argv)
    assert (code, err) == (0, ""), err
    return json.loads(out)


async def test_cli_campaign_window_and_policy(cli, agent_id, number_id, tmp_path):
    (tmp_path / "contacts.csv").write_bytes(CSV)
    (tmp_path / "policy.json").write_text(json.dumps(POLICY))
    create = ("campaigns", "create", "--csv", str(tmp_path / "contacts.csv"), "--name", "Q4",
              "--agent-id", agent_id, "--phone-number-id", number_id)
    created = await ok(cli, *create, "--calling-window", json.dumps(WEEKDAYS_ONLY),
                       "--retry-policy", f"@{tmp_path / 'policy.json'}")
    assert (created["calling_window"], created["retry_policy"]) == (CANONICAL, POLICY)
    shown = await ok(cli, "campaigns", "show", created["id"])
    assert (shown["calling_window"], shown["retry_policy"]) == (CANONICAL, POLICY)
    plain = await ok(cli, *create)
    assert (plain["calling_window"], plain["retry_policy"]) == (None, {})

    code, out, err = await cli(*create, "--calling-window", '{"days": ["mon"], '
                               '"start": "09:00", "end": "25:00"}')
    assert (code, out) == (1, "") and len(err.splitlines()) == 1
    assert err.startswith("gateway: validation_error: calling_window.end: ")
    code, out, err = await cli(*create, "--retry-policy", '{"no_answer": {"max_attempts": 9}}')
    assert (code, out) == (1, "")
    assert err.startswith("gateway: validation_error: retry_policy.no_answer.max_attempts: ")
    with pytest.raises(SystemExit) as exited:  # not JSON: argparse says so, exit 2
        await cli(*create, "--calling-window", "{mon}")
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        await cli(*create, "--retry-policy", f"@{tmp_path / 'missing.json'}")
    assert exited.value.code == 2
    code, out, _ = await cli("campaigns", "list")
    assert len(out.splitlines()) == 2  # the refused ones were not created


async def test_cli_settings_show_set_and_clear(cli, tmp_path):
    closed = closed_today()
    assert await ok(cli, "settings", "show") == {"calling_window": None}
    assert await ok(cli, "settings", "set", "--calling-window", json.dumps(WEEKDAYS_ONLY)) == {
        "calling_window": CANONICAL}
    assert await ok(cli, "settings", "show") == {"calling_window": CANONICAL}
    (tmp_path / "window.json").write_text(json.dumps(closed))
    assert await ok(cli, "settings", "set", "--calling-window",
                    f"@{tmp_path / 'window.json'}") == {"calling_window": closed}

    code, out, err = await cli("settings", "set", "--calling-window",
                               '{"days": ["mon", "mon"], "start": "09:00", "end": "17:00"}')
    assert (code, out) == (1, "") and len(err.splitlines()) == 1
    assert err.startswith("gateway: validation_error: calling_window.days: ")
    code, out, err = await cli("settings", "set")
    assert (code, out) == (2, "") and err == "gateway: usage: nothing to set: give " \
                                             "--calling-window\n"
    assert await ok(cli, "settings", "show") == {"calling_window": closed}
    assert await ok(cli, "settings", "set", "--calling-window", "none") == {
        "calling_window": None}
    assert await ok(cli, "settings", "show") == {"calling_window": None}


async def test_cli_calls_disposition(cli, gateway, agent_id, number_id, raw):
    async with AsyncClient(gateway.base_url, API_KEY) as client:
        campaign = await client.campaigns.create("disposed", agent_id, number_id, CSV)
    first, second = [await answered_call(raw, campaign["id"], seq) for seq in range(2)]
    callback_at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)

    call = await ok(cli, "calls", "disposition", first, "callback", "--callback-at",
                    callback_at.isoformat(), "--notes", "after lunch")
    assert (call["id"], call["disposition"], call["disposition_notes"]) == (
        first, "callback", "after lunch")
    assert parse(call["callback_at"]) == callback_at
    code, out, _ = await cli("campaigns", "calls", campaign["id"], "--table")
    header, *rows = out.splitlines()
    assert code == 0 and header.split()[-1] == "DISPOSITION"
    assert sorted(row.split()[-1] for row in rows) == ["-", "callback"]

    code, out, err = await cli("calls", "disposition", second, "completed", "--callback-at",
                               callback_at.isoformat())
    assert (code, out) == (1, "") and len(err.splitlines()) == 1
    assert err.startswith("gateway: validation_error: callback_at: is only given with ")
    code, out, err = await cli("calls", "disposition", first, "completed")
    assert (code, out) == (1, "") and err.startswith("gateway: conflict: ")
    code, out, err = await cli("calls", "disposition", str(uuid.uuid4()), "completed")
    assert (code, out, err) == (1, "", "gateway: not_found: call not found\n")
    with pytest.raises(SystemExit) as exited:  # not a disposition: argparse lists them
        await cli("calls", "disposition", second, "maybe")
    assert exited.value.code == 2
    assert (await ok(cli, "calls", "disposition", second, "not_interested"))["disposition"] == (
        "not_interested")


def _window_texts() -> st.SearchStrategy[str]:
    times = st.one_of(st.sampled_from(["00:00", "09:00", "23:59", "24:00", "9:00", "25:00",
                                       "12:60", "", "09:00:00"]),
                      st.text(max_size=6), st.integers(-1, 2400), st.none())
    days = st.one_of(st.lists(st.sampled_from([*WEEKDAYS, "MON", "monday", ""]), max_size=8),
                     st.text(max_size=4), st.none())
    windows = st.fixed_dictionaries({}, optional={"days": days, "start": times, "end": times,
                                                  "extra": st.integers()})
    as_json = st.one_of(windows, st.lists(st.integers(), max_size=2), times).map(json.dumps)
    # Not "@...": that reads a file, which a generated name would hit only by chance.
    junk = st.text(max_size=20).filter(lambda text: not text.startswith("@"))
    return st.one_of(as_json, junk, st.sampled_from(["none", "NONE", "null"]))


@pytest.mark.timeout(120)
async def test_generated_window_flags_set_it_or_change_nothing(gateway, monkeypatch):
    monkeypatch.delenv("GATEWAY_API_KEY", raising=False)
    monkeypatch.delenv("GATEWAY_BASE_URL", raising=False)
    seen: dict[int, int] = {}

    def settings_set(text: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        try:
            code = main(["settings", "set", "--calling-window", text, "--base-url",
                         gateway.base_url, "--api-key", API_KEY], stdout=out, stderr=err)
        except SystemExit as exc:  # argparse: the text is not JSON
            code = exc.code
        return code, out.getvalue(), err.getvalue()

    @GENERATED
    @given(text=_window_texts())
    def check(text):
        with Client(gateway.base_url, API_KEY) as client:
            before = client.settings.get()
            code, out, err = settings_set(text)
            seen[code] = seen.get(code, 0) + 1
            after = client.settings.get()
        if text.lower() == "none":
            expected: dict | None = None
        else:
            try:
                value = json.loads(text)
            except ValueError:
                assert (code, out, after) == (2, "", before)
                return
            try:
                expected = None if value is None else WindowModel.parse(value).to_json()
            except WindowError:
                assert (code, out, after) == (1, "", before), (text, err)
                assert len(err.splitlines()) == 1, err
                assert err.startswith("gateway: validation_error: calling_window"), err
                return
        assert (code, err) == (0, ""), (text, err)
        assert json.loads(out) == after == {"calling_window": expected}

    await trio.to_thread.run_sync(check, abandon_on_cancel=True)
    assert set(seen) == {0, 1, 2}, seen


async def test_the_gateway_command_has_them(gateway, tmp_path):
    env = clean_env(GATEWAY_BASE_URL=gateway.base_url, GATEWAY_API_KEY=API_KEY)

    async def gateway_cmd(*argv: str) -> trio.Process:
        with trio.fail_after(30):
            return await trio.run_process([sys.executable, "-m", "gateway", *argv], env=env,
                                          cwd=tmp_path, capture_stdout=True,
                                          capture_stderr=True, check=False)

    done = await gateway_cmd("settings", "set", "--calling-window", json.dumps(WEEKDAYS_ONLY))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"calling_window": CANONICAL}
    done = await gateway_cmd("settings", "show")
    assert done.returncode == 0 and json.loads(done.stdout) == {"calling_window": CANONICAL}
    done = await gateway_cmd("calls", "disposition", str(uuid.uuid4()), "voicemail")
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr == b"gateway: not_found: call not found\n"
