"""The SDK's return types (``gateway.client.types``) against the live API.

Each object the real server returns, on an ephemeral port, must have exactly the keys its
``TypedDict`` declares (a ``total=False`` one: no other keys, and all its required ones),
nested objects included, and each status or outcome must be one of its ``Literal``'s words;
each ``Literal`` must list the words of ``gateway.vocabulary``; and each type that the
server's ``/openapi.json`` names as a schema has that schema's properties. So the types
cannot drift from the API, nor from the vocabulary.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args, get_origin, get_type_hints, is_typeddict

import httpx_sse
import pytest
import trio
from conftest import API_KEY
from engine_helpers import engine_settings, rule

from gateway.client import AsyncClient, Client
from gateway.client import types as sdk_types
from gateway.http import schemas
from gateway.vocabulary import (
    DO_NOT_CALL_OUTCOME,
    POLICY_OUTCOMES,
    WEEKDAYS,
    AgentStatus,
    CampaignStatus,
    ContactStatus,
    DeliveryStatus,
    Disposition,
    DncSource,
    HangupBy,
    Outcome,
    RejectionReason,
    WebhookEvent,
)

LISTED = "+12025550199"  # on the do-not-call list before the import: rejected
LISTED_LATER = "+12025550147"  # listed after the import: skipped at its turn, never dialed
# The agent gives the call to this number a disposition as it hangs up.
DISPOSED = "+12025550144"
FAST_DIALING = {**engine_settings([{**rule(DISPOSED, "answered", ring=0.05),
                                    "disposition": Disposition.NOT_INTERESTED},
                                   rule("*", "answered", ring=0.05)]),
                "sse": {"tick_seconds": 0.05, "heartbeat_seconds": 0.5}}
# Four contacts, and a rejected row of each reason: invalid, duplicate, empty, column count,
# listed, a timezone that is no zone.
CSV = (b"phone_number,first_name,timezone\n+12025550143,Ann,\n+12025550144,Bob,\n"
       b"not a number,Cy,\n+12025550143,Ann again,\n,Nobody,\n+12025550145,Dee,Europe/Paris\n"
       b"+12025550146,Eve,,extra\n+12025550199,Flo,\n+12025550148,Gus,Mars/Base\n"
       b"+12025550147,Hal,\n")
# Open at every hour of every day: dialing is not held up, and the window reads back.
ALWAYS = {"days": list(WEEKDAYS), "start": "00:00", "end": "24:00"}
POLICY = {"busy": {"delay_seconds": 600}, "no_answer": {"delay_seconds": 900,
                                                        "max_attempts": 3}}
EVERY_TYPED_DICT = {value for value in vars(sdk_types).values() if is_typeddict(value)}


class Checker:
    """Checks JSON values against the SDK's types, and remembers which TypedDicts it saw."""

    def __init__(self) -> None:
        self.seen: set[Any] = set()

    def check(self, value: Any, hint: Any, where: str) -> None:
        origin, args = get_origin(hint), get_args(hint)
        if is_typeddict(hint):
            self.check_object(value, hint, {}, where)
        elif is_typeddict(origin):  # a generic one: Page[Agent]
            self.check_object(value, origin, dict(zip(origin.__parameters__, args, strict=True)),
                              where)
        elif origin is list:
            assert isinstance(value, list), where
            for index, item in enumerate(value):
                self.check(item, args[0], f"{where}[{index}]")
        elif origin is dict:
            assert isinstance(value, dict), where
            for key, item in value.items():
                self.check(key, args[0], f"{where} key {key!r}")
                self.check(item, args[1], f"{where}.{key}")
        elif origin is Literal:
            assert value in args, f"{where}: {value!r} is not one of {args}"
        elif origin in (types.UnionType, typing.Union):
            if value is None:
                assert type(None) in args, f"{where} is null"
            else:
                [arm] = [arm for arm in args if arm is not type(None)]
                self.check(value, arm, where)
        else:
            kinds = (int, float) if hint is float else hint
            assert isinstance(value, kinds), f"{where}: {value!r} is not a {hint.__name__}"
            assert hint is bool or not isinstance(value, bool), f"{where} is a bool"

    def check_object(self, value: Any, kind: Any, bindings: dict[Any, Any],
                     where: str) -> None:
        self.seen.add(kind)
        fields = get_type_hints(kind)
        assert isinstance(value, dict), f"{where} is not an object"
        # A total=False type (RetryRule) may leave keys out; no type has keys it lacks.
        required = kind.__required_keys__
        assert set(value) <= set(fields) and required <= set(value), (
            f"{where} ({kind.__name__}): the API's keys less the type's: "
            f"{sorted(set(value) - set(fields))}; the type's less the API's: "
            f"{sorted(required - set(value))}")
        for name, hint in fields.items():
            if name not in value:
                continue
            if getattr(hint, "__parameters__", ()):
                hint = hint[tuple(bindings[param] for param in hint.__parameters__)]
            elif hint in bindings:
                hint = bindings[hint]
            self.check(value[name], hint, f"{where}.{name}")


@pytest.mark.parametrize("literal, words", [
    (sdk_types.CampaignStatusValue, CampaignStatus), (sdk_types.ContactStatusValue, ContactStatus),
    (sdk_types.AgentStatusValue, AgentStatus), (sdk_types.OutcomeValue, Outcome),
    (sdk_types.RejectionReasonValue, RejectionReason), (sdk_types.HangupByValue, HangupBy),
    (sdk_types.DncSourceValue, DncSource), (sdk_types.DispositionValue, Disposition),
    (sdk_types.WeekdayValue, WEEKDAYS),
    (sdk_types.LastOutcomeValue, [*Outcome, DO_NOT_CALL_OUTCOME]),
    (sdk_types.WebhookEventValue, WebhookEvent), (sdk_types.DeliveryStatusValue, DeliveryStatus)])
def test_the_literals_are_the_vocabulary(literal, words):
    assert list(get_args(literal)) == [str(word) for word in words]


def test_the_disposition_counts_are_the_dispositions():
    assert list(get_type_hints(sdk_types.DispositionCounts)) == list(Disposition)
    assert list(get_type_hints(sdk_types.OutcomeCounts)) == list(Outcome)


def test_the_delimiters_are_the_servers():
    server = schemas.ImportReport.model_fields["delimiter"].annotation
    assert get_args(sdk_types.Delimiter) == get_args(server)


def test_endpoints_keep_their_names_docs_and_signatures():
    with Client("http://127.0.0.1:9", API_KEY) as client:
        listing = client.campaigns.list
        assert listing.__name__ == "list"
        assert list(inspect.signature(listing).parameters) == ["status", "page"]
        assert client.agents.create.__doc__.startswith("Create an agent")
        assert "caps" in client.call_limits.__doc__
        assert list(inspect.signature(client.calls.disposition).parameters) == [
            "call", "disposition", "callback_at", "notes"]
        assert list(inspect.signature(client.settings.update).parameters) == ["calling_window"]
        assert client.calls.disposition.__doc__.startswith("Say how an answered call went")


@pytest.mark.parametrize("settings_overrides", [FAST_DIALING])
async def test_every_object_the_api_returns_has_exactly_its_types_keys(gateway):
    checker = Checker()
    check, T = checker.check, sdk_types

    async with AsyncClient(gateway.base_url, API_KEY) as client:
        check(await client.call_limits(), T.CallLimits, "call_limits()")
        check(await client.settings.get(), T.AccountSettings, "settings.get (none)")
        settings = await client.settings.update(calling_window=ALWAYS)
        assert settings == {"calling_window": ALWAYS}
        check(settings, T.AccountSettings, "settings.update")
        agent = await client.agents.create("Ava", greeting="Hi {{first_name}}",
                                           sip_uri="sip:ava@10.0.0.5")
        check(agent, T.Agent, "agents.create")
        check(await client.agents.get(agent), T.Agent, "agents.get")
        check(await client.agents.update(agent, max_concurrent_calls=4), T.Agent,
              "agents.update")
        check(await client.agents.list(), T.Page[T.Agent], "agents.list")
        number = await client.phone_numbers.create("+14155550100", label="main")
        check(number, T.PhoneNumber, "phone_numbers.create")
        check(await client.phone_numbers.get(number), T.PhoneNumber, "phone_numbers.get")
        check(await client.phone_numbers.update(number, label="b"), T.PhoneNumber,
              "phone_numbers.update")
        check(await client.phone_numbers.list(), T.Page[T.PhoneNumber], "phone_numbers.list")
        check(await client.dnc.add(["+12125550100", "(212) 555-0100"]), T.DncAdded, "dnc.add")
        dnc_report = await client.dnc.upload(b"phone_number,x\n+12125550101,a\nbogus,b\n"
                                             b"2125550101,c\n,d\n+12125550102,e,f\n")
        assert dnc_report["rows_rejected"] == 4
        check(dnc_report, T.DncUploadReport, "dnc.upload")
        check(await client.dnc.list(), T.Page[T.DncEntry], "dnc.list")
        await client.dnc.add(LISTED)
        # Nothing listens there: its deliveries fail and stay pending with their error.
        webhook = await client.webhooks.create("http://127.0.0.1:9/hooks")
        check(webhook, T.CreatedWebhook, "webhooks.create")
        check(await client.webhooks.get(webhook), T.Webhook, "webhooks.get")
        check(await client.webhooks.list(), T.Page[T.Webhook], "webhooks.list")

        created = await client.campaigns.create("types", agent, number, contacts=CSV,
                                                max_concurrent_calls=2, calling_window=ALWAYS,
                                                retry_policy=POLICY)
        check(created, T.CreatedCampaign, "campaigns.create")
        assert (created["calling_window"], created["retry_policy"]) == (ALWAYS, POLICY)
        assert set(created["retry_policy"]) <= set(POLICY_OUTCOMES)
        report = created["import_report"]
        assert report["rows_accepted"] == 4
        assert {row["reason"] for row in report["rejected"]} == set(RejectionReason)
        await client.dnc.add(LISTED_LATER)
        check(await client.campaigns.get(created), T.Campaign, "campaigns.get")
        check(await client.campaigns.list(), T.Page[T.Campaign], "campaigns.list")
        check(await client.campaigns.contacts(created), T.Page[T.Contact], "contacts (new)")

        check(await client.campaigns.start(created), T.Campaign, "campaigns.start")
        with trio.fail_after(30):
            async with aclosing(client.campaigns.stream_events(created)) as events:
                snapshots = [snapshot async for snapshot in events]
        assert snapshots[-1]["status"] == "completed"
        for index, snapshot in enumerate(snapshots):
            check(snapshot, T.Snapshot, f"stream_events[{index}]")
        assert snapshots[-1]["dispositions"][Disposition.NOT_INTERESTED] == 1
        contacts = await client.campaigns.contacts(created)
        assert {contact["last_outcome"] for contact in contacts["data"]} == {
            "answered", DO_NOT_CALL_OUTCOME}
        assert {c["phone_number"]: c["disposition"] for c in contacts["data"]}[DISPOSED] == (
            Disposition.NOT_INTERESTED)
        check(contacts, T.Page[T.Contact], "contacts (dialed)")
        calls = await client.campaigns.calls(created)
        assert len(calls["data"]) == 3 and calls["data"][0]["duration_seconds"] is not None
        assert {call["hangup_by"] for call in calls["data"]} == {"contact"}
        assert all(call["connected_at"] is not None for call in calls["data"])
        check(calls, T.Page[T.CallAttempt], "calls")
        deliveries = await client.webhooks.deliveries(webhook)
        assert deliveries["total"] > 0
        check(deliveries, T.Page[T.WebhookDelivery], "webhooks.deliveries")
        # A callback after the campaign ended: the call says so (the contact stays done).
        undisposed = next(call for call in calls["data"] if call["disposition"] is None)
        later = datetime.now(UTC) + timedelta(days=2)
        called = await client.calls.disposition(undisposed, Disposition.CALLBACK,
                                                callback_at=later, notes="after lunch")
        assert (called["disposition"], called["disposition_notes"]) == ("callback",
                                                                        "after lunch")
        assert abs(datetime.fromisoformat(called["callback_at"]) - later) < timedelta(seconds=1)
        check(called, T.CallAttempt, "calls.disposition")
        check(await client.settings.update(calling_window=None), T.AccountSettings,
              "settings.update (cleared)")

    async with gateway.client() as api:  # the end event, which the SDK does not yield
        path = f"/api/v1/campaigns/{created['id']}/events"
        with trio.fail_after(10):
            async with httpx_sse.aconnect_sse(api, "GET", path) as source:
                events = [(sse.event, json.loads(sse.data)) async for sse in source.aiter_sse()]
    assert [kind for kind, _ in events] == ["message", "end"]
    check(events[0][1], T.Snapshot, "the stream's snapshot")
    check(events[1][1], T.EndEvent, "the stream's end")
    assert events[1][1] == {"campaign_id": created["id"], "status": "completed"}

    assert checker.seen == EVERY_TYPED_DICT, "a type no live object was checked against"


# The SDK's types and the /openapi.json schemas they are (the others are not named there).
SCHEMAS = {"Agent": "AgentOut", "CallAttempt": "CallOut", "CallingWindow": "CallingWindowOut",
           "Campaign": "CampaignOut", "Contact": "ContactOut", "ContactCounts": "ContactCounts",
           "DncAdded": "DncAdded", "DncEntry": "DncEntryOut",
           "DncRejectedCounts": "DncRejectedCounts", "DncUploadReport": "DncUploaded",
           "ImportReport": "ImportReport", "PhoneNumber": "PhoneNumberOut",
           "RejectedCounts": "RejectedCounts", "RejectedRow": "RejectedRowOut",
           "RetryRule": "RetryRule"}


async def test_the_types_have_the_openapi_schemas_properties(api):
    schemas_of = (await api.get("/openapi.json")).json()["components"]["schemas"]
    for name, schema in SCHEMAS.items():
        assert sorted(get_type_hints(getattr(sdk_types, name))) == sorted(
            schemas_of[schema]["properties"]), name
    # A campaign's retry_policy: the rules by outcome, each key optional.
    assert sorted(schemas_of["RetryPolicy"]["properties"]) == sorted(POLICY_OUTCOMES)
    assert not schemas_of["RetryPolicy"].get("required")
    assert not schemas_of["RetryRule"].get("required") and sdk_types.RetryRule.__total__ is False


async def test_the_rejected_counts_have_every_reason_and_add_up(gateway):
    async with AsyncClient(gateway.base_url, API_KEY) as client:
        agent = await client.agents.create("Ava")
        number = await client.phone_numbers.create("+14155550100")
        await client.dnc.add(LISTED)
        created = await client.campaigns.create("counts", agent, number, contacts=CSV)
    report = created["import_report"]
    assert sorted(report["rejected_counts"]) == sorted(RejectionReason)
    assert sum(report["rejected_counts"].values()) == report["rows_rejected"] == 6
