"""SIP message parsing and serialisation, header values, X- headers (no network)."""

from __future__ import annotations

import uuid

import pytest
from test_sip_harness import dial_request

from gateway.telephony.sip.headers import (
    make_response,
    parse_name_addr,
    parse_uri,
    parse_via,
    top_via,
    x_header_name,
    x_header_value,
)
from gateway.telephony.sip.message import SipParseError, SipRequest, SipResponse, parse
from gateway.telephony.sip.outgoing import SipProfile, agent_invite, build_cancel, trunk_invite

COMPACT_RESPONSE = (
    b"SIP/2.0 180 Ringing\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5060;rport=5062;received=1.2.3.4;branch=z9hG4bKa,\r\n"
    b" SIP/2.0/UDP proxy.example:5070;branch=z9hG4bKb\r\n"
    b"V: SIP/2.0/UDP third.example;branch=z9hG4bKc\r\n"
    b"f: \"Gateway, Inc\" <sip:+14155550100@10.0.0.1>;tag=abc\r\n"
    b"t: <sip:+12025550143@trunk>;tag=xyz\r\n"
    b"i: call-1@10.0.0.1\r\n"
    b"CSEQ: 1 INVITE\r\n"
    b"m: <sip:callee@10.0.0.9:5080;transport=udp>\r\n"
    b"Subject: a long\r\n"
    b"\tfolded value\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"bodyEXTRA"
)


def test_compact_forms_folding_multiple_via_and_content_length():
    message = parse(COMPACT_RESPONSE)
    assert isinstance(message, SipResponse)
    assert (message.status, message.reason) == (180, "Ringing")
    vias = message.get_all("Via")
    assert [parse_via(v).branch for v in vias] == ["z9hG4bKa", "z9hG4bKb", "z9hG4bKc"]
    assert top_via(message).params["received"] == "1.2.3.4"
    assert message.call_id == "call-1@10.0.0.1" and message.get("CALL-ID") == message.call_id
    assert message.cseq == (1, "INVITE")
    assert parse_name_addr(message.get("from")).display == "Gateway, Inc"
    assert parse_name_addr(message.get("To")).tag == "xyz"
    assert parse_name_addr(message.get("contact")).uri == "sip:callee@10.0.0.9:5080;transport=udp"
    assert message.get("subject") == "a long folded value"
    assert message.body == b"body"  # Content-Length wins over trailing bytes


def test_request_round_trip_and_lf_only_lines():
    data = (b"BYE sip:gw@10.0.0.1:5060 SIP/2.0\n"
            b"Via: SIP/2.0/UDP 10.0.0.9:5080;branch=z9hG4bK9\n"
            b"From: <sip:callee@10.0.0.9>;tag=xyz\nTo: <sip:gw@10.0.0.1>;tag=abc\n"
            b"Call-ID: c1\nCSeq: 2 BYE\n\n")
    message = parse(data)
    assert isinstance(message, SipRequest)
    assert (message.method, message.uri, message.cseq) == ("BYE", "sip:gw@10.0.0.1:5060",
                                                           (2, "BYE"))
    again = parse(message.encode())
    assert again == message.__class__((*message.headers, ("Content-Length", "0")),
                                      b"", method="BYE", uri=message.uri)


def test_encode_writes_content_length_and_refuses_line_breaks():
    request = SipRequest((("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("Content-Length", "99")),
                         b"abc", method="OPTIONS", uri="sip:h")
    assert request.encode().endswith(b"Content-Length: 3\r\n\r\nabc")
    evil = SipRequest((("X-Var-a", "1\r\nEvil: yes"),), b"", method="OPTIONS", uri="sip:h")
    with pytest.raises(ValueError):
        evil.encode()


@pytest.mark.parametrize("data", [
    b"",
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n",              # no blank line
    b"SIP/2.0 200 OK\r\n\r\n",                                                 # no headers
    b"SIP/2.0 2000 OK\r\n\r\n",
    b"HELLO\r\n\r\n",
    b"invite sip:x SIP/2.0\r\n\r\n",
    b" Via: folded first\r\n\r\n",
])
def test_malformed(data):
    with pytest.raises(SipParseError):
        parse(data)


def _minimal(extra: bytes) -> bytes:
    return (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
            b"To: <sip:c@d>\r\nCall-ID: x\r\n" + extra + b"\r\n")


@pytest.mark.parametrize("extra", [b"CSeq: x INVITE\r\n", b"CSeq: 1\r\n",
                                   b"CSeq: 1 INVITE\r\nContent-Length: 10\r\n",
                                   b"CSeq: 1 INVITE\r\nContent-Length: -1\r\n",
                                   b"CSeq: 1 INVITE\r\nBad Name: x\r\n"])
def test_malformed_headers(extra):
    with pytest.raises(SipParseError):
        parse(_minimal(extra))
    assert parse(_minimal(b"CSeq: 1 INVITE\r\n")).cseq == (1, "INVITE")


def test_uris_and_name_addrs():
    uri = parse_uri("sip:+12025550143@trunk.example:5080;user=phone;lr")
    assert (uri.user, uri.host, uri.port, uri.loose_route) == ("+12025550143", "trunk.example",
                                                               5080, True)
    bare = parse_name_addr("sip:bob@host;tag=t1")
    assert (bare.uri, bare.tag) == ("sip:bob@host", "t1")
    with pytest.raises(SipParseError):
        parse_uri("tel:+1202")


def test_x_headers_are_injection_safe_and_lossless():
    assert x_header_name("first name") == "X-Var-first%20name"
    assert x_header_name("a:b\r\nc") == "X-Var-a%3Ab%0D%0Ac"
    value = x_header_value("Zoë\r\nX-Evil: 1, \"q\"")
    assert value == "Zo%C3%AB%0D%0AX-Evil%3A%201%2C%20%22q%22"
    assert all(32 < ord(char) < 127 for char in value)


def _profile() -> SipProfile:
    return SipProfile(proxy_host="trunk.example", proxy_port=5080,
                      proxy_addr=("192.0.2.1", 5080), local_host="198.51.100.7",
                      local_port=5062)


def test_trunk_invite_carries_ids_and_variables_and_no_offer():
    request = dial_request(variables={"first name": "Ada\r\nEvil: 1", "plan": "gold"},
                           agent_sip_uri="sip:ava@agents.example")
    invite = parse(trunk_invite(_profile(), request, call_id="c1@h", from_tag="ft", cseq=1,
                                branch="z9hG4bKx").encode())
    assert invite.uri == "sip:+12025550143@trunk.example:5080"
    assert invite.get("from") == "<sip:+14155550100@198.51.100.7>;tag=ft"
    assert invite.get("to") == "<sip:+12025550143@trunk.example:5080>"
    assert invite.get("via") == "SIP/2.0/UDP 198.51.100.7:5062;rport;branch=z9hG4bKx"
    assert invite.get("contact") == "<sip:+14155550100@198.51.100.7:5062>"
    assert invite.get("x-call-id") == str(request.call_id)
    assert uuid.UUID(invite.get("X-Campaign-Id")) == request.campaign_id
    assert invite.get("X-Var-first%20name") == "Ada%0D%0AEvil%3A%201"
    assert invite.get("evil") is None
    assert invite.get("x-var-plan") == "gold"
    assert invite.get("X-Agent-Uri") is None  # the agent's address is not the carrier's
    assert invite.get("content-type") is None and invite.body == b""  # the 2xx brings it


def test_agent_invite_carries_the_offer_the_context_and_the_contacts_number():
    request = dial_request(variables={"first name": "Ada"}, agent_sip_uri="sip:ava@10.0.0.7")
    offer = b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n"
    invite = parse(agent_invite(_profile(), request, "sip:ava@10.0.0.7", call_id="a1@h",
                                from_tag="af", cseq=1, branch="z9hG4bKa", body=offer).encode())
    assert invite.uri == "sip:ava@10.0.0.7"
    assert invite.get("to") == "<sip:ava@10.0.0.7>"
    assert invite.get("from") == "<sip:+12025550143@198.51.100.7>;tag=af"
    assert invite.get("x-contact-number") == "+12025550143"
    assert invite.get("x-call-id") == str(request.call_id)
    assert invite.get("x-attempt") == "1"
    assert uuid.UUID(invite.get("X-Contact-Id")) == request.contact_id
    assert invite.get("X-Var-first%20name") == "Ada"
    assert invite.get("content-type") == "application/sdp" and invite.body == offer


def test_cancel_matches_its_invite():
    invite = trunk_invite(_profile(), dial_request(), call_id="c1@h", from_tag="ft", cseq=3,
                          branch="z9hG4bKx")
    cancel = build_cancel(invite)
    assert cancel.uri == invite.uri and cancel.get("via") == invite.get("via")
    assert cancel.cseq == (3, "CANCEL") and cancel.body == b""
    for name in ("from", "to", "call-id"):
        assert cancel.get(name) == invite.get(name)


def test_make_response_adds_a_to_tag_once():
    request = parse(_minimal(b"CSeq: 1 INVITE\r\n").replace(b"SIP/2.0 200 OK",
                                                           b"INVITE sip:c@d SIP/2.0"))
    response = make_response(request, 486, "Busy Here", to_tag="t9")
    assert parse_name_addr(response.get("to")).tag == "t9"
    assert response.get("via") == request.get("via") and response.cseq == (1, "INVITE")
    tagged = make_response(parse(response.encode().replace(b"SIP/2.0 486 Busy Here",
                                                            b"BYE sip:c@d SIP/2.0")), 200,
                           "OK", to_tag="other")
    assert parse_name_addr(tagged.get("to")).tag == "t9"
