"""One leg of a bridged call: a client INVITE transaction, the dialog its 2xx makes, and the
BYE that ends it. A leg does not wait for anything itself: the bridged call
(:mod:`.bridge`) reads every event of both legs from one inbox and tells each leg what
happened, so the call stays one task and cancelling it leaves both legs consistent.

Digest challenges are answered only on the trunk's leg (the trunk holds the credentials):
a 401/407 from the agent, or to a BYE sent straight to the far end, is a final response
like any other, so credentials never go anywhere but the trunk.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable

import trio

from gateway.logs import get_logger
from gateway.telephony.sip.dialog import Dialog
from gateway.telephony.sip.digest import DigestError, authorization, parse_challenge
from gateway.telephony.sip.headers import make_response, new_branch, new_tag
from gateway.telephony.sip.message import SipRequest, SipResponse
from gateway.telephony.sip.outgoing import SipProfile, build_cancel
from gateway.telephony.sip.transaction import (
    CallTransactions,
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
)
from gateway.telephony.sip.transport import ALLOW, Address, Incoming, TransportError

log = get_logger(__name__)
# Digest answers already given: (header name, realm) -> header value.
Credentials = dict[tuple[str, str], str]
CHALLENGES = {401: ("www-authenticate", "Authorization"),
              407: ("proxy-authenticate", "Proxy-Authorization")}
# (CSeq, branch, credential headers) -> the leg's INVITE.
InviteBuilder = Callable[[int, str, tuple[tuple[str, str], ...]], SipRequest]


class Leg:
    def __init__(self, name: str, profile: SipProfile, peer: Address, *,
                 trunk: bool) -> None:
        self.name = name                  # "contact" or "agent", for logs
        self.profile = profile
        self.peer = peer                  # where the INVITE goes
        self.trunk = trunk                # challenges are answered on this leg only
        self.call_id = f"{secrets.token_hex(12)}@{profile.local_host}"
        self.from_tag = new_tag()
        self.cseq = 0
        self.invite: InviteClientTransaction | None = None
        self.invite_sent_at = -math.inf   # trio's clock when the INVITE last went out
        self.final: SipResponse | None = None    # the INVITE's final response
        self.dialog: Dialog | None = None
        self.bye: NonInviteClientTransaction | None = None
        self.ended = False                # the dialog is over (BYE done either way)
        self.cancel_wanted = False
        self.cancel_sent_at = math.inf
        self.ack_sent = False             # the 2xx's ACK went out (not only built)
        self.acks: dict[int, SipRequest] = {}   # ACKs of re-INVITE 2xx, by CSeq
        self._credentials: Credentials = {}
        self._bye_credentials: Credentials = {}

    def auth_headers(self, credentials: Credentials | None = None
                     ) -> tuple[tuple[str, str], ...]:
        given = self._credentials if credentials is None else credentials
        return tuple((kind, value) for (kind, _), value in given.items())

    async def send_invite(self, txns: CallTransactions, build: InviteBuilder) -> None:
        self.cseq += 1
        request = build(self.cseq, new_branch(), self.auth_headers())
        transaction = InviteClientTransaction(request, self.peer, self.profile.timers)
        await txns.start(transaction)
        self.invite = transaction  # only once sent: a CANCEL needs a sent INVITE
        self.invite_sent_at = trio.current_time()

    def answer_challenge(self, transaction: ClientTransaction, response: SipResponse,
                         credentials: Credentials | None = None) -> bool:
        """Add to the credentials the answer to a 401/407; False if there are none to give
        (not the trunk's leg, no username, this realm already answered: one retry per
        challenge), or the request did not go to the proxy."""
        credentials = self._credentials if credentials is None else credentials
        source, kind = CHALLENGES[response.status]
        request = transaction.request
        if not self.trunk or not self.profile.username:
            return False
        if transaction.dest != self.profile.proxy_addr:
            log.info("sip.challenge_not_from_trunk", status=response.status,
                     sip_call_id=self.call_id)
            return False
        for value in response.get_all(source):
            try:
                challenge = parse_challenge(value)
                if (kind, challenge.realm) in credentials:
                    return False
                credentials[(kind, challenge.realm)] = authorization(
                    challenge, username=self.profile.username, password=self.profile.password,
                    method=request.method, uri=request.uri)
            except DigestError as exc:
                log.warning("sip.challenge_unanswerable", error=str(exc),
                            sip_call_id=self.call_id)
                continue
            log.info("sip.challenge_answered", status=response.status, realm=challenge.realm,
                     sip_call_id=self.call_id)
            return True
        return False

    async def maybe_cancel(self, txns: CallTransactions, now: float) -> None:
        """CANCEL the INVITE once it is wanted and allowed (a provisional came, §9.1)."""
        invite = self.invite
        if self.cancel_wanted and math.isinf(self.cancel_sent_at) and invite is not None \
                and invite.provisional is not None and not invite.done:
            self.cancel_sent_at = now
            await txns.start(NonInviteClientTransaction(
                build_cancel(invite.request), invite.dest, self.profile.timers))

    def open_dialog(self, txns: CallTransactions, final: SipResponse) -> Dialog:
        assert self.invite is not None
        dialog = self.dialog = Dialog.from_2xx(self.profile, self.invite.request, final,
                                               self.peer)
        # The far end's requests (BYE) may come from the next hop as well as the peer.
        txns.inbox.accept_requests_from(dialog.destination()[0], self.call_id)
        return dialog

    async def send_ack(self, txns: CallTransactions, answer: bytes = b"") -> None:
        """ACK the 2xx (with the SDP answer when the 2xx held the offer); again for each
        retransmitted 2xx, the very same ACK."""
        assert self.dialog is not None
        await txns.transport.send(self.dialog.ack_for_2xx(answer), self.dialog.destination())
        self.ack_sent = True

    @property
    def acked(self) -> bool:
        """The ACK is built (the answer it carries is decided): repeat it for a 2xx."""
        return self.dialog is not None and self.dialog.ack is not None

    async def start_bye(self, txns: CallTransactions) -> None:
        """Send BYE (once the dialog is up and not over); the bridge reads its final."""
        if self.dialog is None or self.ended or self.bye is not None:
            return
        self.cseq += 1
        bye = self.dialog.request("BYE", self.cseq,
                                  extra=self.auth_headers(self._bye_credentials))
        self.bye = NonInviteClientTransaction(bye, self.dialog.destination(),
                                              self.profile.timers)
        try:
            await txns.start(self.bye)
        except TransportError:
            self.ended = True
            raise

    async def on_bye_final(self, txns: CallTransactions, final: SipResponse | None) -> None:
        """The BYE's final response (None: Timer F): answer a challenge once and send it
        again (the INVITE's credentials are for the INVITE's method and URI), else over."""
        bye = self.bye
        if final is not None and bye is not None and final.status in CHALLENGES and \
                self.answer_challenge(bye, final, self._bye_credentials):
            self.bye = None
            await self.start_bye(txns)
            return
        self.ended = True

    @property
    def settled(self) -> bool:
        """Nothing of this leg is open at its peer, or waiting on it could help."""
        invite = self.invite
        if self.dialog is not None:
            return self.ended
        if invite is None or invite.done:
            return True
        if invite.provisional is not None:
            return False  # a CANCEL ends it
        # No response yet: §9.1 forbids a CANCEL before one, so it is waited for (a 1xx
        # is then CANCELled, a 2xx ACKed and hung up) as long as an agent is given to
        # answer; a peer silent that long is left to its own timers.
        return trio.current_time() >= self.silent_until

    @property
    def silent_until(self) -> float:
        """When this leg's INVITE, pending without any response, stops being waited for
        (infinity when the leg is not in that state)."""
        invite = self.invite
        if self.dialog is not None or invite is None or invite.done or \
                invite.provisional is not None:
            return math.inf
        return self.invite_sent_at + self.profile.agent_answer_timeout

    def reply_to(self, incoming: Incoming, *, busy: bool = False
                 ) -> tuple[SipResponse, bool] | None:
        """The answer to a request of this leg's Call-ID that the bridge does not relay,
        and whether it was the far end's BYE; None for an ACK. A re-INVITE or UPDATE left
        here gets 491 while another one is relayed (``busy``), else 488 (the call is not
        connected: being set up or ended). Raises ValueError when the answer cannot be
        built."""
        message = incoming.message
        assert isinstance(message, SipRequest)
        if message.method == "ACK":
            return None
        ours = self.dialog is not None and self.dialog.matches(message)
        if message.method == "BYE" and ours:
            return make_response(message, 200, "OK"), True
        if message.method == "OPTIONS":
            return make_response(message, 200, "OK", extra=(("Allow", ALLOW),)), False
        if message.method in ("INVITE", "UPDATE") and ours:
            if busy:
                return make_response(message, 491, "Request Pending"), False
            return make_response(message, 488, "Not Acceptable Here"), False
        if not ours:
            return make_response(message, 481, "Call/Transaction Does Not Exist"), False
        return make_response(message, 501, "Not Implemented"), False
