"""One outbound call, from INVITE to the end of the dialog, as one task.

INVITE to the proxy → (401/407: ACK, answer the challenge once, INVITE again with CSeq+1)
→ provisional responses → either a final response (mapped to an outcome), or the ring
timeout (``ring_timeout_seconds`` from sending that INVITE): CANCEL once a provisional has
come (RFC 3261 §9.1 forbids it earlier; Timer B still bounds a silent peer) and wait up to
64·T1 for the 487. A 2xx: ACK it, report the answer, then wait for the far end's BYE
(answer 200) or ``max_call_seconds`` from the answer (send BYE).

A 2xx that crosses our CANCEL is ACKed and hung up at once (§15): nobody was connected in
time, so the outcome is ``no_answer`` (sip_status 200) and ``on_answer`` is not called.

Errors: a transport error (send failure, transport stopped) ends the call: ``failed`` if
it was not answered, else ``answered`` ended now. Exceptions from ``on_answer`` propagate
(after the BYE below); nothing else does: what a peer sends is handled or dropped (a reply
that cannot be built is not sent), and a bug met on the way is logged at error level and
ends the call like a transport error, cleaned up as below, so the campaign goes on.

Digest challenges are answered only for requests sent to the proxy (the trunk holding the
credentials): a 401/407 to a BYE sent straight to the far end is a final response like
any other, so credentials never go anywhere but the trunk.

Cancellation (shutdown): whenever ``run`` exits without a result, the clean-up runs
shielded and bounded by ``CLEANUP_SECONDS``: BYE if answered, else CANCEL and wait for the
final (ACKing it; a crossing 2xx is ACKed and hung up). Then the exception goes on.
"""

from __future__ import annotations

import math
import secrets
from datetime import datetime

import trio

from gateway.clock import utcnow
from gateway.logs import get_logger
from gateway.telephony.base import AnswerCallback, CallResult, DialRequest
from gateway.telephony.sip.dialog import Dialog
from gateway.telephony.sip.digest import DigestError, authorization, parse_challenge
from gateway.telephony.sip.headers import make_response, new_branch, new_tag
from gateway.telephony.sip.message import SipParseError, SipResponse
from gateway.telephony.sip.outcomes import outcome_for_status
from gateway.telephony.sip.outgoing import SipProfile, build_cancel, build_invite
from gateway.telephony.sip.transaction import (
    CallTransactions,
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
    Response,
    Timeout,
)
from gateway.telephony.sip.transport import ALLOW, Incoming, SipTransport, TransportError
from gateway.vocabulary import Outcome

log = get_logger(__name__)
CLEANUP_SECONDS = 2.0
# Digest answers already given: (header name, realm) → header value.
Credentials = dict[tuple[str, str], str]
_CHALLENGES = {401: ("www-authenticate", "Authorization"),
               407: ("proxy-authenticate", "Proxy-Authorization")}


class OutboundCall:
    def __init__(self, transport: SipTransport, profile: SipProfile,
                 request: DialRequest) -> None:
        self.transport, self.profile, self.request = transport, profile, request
        self.call_id = f"{secrets.token_hex(12)}@{profile.local_host}"
        self.from_tag = new_tag()
        self.cseq = 0
        self.invite: InviteClientTransaction | None = None
        self.dialog: Dialog | None = None
        self.ended = False                 # the dialog is over (BYE sent or received)
        self.answered_at: datetime | None = None
        self.cancel_wanted = False
        self._cancel_sent_at = math.inf
        self._credentials: Credentials = {}
        self._callback_error: Exception | None = None
        self._log = log.bind(call_id=str(request.call_id), sip_call_id=self.call_id)

    async def run(self, on_answer: AnswerCallback) -> CallResult:
        with self.transport.open_inbox(self.call_id) as inbox:
            self.txns = CallTransactions(self.transport, inbox, self.profile.timers)
            finished = False
            try:
                result = await self._dial(on_answer)
                finished = True
                return result
            except Exception as exc:
                if exc is self._callback_error:
                    raise
                self._log.error("sip.call_crashed", exc_info=exc)
                return self._result(Outcome.ANSWERED if self.answered_at else Outcome.FAILED, None)
            finally:
                if not finished:
                    with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_SECONDS):
                        await self._abandon()

    def _result(self, outcome: Outcome, status: int | None) -> CallResult:
        return CallResult(outcome, answered_at=self.answered_at, ended_at=utcnow(),
                          sip_call_id=self.call_id, sip_status=status)

    async def _dial(self, on_answer: AnswerCallback) -> CallResult:
        try:
            while True:
                self.cseq += 1
                invite = build_invite(self.profile, self.request, call_id=self.call_id,
                                      from_tag=self.from_tag, cseq=self.cseq,
                                      branch=new_branch(),
                                      credentials=tuple(self._auth_headers()))
                transaction = InviteClientTransaction(invite, self.profile.proxy_addr,
                                                      self.profile.timers)
                await self.txns.start(transaction)
                self.invite = transaction  # only once sent: a CANCEL needs a sent INVITE
                final = await self._await_final(trio.current_time() + self.profile.ring_timeout)
                if final is None:  # Timer B: no response at all; or no final after CANCEL
                    return self._result(
                        Outcome.FAILED if transaction.timed_out else Outcome.NO_ANSWER, None)
                if final.status in _CHALLENGES and self._answer_challenge(
                        transaction, final, self._credentials):
                    continue
                if final.status >= 300:
                    return self._result(outcome_for_status(final.status), final.status)
                return await self._talk(transaction, final, on_answer)
        except (TransportError, SipParseError) as exc:  # SipParseError: an unusable 2xx
            self._log.warning("sip.transport_error", error=str(exc))
            return self._result(Outcome.ANSWERED if self.answered_at else Outcome.FAILED, None)

    def _auth_headers(self, credentials: Credentials | None = None) -> list[tuple[str, str]]:
        credentials = self._credentials if credentials is None else credentials
        return [(kind, value) for (kind, _), value in credentials.items()]

    def _answer_challenge(self, transaction: ClientTransaction, response: SipResponse,
                          credentials: Credentials) -> bool:
        """Add to ``credentials`` the answer to a 401/407; False if there are none to give,
        this realm was already answered (one retry per challenge), or the request did not
        go to the proxy (the transport only takes its responses from where it went)."""
        source, kind = _CHALLENGES[response.status]
        request = transaction.request
        if not self.profile.username:
            return False
        if transaction.dest != self.profile.proxy_addr:
            self._log.info("sip.challenge_not_from_trunk", status=response.status)
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
                self._log.warning("sip.challenge_unanswerable", error=str(exc))
                continue
            self._log.info("sip.challenge_answered", status=response.status,
                           realm=challenge.realm)
            return True
        return False

    async def _await_final(self, ring_deadline: float = math.inf) -> SipResponse | None:
        """The INVITE's final response; CANCEL at ``ring_deadline``. None on Timer B, or
        when no final came within 64·T1 of the CANCEL."""
        invite = self.invite
        while True:
            give_up_at = self._cancel_sent_at + self.profile.timers.timeout
            event = await self.txns.next(give_up_at if self.cancel_wanted else ring_deadline)
            if event is None:
                if self.cancel_wanted:
                    self._log.warning("sip.cancel_unanswered")
                    return None
                self._log.info("sip.ring_timeout")
                self.cancel_wanted = True
            elif isinstance(event, Timeout) and event.transaction is invite:
                self._log.warning("sip.invite_timeout")
                return None
            elif isinstance(event, Response) and event.transaction is invite:
                if event.response.status >= 200:
                    return event.response
            elif isinstance(event, Incoming):
                await self._on_incoming(event)
            await self._maybe_cancel()

    async def _maybe_cancel(self) -> None:
        invite = self.invite
        if self.cancel_wanted and math.isinf(self._cancel_sent_at) and invite is not None \
                and invite.provisional is not None and not invite.done:
            self._cancel_sent_at = trio.current_time()
            await self.txns.start(NonInviteClientTransaction(
                build_cancel(invite.request), invite.dest, self.profile.timers))

    async def _talk(self, invite: InviteClientTransaction, final: SipResponse,
                    on_answer: AnswerCallback) -> CallResult:
        dialog = self._open_dialog(invite, final)
        await self._send_ack(dialog)
        if self.cancel_wanted:  # answered after our CANCEL: hang up at once
            await self._hang_up(dialog)
            return self._result(Outcome.NO_ANSWER, final.status)
        self.answered_at = utcnow()
        hang_up_at = trio.current_time() + self.profile.max_call
        try:
            await on_answer(self.answered_at)
        except Exception as exc:
            self._callback_error = exc  # the engine's own error: it propagates as it is
            raise
        while not self.ended:
            event = await self.txns.next(hang_up_at)
            if event is None:
                await self._hang_up(dialog)
            elif isinstance(event, Incoming):
                await self._on_incoming(event)
        return self._result(Outcome.ANSWERED, final.status)

    def _open_dialog(self, invite: InviteClientTransaction, final: SipResponse) -> Dialog:
        dialog = self.dialog = Dialog.from_2xx(self.profile, invite.request, final)
        # The far end's requests (BYE) may come from the next hop as well as the proxy.
        self.txns.inbox.accept_requests_from(dialog.destination()[0])
        return dialog

    async def _send_ack(self, dialog: Dialog) -> None:
        await self.transport.send(dialog.ack_for_2xx(), dialog.destination())

    async def _hang_up(self, dialog: Dialog) -> None:
        """BYE, and wait for its final response (Timer F bounds the wait); a 401/407 is
        answered once (the INVITE's credentials are for the INVITE's method and URI)."""
        credentials: Credentials = {}
        while not self.ended:
            self.cseq += 1
            bye = dialog.request("BYE", self.cseq, extra=tuple(self._auth_headers(credentials)))
            transaction = NonInviteClientTransaction(
                bye, dialog.destination(), self.profile.timers)
            await self.txns.start(transaction)
            final = await self._until_done(transaction)
            if final is not None and final.status in _CHALLENGES and \
                    self._answer_challenge(transaction, final, credentials):
                continue
            self.ended = True

    async def _until_done(self, transaction: ClientTransaction) -> SipResponse | None:
        while not transaction.done and not self.ended:
            event = await self.txns.next()
            if isinstance(event, Incoming):
                await self._on_incoming(event)
        return transaction.final

    async def _on_incoming(self, incoming: Incoming) -> None:
        """A request for this Call-ID, or a retransmitted 2xx to the INVITE."""
        message = incoming.message
        if isinstance(message, SipResponse):
            if self.dialog is not None and message.cseq == self.dialog.invite.cseq:
                await self._send_ack(self.dialog)  # our ACK was lost
            return
        if message.method == "ACK":
            return
        ours = self.dialog is not None and self.dialog.matches(message)
        try:
            if message.method == "BYE" and ours:
                response = make_response(message, 200, "OK")
            elif message.method == "OPTIONS":
                response = make_response(message, 200, "OK", extra=(("Allow", ALLOW),))
            elif message.method == "INVITE" and ours:  # re-INVITE: no media to renegotiate
                response = make_response(message, 488, "Not Acceptable Here")
            elif not ours:
                response = make_response(message, 481, "Call/Transaction Does Not Exist")
            else:
                response = make_response(message, 501, "Not Implemented")
            data = response.encode()
            self.transport.remember_response(message, data, incoming.source)
        except ValueError as exc:  # SipParseError included: drop it, the peer retransmits
            self._log.debug("sip.reply_unsendable", method=message.method, error=str(exc))
            return
        if message.method == "BYE" and ours:
            self.ended = True
            self._log.info("sip.remote_hangup")
        try:
            await self.transport.send(data, incoming.source)
        except TransportError as exc:  # a lost reply: the peer retransmits, the call goes on
            self._log.debug("sip.reply_failed", error=str(exc))

    async def _abandon(self) -> None:
        """Clean-up after cancellation or an error: leave nothing open at the peer."""
        try:
            if self.dialog is not None and not self.ended:
                await self._hang_up(self.dialog)
            elif self.invite is not None and not self.invite.done:
                invite = self.invite
                self.cancel_wanted = True
                await self._maybe_cancel()
                final = await self._await_final()
                if final is not None and final.status < 300:
                    dialog = self._open_dialog(invite, final)
                    await self._send_ack(dialog)
                    await self._hang_up(dialog)
        except (TransportError, SipParseError) as exc:
            self._log.warning("sip.cleanup_failed", error=str(exc))
        except Exception as exc:  # never let a clean-up bug replace the exception in flight
            self._log.error("sip.cleanup_crashed", error=repr(exc), exc_info=exc)
