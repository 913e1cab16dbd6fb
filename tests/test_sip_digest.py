"""Digest authentication against the RFCs' worked examples (no network), and the rule that
only the trunk's challenges are answered (against sipp)."""

from __future__ import annotations

import pytest
from ports import free_udp_port
from test_sip_harness import (
    Answers,
    running_adapter,
    sip_settings,
    sipp_bridge,
    sipp_uas,
)

from gateway.telephony.sip.digest import (
    Challenge,
    DigestError,
    authorization,
    digest_response,
    parse_auth_params,
    parse_challenge,
)


def test_rfc_2617_worked_example():
    challenge = parse_challenge('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                                'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                                'opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    assert challenge.qop == ("auth", "auth-int")
    response = digest_response(challenge, username="Mufasa", password="Circle Of Life",
                               method="GET", uri="/dir/index.html", cnonce="0a4f113b", nc=1)
    assert response == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc_7616_worked_examples(algorithm, expected):
    challenge = parse_challenge(
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    response = digest_response(challenge, username="Mufasa", password="Circle of Life",
                               method="GET", uri="/dir/index.html", nc=1,
                               cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    assert response == expected


def test_authorization_header_with_qop():
    challenge = Challenge("sipp.test", "abc", qop=("auth",), opaque="op")
    header = authorization(challenge, username="gw", password="pw", method="INVITE",
                           uri="sip:+12025550143@trunk", cnonce="c0ffee")
    params = parse_auth_params(header.removeprefix("Digest "))
    assert params == {"username": "gw", "realm": "sipp.test", "nonce": "abc",
                      "uri": "sip:+12025550143@trunk", "algorithm": "MD5", "opaque": "op",
                      "qop": "auth", "nc": "00000001", "cnonce": "c0ffee",
                      "response": digest_response(challenge, username="gw", password="pw",
                                                  method="INVITE", cnonce="c0ffee",
                                                  uri="sip:+12025550143@trunk")}


def test_without_qop_is_rfc_2069_style():
    challenge = parse_challenge('Digest realm="r", nonce="n"')
    header = authorization(challenge, username="u", password="p", method="BYE", uri="sip:x")
    assert "qop" not in header and "cnonce" not in header and "nc=" not in header


def test_quoted_commas_and_escapes():
    params = parse_auth_params('realm="a, b", nonce="x\\"y", stale=TRUE,algorithm=MD5-sess')
    assert params == {"realm": "a, b", "nonce": 'x"y', "stale": "TRUE",
                      "algorithm": "MD5-sess"}
    challenge = parse_challenge('Digest realm="a, b", nonce="n", stale=TRUE, '
                                'algorithm=MD5-sess, qop="auth"')
    assert challenge.stale and challenge.algorithm == "MD5-SESS"
    assert len(digest_response(challenge, username="u", password="p", method="INVITE",
                               uri="sip:x", cnonce="c")) == 32


@pytest.mark.parametrize("value", [
    'Basic realm="r"',
    'Digest nonce="n"',
    'Digest realm="r", nonce="n", algorithm=SHA-512-256',
])
def test_unanswerable_challenges(value):
    with pytest.raises(DigestError):
        parse_challenge(value)


def test_auth_int_only_is_unanswerable():
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
    with pytest.raises(DigestError):
        digest_response(challenge, username="u", password="p", method="INVITE", uri="sip:x")


async def test_challenge_from_beyond_the_trunk_is_not_answered(tmp_path):
    """The trunk's 200 names another UA as the far end (its Contact): the ACK and the BYE
    go there, and its 401 to the BYE is a final like any other: no credentials leave for
    it, nor for the agent's leg."""
    far_port = free_udp_port()
    (tmp_path / "far").mkdir()
    async with sipp_uas("far_end_challenges_bye.xml", tmp_path / "far", port=far_port) as far, \
            sipp_bridge("trunk_contact_elsewhere.xml", "agent_answer.xml", tmp_path,
                        trunk_extra=("-key", "farport", str(far_port))) as peers:
        settings = sip_settings(peers.proxy, max_call_seconds=1, username="gateway",
                                password="s3cret")
        async with running_adapter(settings) as adapter:
            result = await adapter.dial(peers.request(), Answers())
        assert await peers.wait() == (0, 0), peers.errors()
        assert await far.wait() == 0, far.errors()
    assert (result.outcome, result.sip_status) == ("answered", 200)
    assert result.hangup_by == "gateway"
    far_log, agent = far.messages(), peers.agent.messages()
    assert far_log.count("BYE sip:far@") == 1 and "Authorization:" not in far_log
    assert "401 Unauthorized" in far_log
    assert "BYE sip:" not in peers.trunk.messages()  # the dialog's far end is elsewhere
    assert agent.count("BYE sip:") == 1 and "Authorization:" not in agent
