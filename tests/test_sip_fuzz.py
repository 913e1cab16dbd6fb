"""Generated datagrams against the SIP parser and the transport's dispatch (no network).

Properties: whatever the bytes, ``parse`` returns a message or raises ``SipParseError``,
a parsed message can be echoed into a reply and encoded, and ``SipTransport.dispatch``
never raises, returns nothing or a datagram to send, delivers nothing from an address
that may not send it, and counts every datagram. Inputs are random bytes and mutations
of real messages (:func:`mutate`, also used by the live test in test_sip_fuzz_live.py):
bytes flipped, inserted or cut, Unicode digits in numeric fields, NUL/CR/LF in values,
huge values, folded lines. The default suite runs a seeded, bounded sample; ``-m slow``
runs many more examples.
"""

from __future__ import annotations

import random
import re

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.telephony.sip.digest import DigestError, parse_challenge
from gateway.telephony.sip.headers import (
    make_response,
    parse_name_addr,
    parse_uri,
    parse_via,
    top_via,
)
from gateway.telephony.sip.message import SipParseError, SipRequest, SipResponse, parse
from gateway.telephony.sip.transport import Incoming, SipTransport

LOCAL, PROXY, OTHER = ("127.0.0.1", 5062), ("127.0.0.1", 5070), ("127.0.0.9", 5070)
CALL_ID, BRANCH = "c0ffee@127.0.0.1", "z9hG4bKlive"

_HEAD = (f"Via: SIP/2.0/UDP 127.0.0.1:5062;rport;branch={BRANCH}\r\n"
         "From: <sip:+14155550100@127.0.0.1>;tag=ft1\r\n"
         "To: <sip:+12025550143@127.0.0.1:5070>;tag=tt1\r\n"
         f"Call-ID: {CALL_ID}\r\n")
SEEDS = [s.encode() for s in [
    f"SIP/2.0 180 Ringing\r\n{_HEAD}CSeq: 1 INVITE\r\n"
    "Contact: <sip:127.0.0.1:5070;transport=UDP>\r\nContent-Length: 0\r\n\r\n",
    f"SIP/2.0 200 OK\r\n{_HEAD}CSeq: 1 INVITE\r\nContact: <sip:callee@127.0.0.1:5070>\r\n"
    "Record-Route: <sip:127.0.0.1:5070;lr>, <sip:p1.example;lr>\r\n"
    "Content-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\ns=-\r\n",
    f"SIP/2.0 486 Busy Here\r\n{_HEAD}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    f"SIP/2.0 401 Unauthorized\r\n{_HEAD}CSeq: 1 INVITE\r\n"
    'WWW-Authenticate: Digest realm="sipp.test", nonce="abc", qop="auth", '
    "algorithm=MD5\r\nContent-Length: 0\r\n\r\n",
    f"SIP/2.0 200 OK\r\n{_HEAD}CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
    "BYE sip:+14155550100@127.0.0.1:5062 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbye\r\n"
    "From: <sip:callee@127.0.0.1:5070>;tag=tt1\r\nTo: <sip:+14155550100@127.0.0.1>;tag=ft1"
    f"\r\nCall-ID: {CALL_ID}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.9:5080;branch=z9hG4bKo,\r\n"
    " SIP/2.0/UDP proxy.example:5070;branch=z9hG4bKp\r\nf: <sip:a@b>;tag=1\r\nt: <sip:c@d>"
    "\r\ni: probe@10.0.0.9\r\nCSeq: 7 OPTIONS\r\nl: 0\r\n\r\n",
    "INVITE sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKi\r\n"
    "From: \"A, B\" <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: in@10.0.0.9\r\n"
    "CSeq: 1 INVITE\r\nSubject: a long\r\n\tfolded value\r\nContent-Length: 0\r\n\r\n",
]]

# Digits str.isdigit() accepts: superscripts, Arabic-Indic, Devanagari, fullwidth, maths.
UNICODE_DIGITS = ["²", "¹", "٣", "۷", "१", "５", "𝟗", "①", "߀"]
CONTROLS = ["\0", "\r", "\n", "\r\n", "\x7f", "\x1b", "\x0b", "\r\n\r\n"]
_NUMBER = re.compile(rb"[0-9]+")


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random mutations of ``data``."""
    for _ in range(rng.randint(1, 3)):
        data = rng.choice(_MUTATIONS)(data, rng)
    return data


def _flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _insert(data: bytes, rng: random.Random) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + rng.randbytes(rng.randint(1, 16)) + data[at:]


def _cut(data: bytes, rng: random.Random) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + data[at + rng.randint(1, 40):]


def _unicode_digit(data: bytes, rng: random.Random) -> bytes:
    numbers = list(_NUMBER.finditer(data))
    if not numbers:
        return data
    match = rng.choice(numbers)
    digits = "".join(rng.choice(UNICODE_DIGITS) for _ in match[0]).encode()
    return data[:match.start()] + digits + data[match.end():]


def _huge_number(data: bytes, rng: random.Random) -> bytes:
    numbers = list(_NUMBER.finditer(data))
    if not numbers:
        return data
    match = rng.choice(numbers)
    number = rng.choice([b"9" * rng.randint(5, 40), b"0", b"-1", b"00000000001", b"65536"])
    return data[:match.start()] + number + data[match.end():]


def _control_in_value(data: bytes, rng: random.Random) -> bytes:
    colons = [i for i, byte in enumerate(data) if byte == ord(":")]
    at = rng.choice(colons) + 2 if colons else 0
    return data[:at] + rng.choice(CONTROLS).encode() + data[at:]


def _huge_value(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\r\n")
    i = rng.randrange(len(lines))
    lines[i] += rng.choice([b"a", b",", b";x=", b"<", b'"']) * rng.randint(1000, 60000)
    return b"\r\n".join(lines)


def _fold(data: bytes, rng: random.Random) -> bytes:
    spaces = [i for i, byte in enumerate(data) if byte == ord(" ")]
    if not spaces:
        return data
    at = rng.choice(spaces)
    return data[:at] + rng.choice([b"\r\n ", b"\r\n\t", b"\n ", b"\r\n"]) + data[at + 1:]


def _shuffle_lines(data: bytes, rng: random.Random) -> bytes:
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    op = rng.randrange(3)
    if op == 0 and len(lines) > 1:
        del lines[rng.randrange(1, len(lines))]
    elif op == 1:
        lines.insert(rng.randint(1, len(lines)), rng.choice(lines))
    else:
        rng.shuffle(lines)
    return b"\r\n".join(lines) + sep + body


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randint(0, len(data))]


_MUTATIONS = [_flip, _insert, _cut, _unicode_digit, _huge_number, _control_in_value,
              _huge_value, _fold, _shuffle_lines, _truncate]


def datagrams():
    """Random bytes, or a mutated seed message."""
    mutated = st.builds(mutate, st.sampled_from(SEEDS), st.randoms(use_true_random=False))
    return st.one_of(st.binary(max_size=2048), mutated, st.sampled_from(SEEDS))


def check_parse(data: bytes) -> None:
    try:
        message = parse(data)
    except SipParseError:
        return
    assert isinstance(message, (SipRequest, SipResponse))
    message.cseq  # noqa: B018 - validated by parse
    try:
        top_via(message)
    except SipParseError:
        pass  # dispatch reads it next: an unusable top Via is ``malformed`` there
    message.encode()  # every value of a parsed message can go back on the wire
    for name, parser, errors in [("via", parse_via, SipParseError),
                                 ("contact", parse_name_addr, SipParseError),
                                 ("record-route", parse_name_addr, SipParseError),
                                 ("www-authenticate", parse_challenge, DigestError)]:
        for value in message.get_all(name):
            try:
                parser(value)
            except errors:
                pass
    for name in ("to", "from", "contact"):
        try:
            parse_uri(parse_name_addr(message.get(name) or "").uri)
        except SipParseError:
            pass
    if isinstance(message, SipRequest):
        try:
            make_response(message, 200, "OK", to_tag="t1").encode()
        except SipParseError:
            pass  # an unreadable To: the transport drops the reply (``unsendable``)


FAST = settings(derandomize=True, max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
LONG = settings(FAST, max_examples=20_000)


@FAST
@given(datagrams())
def test_parse_returns_a_message_or_raises_sip_parse_error(data):
    check_parse(data)


@pytest.mark.slow
@LONG
@given(datagrams())
def test_parse_long(data):
    check_parse(data)


@pytest.mark.parametrize("field", ["cseq", "length", "port", "status"])
@pytest.mark.parametrize("digit", UNICODE_DIGITS)
def test_unicode_digits_are_not_numbers(field, digit):
    """What crashed the gateway: ``isdigit()`` true, ``int()`` refusing (or misreading)."""
    data = {"cseq": SEEDS[2].replace(b"CSeq: 1", f"CSeq: {digit}".encode()),
            "length": SEEDS[2].replace(b"Length: 0", f"Length: {digit}".encode()),
            "port": SEEDS[2].replace(b"127.0.0.1:5062", f"127.0.0.1:{digit}".encode()),
            "status": SEEDS[2].replace(b"486", f"4{digit}6".encode())}[field]
    with pytest.raises(SipParseError):
        top_via(parse(data))  # a port is read from the top Via, by dispatch


@pytest.mark.parametrize("control", CONTROLS[:-1])
def test_control_characters_in_a_value_are_malformed(control):
    data = SEEDS[6].replace(b"i: probe", f"i: pr{control}obe".encode())
    with pytest.raises(SipParseError):
        parse(data)


def check_dispatch(batch: list[tuple[bytes, tuple[str, int]]], with_call: bool) -> None:
    async def main() -> None:
        transport = SipTransport(None, LOCAL, PROXY)
        transport.linger_invite("z9hG4bKgone", b"ACK", PROXY, 32)
        replies = 0
        with transport.open_inbox(CALL_ID) as inbox:
            if with_call:
                inbox.watch_transaction(BRANCH, "INVITE", PROXY)
                inbox.watch_transaction(BRANCH, "BYE", ("127.0.0.1", 5071))
            for data, source in batch:
                reply = transport.dispatch(data, source)
                if reply is not None:
                    replies += 1
                    assert isinstance(reply[0], bytes) and reply[1] in (source, PROXY)
                    parse(reply[0])  # what we send back is SIP
            while True:  # what reached the call came from where it may come from
                try:
                    incoming: Incoming = inbox._receive.receive_nowait()
                except trio.WouldBlock:
                    break
                if isinstance(incoming.message, SipResponse):
                    assert incoming.source in (PROXY, ("127.0.0.1", 5071))
                else:
                    assert incoming.source[0] == PROXY[0]
        stats = transport.statistics()
        assert stats.errors == 0
        assert stats.received == len(batch) == stats.delivered + stats.replied + stats.dropped
        assert stats.replied == replies

    trio.run(main)


SOURCES = st.sampled_from([PROXY, OTHER, ("127.0.0.1", 5071), ("127.0.0.1", 9)]) | st.tuples(
    st.ip_addresses(v=4).map(str), st.integers(1, 65535))


@FAST
@given(st.lists(st.tuples(datagrams(), SOURCES), min_size=1, max_size=8), st.booleans())
def test_dispatch_never_raises_and_counts_everything(batch, with_call):
    check_dispatch(batch, with_call)


@pytest.mark.slow
@settings(LONG, max_examples=5_000)
@given(st.lists(st.tuples(datagrams(), SOURCES), min_size=1, max_size=20), st.booleans())
def test_dispatch_long(batch, with_call):
    check_dispatch(batch, with_call)


def test_replies_that_cannot_be_built_are_dropped():
    """An unreadable To cannot take a tag: the reply is dropped and counted, not raised."""
    async def main() -> None:
        transport = SipTransport(None, LOCAL, PROXY)
        invite = SEEDS[7].replace(b"To: <sip:c@d>", b"To: <sip:c@d")
        options = SEEDS[6].replace(b"i: probe", b"i: pr\0obe")
        assert transport.dispatch(invite, OTHER)[0].startswith(b"SIP/2.0 603")
        assert transport.dispatch(options, OTHER) is None
        stats = transport.statistics()
        assert (stats.replied, stats.malformed, stats.errors) == (1, 1, 0)

    trio.run(main)
