"""What this UA sends outside a dialog: its profile, the two INVITEs of a bridged call (the
contact's, through the trunk; the agent's, straight to its ``sip_uri``) and the CANCEL.
Pure builders: no I/O, no cancellation concerns.

Both INVITEs carry the call's context: ids as ``X-Campaign-Id``, ``X-Contact-Id``,
``X-Agent-Id``, ``X-Call-Id`` (the attempt id) and ``X-Attempt``, and the contact's data as
one ``X-Var-<name>`` header per custom field, the name's non-token bytes and the whole
value percent-encoded (see :mod:`gateway.telephony.sip.headers`). The agent's also has
``X-Contact-Number`` (E.164), and its From is the contact's number.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import attrs

from gateway.telephony.base import DialRequest
from gateway.telephony.sip.headers import x_header_name, x_header_value
from gateway.telephony.sip.message import SipRequest
from gateway.telephony.sip.sdp import SDP
from gateway.telephony.sip.transaction import Timers
from gateway.telephony.sip.transport import ALLOW, Address

USER_AGENT = "gateway-sip/0.1"
_PHONE = re.compile(r"\+?[0-9]{1,20}")


@attrs.frozen
class SipProfile:
    """Everything a call needs to know about this UA and its trunk."""

    proxy_host: str
    proxy_port: int
    proxy_addr: Address
    local_host: str
    local_port: int
    username: str = ""
    password: str = attrs.field(default="", repr=False)
    ring_timeout: float = 30.0
    max_call: float = 3600.0
    agent_answer_timeout: float = 5.0
    trunk_offer: str = "late"  # or "early": see gateway.telephony.sip.bridge
    timers: Timers = attrs.field(factory=Timers)

    @property
    def proxy_hostport(self) -> str:
        return self.proxy_host if self.proxy_port == 5060 else \
            f"{self.proxy_host}:{self.proxy_port}"

    def via(self, branch: str) -> str:
        return f"SIP/2.0/UDP {self.local_host}:{self.local_port};rport;branch={branch}"


def phone_user(number: str) -> str:
    """An E.164 number as a URI user part; anything else percent-encoded."""
    return number if _PHONE.fullmatch(number) else quote(number, safe="+")


def trunk_invite(profile: SipProfile, request: DialRequest, *, call_id: str, from_tag: str,
                 cseq: int, branch: str, credentials: tuple[tuple[str, str], ...] = (),
                 body: bytes = b"") -> SipRequest:
    """The contact's INVITE, sent to the proxy: Request-URI ``sip:<to>@<proxy>``, From the
    campaign's number; without a body (the contact's 2xx brings the offer) unless ``body``
    is an offer to send."""
    uri = f"sip:{phone_user(request.to_number)}@{profile.proxy_hostport}"
    return _invite(profile, uri, phone_user(request.from_number), call_id=call_id,
                   from_tag=from_tag, cseq=cseq, branch=branch, body=body,
                   extra=(*credentials, ("Allow", ALLOW), ("User-Agent", USER_AGENT),
                          *x_headers(request)))


def agent_invite(profile: SipProfile, request: DialRequest, agent_uri: str, *, call_id: str,
                 from_tag: str, cseq: int, branch: str, body: bytes = b"") -> SipRequest:
    """The agent's INVITE, sent to the agent itself: Request-URI its ``sip_uri``, From the
    contact's number, the call's context in ``X-`` headers, and the contact's offer (or no
    body: the agent then makes the offer)."""
    return _invite(profile, agent_uri, phone_user(request.to_number), call_id=call_id,
                   from_tag=from_tag, cseq=cseq, branch=branch, body=body,
                   extra=(("Allow", ALLOW), ("User-Agent", USER_AGENT), *x_headers(request),
                          ("X-Contact-Number", phone_user(request.to_number))))


def _invite(profile: SipProfile, uri: str, caller: str, *, call_id: str, from_tag: str,
            cseq: int, branch: str, body: bytes,
            extra: tuple[tuple[str, str], ...]) -> SipRequest:
    """An INVITE to ``uri`` from ``caller`` (a URI user part) at this UA."""
    headers = [
        ("Via", profile.via(branch)),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{caller}@{profile.local_host}>;tag={from_tag}"),
        ("To", f"<{uri}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} INVITE"),
        ("Contact", f"<sip:{caller}@{profile.local_host}:{profile.local_port}>"),
        *extra,
    ]
    if body:
        headers.append(("Content-Type", SDP))
    return SipRequest(tuple(headers), body, method="INVITE", uri=uri)


def x_headers(request: DialRequest) -> list[tuple[str, str]]:
    headers = [("X-Campaign-Id", str(request.campaign_id)),
               ("X-Contact-Id", str(request.contact_id)),
               ("X-Agent-Id", str(request.agent_id)),
               ("X-Call-Id", str(request.call_id)),
               ("X-Attempt", str(int(request.attempt)))]
    for name, value in sorted(request.variables.items()):
        headers.append((x_header_name(str(name)), x_header_value(str(value))))
    return headers


def build_cancel(invite: SipRequest) -> SipRequest:
    """CANCEL (§9.1): the INVITE's Request-URI, top Via (same branch), From, To, Call-ID,
    Route and CSeq number."""
    keep = ("from", "f", "to", "t", "call-id", "i", "route")
    headers = [("Via", invite.get("via") or ""), ("Max-Forwards", "70")]
    headers += [(name, value) for name, value in invite.headers if name.lower() in keep]
    headers.append(("CSeq", f"{invite.cseq[0]} CANCEL"))
    return SipRequest(tuple(headers), b"", method="CANCEL", uri=invite.uri)
