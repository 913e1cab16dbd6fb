"""The agent's disposition on its BYE: ``X-Disposition``, ``X-Callback-At`` and
``X-Disposition-Notes``.

The reader (``agent_disposition``) is total: generated header values, and generated
BYE datagrams through the real parser, give a disposition within its bounds or None,
never an exception. Live: a sipp agent hangs up a bridged call with the headers (the
values given on sipp's command line), and the adapter's CallResult carries them, or
carries nothing for values it cannot use (logged at debug with the call id, the notes
never logged); through the whole gateway, the stored attempt carries them and the
contact is called back at callback_at.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import structlog
import trio
from conftest import API_KEY, make_settings, multipart
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sip_harness import Answers, running_adapter, sip_settings, sipp_bridge

from gateway.logs import configure_logging
from gateway.serve import serve
from gateway.telephony.sip.headers import (
    MAX_CALLBACK_AHEAD,
    MAX_NOTES_CHARS,
    AgentDisposition,
    agent_disposition,
)
from gateway.telephony.sip.message import SipParseError, SipRequest, parse
from gateway.vocabulary import Disposition

NOW = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
EXAMPLES = 500
NOTES = "call after 5 pm, ask for Jo"
_BYE_HEAD = ("BYE sip:gw@127.0.0.1:5062 SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbye\r\n"
             "From: <sip:agent@127.0.0.1:5070>;tag=a1\r\nTo: <sip:gw@127.0.0.1>;tag=g1\r\n"
             "Call-ID: bye@127.0.0.1\r\nCSeq: 2 BYE\r\n")


def _bye(*headers: tuple[str, str]) -> SipRequest:
    return SipRequest((("Call-ID", "bye@127.0.0.1"), *headers), method="BYE", uri="sip:gw")


def _check(said: AgentDisposition | None, ignored: list[str]) -> None:
    """What any disposition read must be."""
    assert all(isinstance(reason, str) for reason in ignored)
    if said is None:
        return
    assert isinstance(said.disposition, Disposition)
    if said.disposition == Disposition.CALLBACK:
        assert said.callback_at is not None and said.callback_at.tzinfo is not None
        assert NOW < said.callback_at <= NOW + MAX_CALLBACK_AHEAD
    else:
        assert said.callback_at is None
    if said.notes is not None:
        assert 0 < len(said.notes) <= MAX_NOTES_CHARS and "\x00" not in said.notes


# -- the reader ---------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "expected"), [
    ((), None),
    ((("X-Disposition", "voicemail"),), AgentDisposition(Disposition.VOICEMAIL)),
    ((("x-disposition", " Not_Interested "),), AgentDisposition(Disposition.NOT_INTERESTED)),
    ((("X-Disposition", "callback"), ("X-Callback-At", "2026-12-03T09:30:00-05:00")),
     AgentDisposition(Disposition.CALLBACK, datetime(2026, 12, 3, 14, 30, tzinfo=UTC))),
    ((("X-Disposition", "callback"), ("X-Callback-At", "2026-12-02t16:00:00.5z")),
     AgentDisposition(Disposition.CALLBACK, datetime(2026, 12, 2, 16, 0, 0, 500000, UTC))),
    ((("X-Disposition", "do_not_call"), ("X-Disposition-Notes", f"  {NOTES} ")),
     AgentDisposition(Disposition.DO_NOT_CALL, notes=NOTES)),
    # Ignored: the callback's time (so the callback), a time without a callback, notes.
    ((("X-Disposition", "callback"),), None),
    ((("X-Disposition", "callback"), ("X-Callback-At", "2026-12-03T09:30:00")), None),
    ((("X-Disposition", "callback"), ("X-Callback-At", "2026-12-02T16:00:00Z")), None),
    ((("X-Disposition", "callback"), ("X-Callback-At", "2027-01-01T16:00:01Z")), None),
    ((("X-Disposition", "callback"), ("X-Callback-At", "2026-02-30T16:00:00Z")), None),
    ((("X-Disposition", "callback"), ("X-Callback-At", "2026-12-0³T16:00:00Z")), None),
    ((("X-Disposition", "callback"), ("X-Callback-At", "9999-12-31T23:59:59-05:00")), None),
    ((("X-Disposition", "completed"), ("X-Callback-At", "2026-12-03T09:30:00Z")),
     AgentDisposition(Disposition.COMPLETED)),
    ((("X-Disposition", "completed"), ("X-Disposition-Notes", "n" * 2001)),
     AgentDisposition(Disposition.COMPLETED)),
    ((("X-Disposition", "completed"), ("X-Disposition-Notes", "")),
     AgentDisposition(Disposition.COMPLETED)),
    ((("X-Disposition", "maybe"),), None),
    ((("X-Disposition", ""),), None),
])
def test_reads_what_it_can_use_and_ignores_the_rest(headers, expected):
    said, ignored = agent_disposition(_bye(*headers), NOW)
    assert said == expected
    _check(said, ignored)
    given_headers = {name.lower() for name, _ in headers}
    if expected is None and given_headers:
        assert ignored  # something was there: the log says why it was not used
    assert NOTES not in " ".join(ignored)


_HEADER_TEXT = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec="utf-8"), min_size=1990, max_size=2010),
    st.sampled_from([d.value for d in Disposition] + ["CALLBACK", " callback ", "callback\x00"]),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.integers(-10**6, 40 * 86_400).map(lambda s: (NOW + timedelta(seconds=s)).isoformat()))


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(disposition=st.one_of(st.none(), _HEADER_TEXT),
       callback_at=st.one_of(st.none(), _HEADER_TEXT),
       notes=st.one_of(st.none(), _HEADER_TEXT),
       repeated=st.booleans())
def test_any_header_values_give_a_disposition_or_none(disposition, callback_at, notes,
                                                      repeated):
    headers = [(name, value) for name, value in (
        ("X-Disposition", disposition), ("X-Callback-At", callback_at),
        ("X-Disposition-Notes", notes)) if value is not None]
    if repeated:
        headers += headers
    said, ignored = agent_disposition(_bye(*headers), NOW)
    _check(said, ignored)
    if said is not None and disposition is not None:
        assert said.disposition == disposition.strip().lower()


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(lines=st.lists(st.tuples(
    st.sampled_from(["X-Disposition", "x-disposition", "X-Callback-At", "X-Disposition-Notes",
                     "X-Disposition ", "X-Other"]),
    st.one_of(st.binary(max_size=40), _HEADER_TEXT.map(lambda t: t.encode("utf-8",
                                                                          "surrogatepass")))),
    max_size=4))
def test_any_bye_datagram_gives_a_disposition_or_none(lines):
    """Through the real parser: what it takes, the reader reads without an exception."""
    data = _BYE_HEAD.encode() + b"".join(name.encode() + b": " + value + b"\r\n"
                                         for name, value in lines) + b"Content-Length: 0\r\n\r\n"
    try:
        message = parse(data)
    except SipParseError:
        return
    _check(*agent_disposition(message, NOW))


def test_a_parsed_bye_with_valid_headers_is_read():
    data = (_BYE_HEAD + "X-Disposition: callback\r\nX-Callback-At: 2026-12-10T10:00:00+01:00"
            f"\r\nX-Disposition-Notes: {NOTES}\r\nContent-Length: 0\r\n\r\n").encode()
    said, ignored = agent_disposition(parse(data), NOW)
    assert said == AgentDisposition(Disposition.CALLBACK,
                                    datetime(2026, 12, 10, 9, tzinfo=UTC), NOTES)
    assert ignored == []


# -- live, with sipp ----------------------------------------------------------------------

@pytest.fixture
def debug_logs():
    """Every log event, debug ones too, as dicts (the conftest logs warnings only)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as events:
            yield events
    finally:
        configure_logging("warning", cache=False)


def _keys(disposition: str, callback_at: str, notes: str = NOTES) -> tuple[str, ...]:
    return ("-key", "disposition", disposition, "-key", "callback_at", callback_at,
            "-key", "notes", notes)


def _soon(**delta) -> datetime:
    return (datetime.now(UTC) + timedelta(**delta)).replace(microsecond=0)


async def test_agent_bye_carries_the_callback(tmp_path, debug_logs):
    callback_at = _soon(hours=3)
    async with sipp_bridge("answer_and_wait.xml", "agent_bye_disposition.xml", tmp_path,
                           agent_extra=_keys("callback", callback_at.isoformat())) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:
        request = peers.request()
        result = await adapter.dial(request, Answers(), Answers())
        assert await peers.wait() == (0, 0), peers.errors()
    sent = peers.agent.messages()
    assert "X-Disposition: callback" in sent and f"X-Callback-At: {callback_at.isoformat()}" in sent
    assert (result.outcome, result.hangup_by) == ("answered", "agent")
    assert (result.disposition, result.callback_at, result.disposition_notes) == \
        ("callback", callback_at, NOTES)
    # The notes are never logged; the disposition is, at debug, with the call id.
    assert not [e for e in debug_logs if NOTES in repr(e)]
    [event] = [e for e in debug_logs if e["event"] == "sip.agent_disposition"]
    assert (event["log_level"], event["call_id"]) == ("debug", str(request.call_id))


@pytest.mark.parametrize(("disposition", "callback_at", "expected"), [
    ("voicemail", "2026-12-03T09:30:00Z", ("voicemail", None)),   # a time without callback
    ("maybe", "2026-12-03T09:30:00Z", (None, None)),
    ("callback", "2020-01-01T00:00:00Z", (None, None)),            # not in the future
    ("callback", "next-tuesday", (None, None)),
], ids=["voicemail", "unknown", "past", "unreadable"])
async def test_values_it_cannot_use_are_ignored(tmp_path, debug_logs, disposition,
                                                callback_at, expected):
    async with sipp_bridge("answer_and_wait.xml", "agent_bye_disposition.xml", tmp_path,
                           agent_extra=_keys(disposition, callback_at)) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:
        request = peers.request()
        result = await adapter.dial(request, Answers(), Answers())
        assert await peers.wait() == (0, 0), peers.errors()
    # The call itself is as any call the agent hangs up.
    assert (result.outcome, result.hangup_by, result.sip_status) == ("answered", "agent", 200)
    assert (result.disposition, result.callback_at) == expected
    assert result.disposition_notes == (NOTES if expected[0] else None)
    [event] = [e for e in debug_logs if e["event"] == "sip.disposition_ignored"]
    assert (event["log_level"], event["call_id"]) == ("debug", str(request.call_id))
    assert not [e for e in debug_logs if NOTES in repr(e)]


async def test_contact_hanging_up_first_leaves_no_disposition(tmp_path):
    """The agent's scenario gets our BYE: it says nothing (agent_answer.xml)."""
    async with sipp_bridge("trunk_answer_then_bye.xml", "agent_answer.xml", tmp_path) as peers, \
            running_adapter(sip_settings(peers.proxy, max_call_seconds=30)) as adapter:
        result = await adapter.dial(peers.request(), Answers(), Answers())
        assert await peers.wait() == (0, 0), peers.errors()
    assert (result.hangup_by, result.disposition, result.callback_at) == \
        ("contact", None, None)


# -- through the gateway ------------------------------------------------------------------

@contextlib.asynccontextmanager
async def _gateway(database_url, tmp_path, proxy: str):
    settings = make_settings(
        database_url, tmp_path,
        telephony={"adapter": "sip", "sip": {"proxy": proxy, "bind_host": "127.0.0.1",
                                             "bind_port": 0, "ring_timeout_seconds": 5,
                                             "max_call_seconds": 30}},
        engine={"scheduler_poll_seconds": 0.05})
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(functools.partial(
            serve, settings, shutdown=shutdown, handle_signals=False, bootstrap_key=API_KEY))
        async with httpx.AsyncClient(base_url=binds[0], timeout=30, headers={
                "Authorization": f"Bearer {API_KEY}"}) as api:
            yield api
        shutdown.set()


@pytest.mark.timeout(40)
async def test_the_stored_attempt_carries_the_agents_disposition(database_url, tmp_path):
    callback_at = _soon(hours=1)
    async with sipp_bridge("answer_and_wait.xml", "agent_bye_disposition.xml", tmp_path,
                           agent_extra=_keys("callback", callback_at.isoformat())) as peers:
        async with _gateway(database_url, tmp_path, peers.proxy) as api:
            agent = (await api.post("/api/v1/agents", json={
                "name": "Ava", "sip_uri": peers.agent_uri})).json()["id"]
            number = (await api.post("/api/v1/phone-numbers",
                                     json={"number": "+14155550100"})).json()["id"]
            body, content_type = multipart(
                {"name": "sip", "agent_id": agent, "phone_number_id": number,
                 "retries_per_contact": "1"},
                {"contacts": b"phone_number\n+12025550143\n"})
            created = await api.post("/api/v1/campaigns", content=body,
                                     headers={"Content-Type": content_type})
            assert created.status_code == 201, created.text
            campaign = created.json()["id"]
            assert (await api.post(f"/api/v1/campaigns/{campaign}/start")).status_code == 200
            with trio.fail_after(20):
                while not (calls := (await api.get(f"/api/v1/campaigns/{campaign}/calls")
                                     ).json()["data"]) or calls[0]["outcome"] is None:
                    await trio.sleep(0.05)
            [contact] = (await api.get(f"/api/v1/campaigns/{campaign}/contacts")
                         ).json()["data"]
            assert (await api.post(f"/api/v1/campaigns/{campaign}/stop")).status_code == 200
        assert await peers.wait() == (0, 0), peers.errors()
    [call] = calls
    assert (call["outcome"], call["hangup_by"], call["disposition"]) == \
        ("answered", "agent", "callback")
    assert datetime.fromisoformat(call["callback_at"]) == callback_at
    assert call["disposition_notes"] == NOTES
    # The recorder decided the contact by it: called back at callback_at.
    assert (contact["status"], contact["disposition"]) == ("retry_pending", "callback")
    assert datetime.fromisoformat(contact["next_attempt_at"]) == callback_at
