"""Outcome mapping, transaction timers, routing and dialogs, without the network: a
recording transport stands in where the socket is not the subject."""

from __future__ import annotations

import pytest
import trio
from test_sip_harness import dial_request

from gateway.telephony.sip.dialog import Dialog
from gateway.telephony.sip.headers import parse_name_addr, top_via
from gateway.telephony.sip.message import SipResponse, parse
from gateway.telephony.sip.outcomes import outcome_for_status
from gateway.telephony.sip.outgoing import SipProfile, trunk_invite
from gateway.telephony.sip.transaction import (
    InviteClientTransaction,
    NonInviteClientTransaction,
    Timers,
)
from gateway.telephony.sip.transport import SipTransport

PROXY = ("192.0.2.1", 5060)
PROFILE = SipProfile(proxy_host="192.0.2.1", proxy_port=5060, proxy_addr=PROXY,
                     local_host="198.51.100.7", local_port=5062)


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "answered"), (202, "answered"),
    (486, "busy"), (600, "busy"),
    (408, "no_answer"), (480, "no_answer"), (487, "no_answer"),
    (404, "invalid_number"), (484, "invalid_number"), (604, "invalid_number"),
    (401, "failed"), (403, "failed"), (500, "failed"), (503, "failed"), (603, "failed"),
    (302, "failed"), (None, "failed"),
])
def test_outcome_mapping(status, outcome):
    assert outcome_for_status(status) == outcome


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple]] = []
        self.lingering: list[tuple] = []

    async def send(self, data, dest) -> None:
        self.sent.append((data if isinstance(data, bytes) else data.encode(), dest))

    def linger_invite(self, branch, ack, dest, seconds) -> None:
        self.lingering.append((branch, ack, dest, seconds))


def _invite(cseq: int = 1):
    return trunk_invite(PROFILE, dial_request(), call_id="c1@h", from_tag="ft", cseq=cseq,
                        branch="z9hG4bKinv")


def _response(request, status: int, reason: str, to_tag: str = "tt") -> SipResponse:
    headers = [(n, v) for n, v in request.headers if n in ("Via", "From", "Call-ID", "CSeq")]
    headers.append(("To", f"{request.get('to')};tag={to_tag}"))
    return SipResponse(tuple(headers), b"", status=status, reason=reason)


async def _fire_all(transaction, transport) -> list[float]:
    """Fire every timer in turn; the send times, relative to the first send."""
    start = transaction.deadline - transaction.timers.t1
    times = [0.0]
    while not transaction.done:
        now = transaction.deadline
        before = len(transport.sent)
        await transaction.on_timer(transport, now)
        if len(transport.sent) > before:
            times.append(round(now - start, 3))
    return times


async def test_invite_timer_a_doubles_until_timer_b():
    transport = RecordingTransport()
    transaction = InviteClientTransaction(_invite(), PROXY, Timers(t1=0.5))
    await transaction.start(transport)
    assert await _fire_all(transaction, transport) == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert transaction.timed_out and transaction.final is None


async def test_non_invite_timer_e_caps_at_t2_until_timer_f():
    transport = RecordingTransport()
    bye = _invite().__class__(_invite().headers, b"", method="BYE", uri="sip:x@y")
    transaction = NonInviteClientTransaction(bye, PROXY, Timers(t1=0.5, t2=4.0))
    await transaction.start(transport)
    assert await _fire_all(transaction, transport) == [
        0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert transaction.timed_out


async def test_non_invite_retransmits_every_t2_after_a_provisional():
    transport = RecordingTransport()
    bye = _invite().__class__(_invite().headers, b"", method="BYE", uri="sip:x@y")
    transaction = NonInviteClientTransaction(bye, PROXY, Timers(t1=0.5, t2=4.0))
    await transaction.start(transport)
    await transaction.on_response(transport, _response(bye, 100, "Trying"))
    first = transaction.deadline
    await transaction.on_timer(transport, first)
    assert transaction.deadline - first == 4.0


async def test_provisional_stops_invite_retransmissions():
    transport = RecordingTransport()
    invite = _invite()
    transaction = InviteClientTransaction(invite, PROXY, Timers(t1=0.5))
    await transaction.start(transport)
    assert await transaction.on_response(transport, _response(invite, 180, "Ringing"))
    assert transaction.deadline == float("inf") and not transaction.done


async def test_non_2xx_final_is_acked_in_the_transaction():
    transport = RecordingTransport()
    invite = _invite()
    transaction = InviteClientTransaction(invite, PROXY, Timers(t1=0.5))
    await transaction.start(transport)
    busy = _response(invite, 486, "Busy Here")
    assert await transaction.on_response(transport, busy)
    assert not await transaction.on_response(transport, busy)  # a retransmission
    ack = parse(transport.sent[-1][0])
    assert (ack.method, ack.uri, ack.cseq) == ("ACK", invite.uri, (1, "ACK"))
    assert top_via(ack).branch == "z9hG4bKinv" and transport.sent[-1][1] == PROXY
    assert parse_name_addr(ack.get("to")).tag == "tt"
    assert transport.lingering[0][0] == "z9hG4bKinv" and transport.lingering[0][3] >= 32


def _request_bytes(method: str, call_id: str = "other", branch: str = "z9hG4bKr") -> bytes:
    return (f"{method} sip:gw@198.51.100.7 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch={branch}"
            f"\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 {method}\r\n\r\n").encode()


async def test_transport_routes_and_answers_statelessly():
    transport = SipTransport(None, ("198.51.100.7", 5062), PROXY)
    source = ("192.0.2.9", 5060)
    assert transport.dispatch(_request_bytes("OPTIONS"), source)[0].startswith(
        b"SIP/2.0 200 OK")
    assert transport.dispatch(_request_bytes("INVITE"), source)[0].startswith(b"SIP/2.0 603")
    assert transport.dispatch(_request_bytes("BYE"), source)[0].startswith(b"SIP/2.0 481")
    assert transport.dispatch(_request_bytes("ACK"), source) is None
    assert transport.dispatch(b"garbage", source) is None

    invite = _invite()
    with transport.open_inbox("c1@h") as inbox:
        inbox.watch_transaction("z9hG4bKinv", "INVITE", PROXY)
        assert transport.dispatch(_response(invite, 180, "Ringing").encode(), PROXY) is None
        assert (await inbox.receive()).message.status == 180
        # A 2xx whose transaction is over still reaches the call, by Call-ID.
        inbox.forget_transaction("z9hG4bKinv", "INVITE")
        transport.dispatch(_response(invite, 200, "OK").encode(), PROXY)
        assert (await inbox.receive()).message.status == 200
        transport.dispatch(_request_bytes("BYE", call_id="c1@h"), (PROXY[0], 5999))
        assert (await inbox.receive()).message.method == "BYE"
    # Gone with the call: a non-2xx is stray now, unless Timer D still ACKs it.
    assert transport.dispatch(_response(invite, 486, "Busy").encode(), PROXY) is None
    transport.linger_invite("z9hG4bKinv", b"ACK...", PROXY, 32)
    assert transport.dispatch(_response(invite, 486, "Busy").encode(), PROXY) == (
        b"ACK...", PROXY)
    stats = transport.statistics()
    assert (stats.received, stats.delivered, stats.replied) == (10, 3, 4)
    assert (stats.malformed, stats.stray, stats.dropped) == (1, 2, 3)


async def test_transport_takes_responses_and_requests_only_from_their_peers():
    transport = SipTransport(None, ("198.51.100.7", 5062), PROXY)
    invite, elsewhere = _invite(), ("203.0.113.66", 5060)
    with transport.open_inbox("c1@h") as inbox:
        inbox.watch_transaction("z9hG4bKinv", "INVITE", PROXY)
        for status in (180, 486, 200):  # a forged final from a third party: dropped
            assert transport.dispatch(_response(invite, status, "X").encode(),
                                      elsewhere) is None
        assert transport.dispatch(_response(invite, 200, "X").encode(), (PROXY[0], 5061)) \
            is None  # the proxy's host, another port: not where the INVITE went
        # A request for the call: from the proxy's host or an accepted next hop only.
        assert transport.dispatch(_request_bytes("BYE", call_id="c1@h"), elsewhere) is None
        inbox.accept_requests_from(elsewhere[0])
        transport.dispatch(_request_bytes("BYE", call_id="c1@h"), elsewhere)
        assert (await inbox.receive()).source == elsewhere
        inbox.forget_transaction("z9hG4bKinv", "INVITE")
        transport.linger_invite("z9hG4bKinv", b"ACK...", PROXY, 32)
        assert transport.dispatch(_response(invite, 486, "X").encode(), elsewhere) is None
        with pytest.raises(trio.WouldBlock):
            inbox._receive.receive_nowait()  # nothing else got through
    stats = transport.statistics()
    assert (stats.unexpected_source, stats.delivered, stats.dropped) == (6, 1, 6)


async def test_transport_repeats_answers_to_retransmitted_requests():
    transport = SipTransport(None, ("198.51.100.7", 5062), PROXY)
    bye = parse(_request_bytes("BYE", call_id="c2"))
    answer = _response(bye, 200, "OK")
    transport.remember_response(bye, answer, ("192.0.2.9", 5060))
    assert transport.dispatch(bye.encode(), ("192.0.2.9", 5060)) == (
        answer.encode(), ("192.0.2.9", 5060))


def test_dialog_uses_the_route_set_and_remote_target():
    invite = _invite()
    ok = _response(invite, 200, "OK", to_tag="rt")
    ok = SipResponse((
        *ok.headers,
        ("Contact", "<sip:callee@203.0.113.9:5080>"),
        ("Record-Route", "<sip:p2.example;lr>, <sip:p1.example;lr>")), b"", status=200,
        reason="OK")
    dialog = Dialog.from_2xx(PROFILE, invite, ok)
    bye = dialog.request("BYE", 2)
    assert bye.uri == "sip:callee@203.0.113.9:5080"
    assert bye.get_all("route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert parse_name_addr(bye.get("to")).tag == "rt" and bye.cseq == (2, "BYE")
    assert top_via(bye).branch != top_via(invite).branch
    ack = dialog.ack_for_2xx()
    assert ack.cseq == (1, "ACK") and dialog.ack_for_2xx() is ack

    strict = Dialog.from_2xx(PROFILE, invite, SipResponse(
        (*ok.headers[:-1], ("Record-Route", "<sip:strict.example>")), b"", status=200,
        reason="OK"))
    request = strict.request("BYE", 2)
    assert request.uri == "sip:strict.example"
    assert request.get_all("route") == ["<sip:callee@203.0.113.9:5080>"]


def test_dialog_matches_requests_by_tags():
    invite = _invite()
    ok = _response(invite, 200, "OK", to_tag="rt")
    dialog = Dialog.from_2xx(PROFILE, invite, ok)
    assert dialog.remote_target == invite.uri  # no Contact: back to the proxy
    ours = parse(_request_bytes("BYE", call_id="c1@h").replace(
        b"From: <sip:a@b>;tag=1", b"From: <sip:a@b>;tag=rt").replace(
        b"To: <sip:c@d>", b"To: <sip:c@d>;tag=ft"))
    assert dialog.matches(ours)
    assert not dialog.matches(parse(_request_bytes("BYE", call_id="c1@h")))
