"""The dialog a 2xx to our INVITE creates (RFC 3261 §12.1.2, §12.2.1).

Holds what in-dialog requests need: the remote tag (the 200's To), the remote target (its
Contact) and the route set (its Record-Route, reversed). Requests are sent to the first
route if there is one, else to the remote target; a strict router (a first route without
``lr``) gets the §12.2.1.1 treatment. Pure state and builders, no I/O.

Built from what the peer sent, so total: an unusable Contact leaves the Request-URI (the
proxy) as the target, an unusable Record-Route is ignored, a tag that cannot be read is
empty. The next hop's address (:meth:`Dialog.destination`) is the hop itself when it is a
numeric IPv4 address, else where the dialog's INVITE went (the proxy, or the agent): host
names a peer writes into Contact or Record-Route are never looked up (a peer must not make
us resolve names of its choosing), and the proxy routes such a request by its Request-URI
and Route.
"""

from __future__ import annotations

import ipaddress

import attrs

from gateway.telephony.sip.headers import new_branch, parse_name_addr, parse_uri
from gateway.telephony.sip.message import SipParseError, SipRequest, SipResponse
from gateway.telephony.sip.outgoing import SipProfile
from gateway.telephony.sip.sdp import SDP
from gateway.telephony.sip.transport import Address


@attrs.define
class Dialog:
    profile: SipProfile
    call_id: str
    local: str            # our From header value, tag included
    remote: str           # the To header value of the 2xx, tag included
    local_tag: str
    remote_tag: str
    remote_target: str    # a URI
    route_set: list[str]  # name-addr values, first hop first
    invite: SipRequest
    peer: Address         # where the INVITE went: the next hop when the dialog's is a name
    ack: SipRequest | None = None

    @classmethod
    def from_2xx(cls, profile: SipProfile, invite: SipRequest, response: SipResponse,
                 peer: Address | None = None) -> Dialog:
        local = invite.get("from") or ""
        remote = response.get("to") or ""
        # No usable Contact (a broken peer): keep talking to the Request-URI, the proxy.
        target = invite.uri
        try:
            contact = parse_name_addr(response.get("contact") or "").uri
            parse_uri(contact)
            target = contact
        except SipParseError:
            pass
        routes = list(reversed(response.get_all("record-route")))
        try:
            for route in routes:
                parse_uri(parse_name_addr(route).uri)
        except SipParseError:
            routes = []  # a route we cannot follow: straight to the target (or the proxy)
        return cls(profile, invite.call_id, local, remote, _tag(local), _tag(remote),
                   target, routes, invite, peer or profile.proxy_addr)

    def _next_hop(self) -> tuple[str, list[str], str]:
        """(Request-URI, Route values, URI to send to)."""
        if not self.route_set:
            return self.remote_target, [], self.remote_target
        first = parse_name_addr(self.route_set[0]).uri
        if parse_uri(first).loose_route:
            return self.remote_target, list(self.route_set), first
        return first, [*self.route_set[1:], f"<{self.remote_target}>"], first

    def destination(self) -> Address:
        """Where in-dialog requests go: a numeric next hop itself, else the INVITE's peer."""
        _, _, hop = self._next_hop()
        uri = parse_uri(hop)
        host = uri.params.get("maddr", uri.host)
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return self.peer
        return host, uri.port or 5060

    def request(self, method: str, cseq: int, *,
                extra: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> SipRequest:
        """An in-dialog request; a ``body`` is SDP."""
        uri, routes, _ = self._next_hop()
        headers = [("Via", self.profile.via(new_branch())), ("Max-Forwards", "70"),
                   ("From", self.local), ("To", self.remote), ("Call-ID", self.call_id),
                   ("CSeq", f"{cseq} {method}"), *(("Route", route) for route in routes),
                   *extra]
        if body:
            headers.append(("Content-Type", SDP))
        return SipRequest(tuple(headers), body, method=method, uri=uri)

    def ack_for_2xx(self, answer: bytes = b"") -> SipRequest:
        """The ACK (§13.2.2.4): a transaction of its own, the INVITE's CSeq number and
        credentials, and the SDP answer when the 2xx held the offer. Built once, so
        retransmitted 2xx get the very same ACK."""
        if self.ack is None:
            credentials = tuple((name, value) for name, value in self.invite.headers
                                if name.lower() in ("authorization", "proxy-authorization"))
            self.ack = self.request("ACK", self.invite.cseq[0], extra=credentials,
                                    body=answer)
        return self.ack

    def matches(self, request: SipRequest) -> bool:
        """Is this in-dialog request ours: its From tag the remote tag, its To tag ours?"""
        from_tag, to_tag = _tag(request.get("from") or ""), _tag(request.get("to") or "")
        return bool(to_tag) and from_tag == self.remote_tag and to_tag == self.local_tag


def _tag(value: str) -> str:
    try:
        return parse_name_addr(value).tag or ""
    except SipParseError:
        return ""
