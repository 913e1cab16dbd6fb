"""What this UA sends outside a dialog: its profile, the INVITE (with SDP and X- headers)
and the CANCEL. Pure builders: no I/O, no cancellation concerns.

Contact data travels as one ``X-Var-<name>`` header per variable, the name's non-token
bytes and the whole value percent-encoded (see :mod:`gateway.telephony.sip.headers`); ids
as ``X-Campaign-Id``, ``X-Contact-Id``, ``X-Agent-Id``, ``X-Call-Id`` (the attempt id),
``X-Attempt``, and ``X-Agent-Uri`` when the agent has a SIP URI.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote

import attrs

from gateway.telephony.base import DialRequest
from gateway.telephony.sip.headers import x_header_name, x_header_value
from gateway.telephony.sip.message import SipRequest
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
    media_address: str = ""
    media_port: int = 40000
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


def build_invite(profile: SipProfile, request: DialRequest, *, call_id: str, from_tag: str,
                 cseq: int, branch: str, credentials: tuple[tuple[str, str], ...] = (),
                 sdp_session: int = 0) -> SipRequest:
    """The INVITE, sent to the proxy: Request-URI ``sip:<to>@<proxy>``."""
    uri = f"sip:{phone_user(request.to_number)}@{profile.proxy_hostport}"
    caller = phone_user(request.from_number)
    headers = [
        ("Via", profile.via(branch)),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{caller}@{profile.local_host}>;tag={from_tag}"),
        ("To", f"<{uri}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} INVITE"),
        ("Contact", f"<sip:{caller}@{profile.local_host}:{profile.local_port}>"),
        *credentials,
        ("Allow", ALLOW),
        ("User-Agent", USER_AGENT),
        *x_headers(request),
        ("Content-Type", "application/sdp"),
    ]
    # Media goes to the agent's address when it has one, else the adapter's default.
    media_host = request.agent_media_address or profile.media_address or profile.local_host
    body = sdp_offer(media_host, profile.media_port,
                     sdp_session or secrets.randbelow(2**31))
    return SipRequest(tuple(headers), body, method="INVITE", uri=uri)


def x_headers(request: DialRequest) -> list[tuple[str, str]]:
    headers = [("X-Campaign-Id", str(request.campaign_id)),
               ("X-Contact-Id", str(request.contact_id)),
               ("X-Agent-Id", str(request.agent_id)),
               ("X-Call-Id", str(request.call_id)),
               ("X-Attempt", str(int(request.attempt)))]
    if request.agent_sip_uri:
        headers.append(("X-Agent-Uri", x_header_value(request.agent_sip_uri)))
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


def sdp_offer(address: str, port: int, session: int) -> bytes:
    """A minimal audio offer: PCMU/8000 and RFC 4733 telephone-events."""
    lines = ["v=0", f"o=- {session} {session} IN IP4 {address}", "s=-",
             f"c=IN IP4 {address}", "t=0 0", f"m=audio {port} RTP/AVP 0 101",
             "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
             "a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
