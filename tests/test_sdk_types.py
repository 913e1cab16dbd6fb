"""The SDK's return types (``gateway.client.types``) against the live API.

Each object the real server returns, on an ephemeral port, must have exactly the keys its
``TypedDict`` declares, nested objects included, and each status or outcome must be one of
its ``Literal``'s words; and each ``Literal`` must list the words of ``gateway.vocabulary``. So
the types cannot drift from the API, nor from the vocabulary.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from contextlib import aclosing
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
    AgentStatus,
    CampaignStatus,
    ContactStatus,
    HangupBy,
    Outcome,
    RejectionReason,
)

FAST_DIALING = {**engine_settings([rule("*", "answered", ring=0.05)]),
                "sse": {"tick_seconds": 0.05, "heartbeat_seconds": 0.5}}
# Three contacts, and a rejected row of each reason: invalid, duplicate, empty, column count.
CSV = (b"phone_number,first_name\n+12025550143,Ann\n+12025550144,Bob\nnot a number,Cy\n"
       b"+12025550143,Ann again\n,Nobody\n+12025550145,Dee\n+12025550146,Eve,extra\n")
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
            assert all(isinstance(key, str) and isinstance(item, str)
                       for key, item in value.items()), where
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
        assert sorted(value) == sorted(fields), (
            f"{where} ({kind.__name__}): the API's keys less the type's: "
            f"{sorted(set(value) - set(fields))}; the type's less the API's: "
            f"{sorted(set(fields) - set(value))}")
        for name, hint in fields.items():
            if getattr(hint, "__parameters__", ()):
                hint = hint[tuple(bindings[param] for param in hint.__parameters__)]
            elif hint in bindings:
                hint = bindings[hint]
            self.check(value[name], hint, f"{where}.{name}")


@pytest.mark.parametrize("literal, words", [
    (sdk_types.CampaignStatusValue, CampaignStatus), (sdk_types.ContactStatusValue, ContactStatus),
    (sdk_types.AgentStatusValue, AgentStatus), (sdk_types.OutcomeValue, Outcome),
    (sdk_types.RejectionReasonValue, RejectionReason), (sdk_types.HangupByValue, HangupBy)])
def test_the_literals_are_the_vocabulary(literal, words):
    assert list(get_args(literal)) == [word.value for word in words]


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


@pytest.mark.parametrize("settings_overrides", [FAST_DIALING])
async def test_every_object_the_api_returns_has_exactly_its_types_keys(gateway):
    checker = Checker()
    check, T = checker.check, sdk_types

    async with AsyncClient(gateway.base_url, API_KEY) as client:
        check(await client.call_limits(), T.CallLimits, "call_limits()")
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

        created = await client.campaigns.create("types", agent, number, contacts=CSV,
                                                max_concurrent_calls=2)
        check(created, T.CreatedCampaign, "campaigns.create")
        report = created["import_report"]
        assert report["rows_accepted"] == 3
        assert {row["reason"] for row in report["rejected"]} == set(RejectionReason)
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
        contacts = await client.campaigns.contacts(created)
        assert {contact["last_outcome"] for contact in contacts["data"]} == {"answered"}
        check(contacts, T.Page[T.Contact], "contacts (dialed)")
        calls = await client.campaigns.calls(created)
        assert len(calls["data"]) == 3 and calls["data"][0]["duration_seconds"] is not None
        assert {call["hangup_by"] for call in calls["data"]} == {"contact"}
        assert all(call["connected_at"] is not None for call in calls["data"])
        check(calls, T.Page[T.CallAttempt], "calls")

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
