"""One bridged call as one task: the contact's leg through the trunk, the agent's leg
straight to the agent, the gateway as the controller between them (RFC 3725, its Flow I
with the contact as the party who rings and the agent as the automaton that answers at
once). It carries signalling only: the SDP offer and answer go between the legs as they
are, so media flows between the trunk and the agent directly.

1. INVITE the contact through the trunk without an offer (401/407: answer the challenge
   once, INVITE again with CSeq+1). Provisional responses; at ``ring_timeout_seconds``
   CANCEL once a provisional has come (RFC 3261 §9.1; Timer B bounds a silent peer) and
   wait up to 64·T1 for the 487. A final >= 300 maps to an outcome. Nothing of the agent
   is used while the contact rings.
2. The contact's 2xx carries the offer. It is not ACKed yet (the trunk retransmits it
   meanwhile): INVITE the agent's ``sip_uri`` with that offer and the call's context
   (``X-`` headers, From the contact's number), and give it
   ``agent_answer_timeout_seconds``.
3. The agent's 2xx carries the answer: ACK the agent, then ACK the contact with the
   agent's answer. The call is connected (``on_connect``).
4. Either side's BYE is answered and a BYE sent to the other leg (``hangup_by`` says who
   ended it); ``max_call_seconds`` from the contact's answer ends both legs
   (``gateway``). A re-INVITE or UPDATE from either side is relayed to the other
   (:mod:`.relay`). The agent's BYE may say how the call went (``X-Disposition``,
   ``X-Callback-At``, ``X-Disposition-Notes``: :func:`.headers.agent_disposition`); an
   ``answered`` result carries it, and values that cannot be used are ignored (a debug
   log), never an error.

With ``trunk_offer = "early"`` (trunks that refuse an INVITE without an offer) the agent is
invited first, without an offer; its 2xx's offer is ACKed with a hold answer
(:func:`.sdp.hold_answer`) and sent to the trunk in the contact's INVITE; the contact's
2xx (the answer) is ACKed, and the agent gets it in a re-INVITE on its dialog (the hold
answer's ``o=`` line, one version up). The agent's leg is up, on hold, while the contact
rings; if the agent leaves meanwhile the contact is CANCELled (``agent_unavailable``).

The agent leg fails (it rejects, stays silent, is unreachable, answers without SDP; or the
contact's 2xx had no offer): the contact is ACKed at once with an answer that declines
every stream (the ACK of a 2xx with an offer must carry an answer) and hung up; the
outcome is ``agent_unavailable``. A contact who hangs up before the agent answered ends
the agent leg too: ``answered``, never connected, ``hangup_by`` contact. A 2xx that
crosses our CANCEL is ACKed and hung up at once: ``no_answer`` (sip_status 200).

Errors: a transport error (send failure, transport stopped) ends the call: ``failed`` if
the contact had not answered. Exceptions from ``on_answer``/``on_connect`` propagate (after
the clean-up below); nothing else does: a bug met on the way is logged at error level and
ends the call like a transport error.

Cancellation (shutdown past the grace period): whenever ``run`` exits without a result,
both legs are ended shielded and bounded by ``CLEANUP_SECONDS`` (a warning names the
legs still open when it runs out): BYE where a dialog is up, CANCEL where an INVITE is
pending (a crossing 2xx is ACKed and hung up).
"""

from __future__ import annotations

import ipaddress
import secrets
from datetime import datetime
from functools import partial

import trio

from gateway.clock import utcnow
from gateway.logs import get_logger
from gateway.telephony.base import AnswerCallback, CallResult, DialRequest
from gateway.telephony.sip.headers import AgentDisposition, agent_disposition, parse_uri
from gateway.telephony.sip.leg import CHALLENGES, Leg
from gateway.telephony.sip.message import SipParseError, SipRequest, SipResponse
from gateway.telephony.sip.outcomes import outcome_for_status
from gateway.telephony.sip.outgoing import SipProfile, agent_invite, trunk_invite
from gateway.telephony.sip.relay import RELAYED, Relay
from gateway.telephony.sip.sdp import declining_answer, hold_answer, session_of, with_origin
from gateway.telephony.sip.transaction import (
    CallTransactions,
    InviteClientTransaction,
    Response,
    Timeout,
)
from gateway.telephony.sip.transport import (
    Address,
    Incoming,
    SipTransport,
    TransportError,
    resolve,
)
from gateway.vocabulary import HangupBy, Outcome

log = get_logger(__name__)
# The clean-up after a cancellation (a shutdown past its grace period): long enough for a
# BYE's retransmissions at T1, 2·T1, 4·T1 (0.5, 1, 2 s) when thousands of calls end at
# once and some datagrams are lost, bounded so that a shutdown ends.
CLEANUP_SECONDS = 8.0


class AgentUnavailable(Exception):
    """The agent leg cannot be set up; ``status`` is the agent's final response, if any."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class BridgedCall:
    def __init__(self, transport: SipTransport, profile: SipProfile,
                 request: DialRequest) -> None:
        self.transport, self.profile, self.request = transport, profile, request
        self.contact = Leg("contact", profile, profile.proxy_addr, trunk=True)
        self.agent: Leg | None = None
        self.answered_at: datetime | None = None
        self.connected_at: datetime | None = None
        self.hangup_by: HangupBy | None = None
        self.agent_status: int | None = None
        self._agent_sdp = b""              # early: the hold answer the agent was given
        self.talking = False               # connected: re-INVITE and UPDATE are relayed
        self.relay: Relay | None = None
        self._callback_error: Exception | None = None
        self.disposition: AgentDisposition | None = None  # from the agent's BYE
        self._log = log.bind(call_id=str(request.call_id), sip_call_id=self.contact.call_id)

    async def run(self, on_answer: AnswerCallback, on_connect: AnswerCallback) -> CallResult:
        with self.transport.open_inbox(self.contact.call_id) as inbox:
            self.txns = CallTransactions(self.transport, inbox, self.profile.timers)
            finished = False
            try:
                result = await self._call(on_answer, on_connect)
                finished = True
                return result
            except (TransportError, SipParseError) as exc:  # SipParseError: an unusable 2xx
                self._log.warning("sip.transport_error", error=str(exc))
                return self._result(Outcome.ANSWERED if self.answered_at else Outcome.FAILED,
                                    None)
            except Exception as exc:
                if exc is self._callback_error:
                    raise
                self._log.error("sip.call_crashed", exc_info=exc)
                return self._result(Outcome.ANSWERED if self.answered_at else Outcome.FAILED,
                                    None)
            finally:
                if not finished:  # cancelled, or an error: end whatever is still open
                    with trio.CancelScope(shield=True):
                        await self.transport.hangups.wait()  # a crowd ends paced
                        with trio.move_on_after(CLEANUP_SECONDS) as cleanup:
                            await self._abandon()
                        if cleanup.cancelled_caught:
                            self._log.warning(
                                "sip.cleanup_unfinished", seconds=CLEANUP_SECONDS,
                                open_legs=[leg.name for leg in (self.contact, self.agent)
                                           if leg is not None and not leg.settled])

    def _result(self, outcome: Outcome, status: int | None) -> CallResult:
        agent = self.agent
        # Only an answered call takes a disposition (the API refuses one for the others).
        said = self.disposition if outcome == Outcome.ANSWERED else None
        return CallResult(
            outcome, answered_at=self.answered_at, ended_at=utcnow(),
            sip_call_id=self.contact.call_id, sip_status=status,
            connected_at=self.connected_at,
            hangup_by=self.hangup_by if self.answered_at else None,
            agent_sip_status=self.agent_status,
            agent_sip_call_id=agent.call_id if agent is not None and agent.invite else None,
            disposition=said.disposition if said else None,
            callback_at=said.callback_at if said else None,
            disposition_notes=said.notes if said else None)

    async def _callback(self, callback: AnswerCallback, at: datetime) -> None:
        try:
            await callback(at)
        except Exception as exc:
            self._callback_error = exc  # the engine's own error: it propagates as it is
            raise

    # -- the flow ---------------------------------------------------------------------

    async def _call(self, on_answer: AnswerCallback, on_connect: AnswerCallback) -> CallResult:
        if self.profile.trunk_offer == "early":
            return await self._call_early(on_answer, on_connect)
        contact = self.contact
        final = await self._dial_contact()
        if final is None or final.status >= 300:
            return self._unanswered(final)
        contact.open_dialog(self.txns, final)
        offer = session_of(final)
        if contact.cancel_wanted:  # answered after our CANCEL: hang up at once
            await self._decline_contact(offer)
            await self._end_legs()
            return self._result(Outcome.NO_ANSWER, final.status)
        answered_clock = await self._answered(on_answer)
        try:
            if offer is None:
                raise AgentUnavailable("the contact's 2xx carries no SDP offer")
            answer = await self._dial_agent(offer, answered_clock)
        except AgentUnavailable as exc:
            await self._decline_contact(offer)
            return await self._agent_failed(exc, final.status)
        await contact.send_ack(self.txns, answer)
        return await self._connected(on_connect, answered_clock, final)

    def _unanswered(self, final: SipResponse | None) -> CallResult:
        """The result of a contact's INVITE that got no 2xx."""
        if final is None:  # Timer B: no response at all; or no final after CANCEL
            timed_out = self.contact.invite is not None and self.contact.invite.timed_out
            return self._result(Outcome.FAILED if timed_out else Outcome.NO_ANSWER, None)
        return self._result(outcome_for_status(final.status), final.status)

    async def _answered(self, on_answer: AnswerCallback) -> float:
        """The contact answered: report it; trio's clock at that moment."""
        self.answered_at = utcnow()
        answered_clock = trio.current_time()
        await self._callback(on_answer, self.answered_at)
        return answered_clock

    async def _connected(self, on_connect: AnswerCallback, answered_clock: float,
                         final: SipResponse) -> CallResult:
        """Both legs are up: report it, talk until one ends, end both."""
        self.connected_at = utcnow()
        await self._callback(on_connect, self.connected_at)
        await self._talk(answered_clock + self.profile.max_call)
        await self._end_legs()
        return self._result(Outcome.ANSWERED, final.status)

    async def _call_early(self, on_answer: AnswerCallback,
                          on_connect: AnswerCallback) -> CallResult:
        """``trunk_offer = "early"``: the agent first, without an offer; its offer goes to
        the contact (the agent's leg on hold meanwhile); the contact's answer reaches the
        agent in a re-INVITE."""
        contact = self.contact
        try:
            offer = await self._agent_offer()
        except AgentUnavailable as exc:
            return await self._agent_failed(exc, None)
        final = await self._dial_contact(offer)
        agent = self.agent
        assert agent is not None
        if final is not None and final.status < 300:
            contact.open_dialog(self.txns, final)
            await contact.send_ack(self.txns)  # the INVITE made the offer
        if agent.ended:  # the agent hung up while the contact rang
            await self._end_legs()
            self.hangup_by = None
            return self._result(Outcome.AGENT_UNAVAILABLE,
                                final.status if final is not None else None)
        if final is None or final.status >= 300:
            await self._end_legs()
            return self._unanswered(final)
        if contact.cancel_wanted:
            await self._end_legs()
            return self._result(Outcome.NO_ANSWER, final.status)
        answered_clock = await self._answered(on_answer)
        try:
            answer = session_of(final)
            if answer is None:
                raise AgentUnavailable("the contact's 2xx carries no SDP answer")
            await self._reinvite_agent(answer, answered_clock +
                                       self.profile.agent_answer_timeout)
        except AgentUnavailable as exc:
            return await self._agent_failed(exc, final.status)
        return await self._connected(on_connect, answered_clock, final)

    async def _agent_failed(self, exc: AgentUnavailable, status: int | None) -> CallResult:
        """End both legs after the agent's leg failed: ``agent_unavailable`` (``answered``
        if it was the contact who hung up meanwhile)."""
        if exc.status is not None:
            self.agent_status = exc.status
        self._log.info("sip.agent_unavailable", reason=exc.reason, status=exc.status)
        if not self.contact.ended and self.answered_at is not None:
            self.hangup_by = HangupBy.GATEWAY
        await self._end_legs()
        if self.hangup_by == HangupBy.CONTACT:
            return self._result(Outcome.ANSWERED, status)
        return self._result(Outcome.AGENT_UNAVAILABLE, status)

    async def _agent_offer(self) -> bytes:
        """``early``: INVITE the agent without an offer; ACK its 2xx with a hold answer;
        its offer."""
        uri = self.request.agent_sip_uri
        if not uri:
            raise AgentUnavailable("the agent has no sip_uri")
        deadline = trio.current_time() + self.profile.agent_answer_timeout
        agent = await self._open_agent_leg(uri, deadline)
        await agent.send_invite(self.txns, partial(self._agent_invite, uri, b""))
        final = self._agent_answered(agent, await self._await_final(agent, deadline))
        offer = session_of(final)
        if offer is None:
            await agent.send_ack(self.txns)
            raise AgentUnavailable("the agent's 2xx carries no SDP offer", final.status)
        self._agent_sdp = hold_answer(offer, self.profile.local_host,
                                      secrets.randbelow(2**31))
        await agent.send_ack(self.txns, self._agent_sdp)
        return offer

    async def _reinvite_agent(self, answer: bytes, deadline: float) -> None:
        """``early``: give the agent the contact's answer, as the offer of a re-INVITE on
        its dialog (the ``o=`` line of the hold answer it had, one version up)."""
        agent = self.agent
        assert agent is not None and agent.dialog is not None
        agent.cseq += 1
        contact_uri = f"<sip:{self.profile.local_host}:{self.profile.local_port}>"
        request = agent.dialog.request("INVITE", agent.cseq,
                                       body=with_origin(answer, self._agent_sdp),
                                       extra=(("Contact", contact_uri),))
        transaction = InviteClientTransaction(request, agent.dialog.destination(),
                                              self.profile.timers)
        await self.txns.start(transaction)
        while True:
            event = await self.txns.next(deadline)
            if event is None or (isinstance(event, Timeout) and
                                 event.transaction is transaction):
                raise AgentUnavailable("the agent did not answer the re-INVITE in time")
            if isinstance(event, Response) and event.transaction is transaction:
                final = event.response
                if final.status < 200:
                    continue
                if final.status >= 300:
                    raise AgentUnavailable(f"the agent answered {final.status} to the "
                                           "re-INVITE", final.status)
                ack = agent.dialog.request("ACK", agent.cseq)
                agent.acks[agent.cseq] = ack
                await self.transport.send(ack, agent.dialog.destination())
                return
            await self._on_event(event)
            if self.contact.ended:
                self.hangup_by = HangupBy.CONTACT
                raise AgentUnavailable("the contact hung up before the agent was connected")

    async def _open_agent_leg(self, uri: str, deadline: float) -> Leg:
        address = await self._agent_address(uri, deadline)
        agent = self.agent = Leg("agent", self.profile, address, trunk=False)
        self.txns.inbox.add_call(agent.call_id, address)
        self._log = self._log.bind(agent_sip_call_id=agent.call_id)
        return agent

    async def _dial_contact(self, offer: bytes = b"") -> SipResponse | None:
        """The contact INVITE's final response (challenges answered on the way); CANCEL
        at the ring timeout, or when the agent's leg ends meanwhile. None on Timer B, or
        when no final came within 64·T1 of the CANCEL."""
        contact, request = self.contact, self.request
        build = partial(self._trunk_invite, request, offer)
        ring_deadline = trio.current_time() + self.profile.ring_timeout
        while True:
            await contact.send_invite(self.txns, build)
            final = await self._await_final(contact, ring_deadline)
            if final is not None and contact.invite is not None and \
                    final.status in CHALLENGES and \
                    contact.answer_challenge(contact.invite, final):
                continue
            return final

    def _trunk_invite(self, request: DialRequest, offer: bytes, cseq: int, branch: str,
                      credentials: tuple[tuple[str, str], ...]) -> SipRequest:
        return trunk_invite(self.profile, request, call_id=self.contact.call_id,
                            from_tag=self.contact.from_tag, cseq=cseq, branch=branch,
                            credentials=credentials, body=offer)

    async def _await_final(self, leg: Leg, deadline: float) -> SipResponse | None:
        """The leg's INVITE final response. At ``deadline`` the contact's INVITE is
        CANCELled (then None on Timer B, or when no final came within 64·T1 of the
        CANCEL); the agent's is given up at once (None), its CANCEL left to the clean-up,
        so the contact's answer does not wait. None too when the contact hung up while
        the agent's INVITE was pending."""
        invite = leg.invite
        while True:
            until = leg.cancel_sent_at + self.profile.timers.timeout if leg.cancel_wanted \
                else deadline
            event = await self.txns.next(until)
            if event is None:
                if leg.cancel_wanted:
                    self._log.warning("sip.cancel_unanswered", leg=leg.name)
                    return None
                leg.cancel_wanted = True
                if leg is self.agent:
                    self._log.info("sip.agent_answer_timeout")
                    return None
                self._log.info("sip.ring_timeout")
            elif isinstance(event, Timeout) and event.transaction is invite:
                self._log.warning("sip.invite_timeout", leg=leg.name)
                return None
            elif isinstance(event, Response) and event.transaction is invite:
                if event.response.status >= 200:
                    leg.final = event.response
                    return event.response
            else:
                await self._on_event(event)
                if leg is self.agent and self.contact.ended:
                    leg.cancel_wanted = True  # the contact hung up while the agent rang
                    return None
                if leg is self.contact and self.agent is not None and self.agent.ended:
                    leg.cancel_wanted = True  # the agent left while the contact rang
            await leg.maybe_cancel(self.txns, trio.current_time())

    async def _dial_agent(self, offer: bytes, answered_clock: float) -> bytes:
        """Set up the agent leg with the contact's offer; its SDP answer. Raises
        AgentUnavailable when that cannot be done by ``agent_answer_timeout_seconds``."""
        uri = self.request.agent_sip_uri
        if not uri:
            raise AgentUnavailable("the agent has no sip_uri")
        deadline = answered_clock + self.profile.agent_answer_timeout
        agent = await self._open_agent_leg(uri, deadline)
        build = partial(self._agent_invite, uri, offer)
        await agent.send_invite(self.txns, build)
        final = await self._await_final(agent, deadline)
        if self.contact.ended:
            self.hangup_by = HangupBy.CONTACT
            raise AgentUnavailable("the contact hung up before the agent answered")
        final = self._agent_answered(agent, final)
        await agent.send_ack(self.txns)
        answer = session_of(final)
        if answer is None:
            raise AgentUnavailable("the agent's 2xx carries no SDP answer", final.status)
        return answer

    def _agent_answered(self, agent: Leg, final: SipResponse | None) -> SipResponse:
        """The agent's 2xx, its dialog opened; AgentUnavailable for no final in time or a
        final >= 300."""
        if final is None:
            raise AgentUnavailable("the agent did not answer in time")
        if final.status >= 300:
            raise AgentUnavailable(f"the agent answered {final.status}", final.status)
        self.agent_status = final.status
        agent.open_dialog(self.txns, final)
        return final

    def _agent_invite(self, uri: str, offer: bytes, cseq: int, branch: str,
                      credentials: tuple[tuple[str, str], ...]) -> SipRequest:
        assert self.agent is not None
        return agent_invite(self.profile, self.request, uri, call_id=self.agent.call_id,
                            from_tag=self.agent.from_tag, cseq=cseq, branch=branch,
                            body=offer)

    async def _agent_address(self, uri: str, deadline: float) -> Address:
        """Where the agent's INVITE goes: its URI's host (a name is looked up: the
        tenant configured it) and port, 5060 by default."""
        try:
            parsed = parse_uri(uri)
        except SipParseError:
            raise AgentUnavailable(f"the agent's sip_uri {uri[:80]!r} is not a SIP URI") \
                from None
        host = parsed.params.get("maddr", parsed.host).strip("[]")
        port = parsed.port or 5060
        try:
            ipaddress.IPv4Address(host)
            return host, port
        except ValueError:
            pass
        with trio.move_on_at(deadline):
            try:
                return await resolve(host, port)
            except TransportError as exc:
                raise AgentUnavailable(f"the agent's host does not resolve: {exc}") from None
        raise AgentUnavailable(f"the agent's host {host!r} did not resolve in time")

    async def _decline_contact(self, offer: bytes | None) -> None:
        """ACK the contact's 2xx without connecting it (the BYE follows)."""
        if self.contact.ack_sent:
            return
        # Not ACKed yet, or an ACK built, then cancelled on its way: it goes now. (An ACK
        # already built is sent as it was, whatever answer is given here.)
        answer = b"" if offer is None else declining_answer(
            offer, self.profile.local_host, secrets.randbelow(2**31))
        await self.contact.send_ack(self.txns, answer)

    async def _talk(self, hang_up_at: float) -> None:
        """Until a leg ends or ``hang_up_at``; re-INVITEs and UPDATEs are relayed."""
        contact, agent = self.contact, self.agent
        assert agent is not None
        self.talking = True
        try:
            while not (contact.ended or agent.ended):
                relay = self.relay
                until = hang_up_at if relay is None else min(hang_up_at, relay.deadline)
                event = await self.txns.next(until)
                now = trio.current_time()
                if event is None and now >= hang_up_at:
                    self.hangup_by = HangupBy.GATEWAY
                    self._log.info("sip.max_call_reached")
                    return
                if relay is not None and (event is None or relay.takes(event)):
                    if event is None:
                        await relay.on_timer(now)
                    else:
                        await relay.on_event(event)
                    if relay.done:
                        self.relay = None
                elif event is not None:
                    await self._on_event(event)
        finally:
            self.talking = False

    async def _end_legs(self) -> None:
        """BYE every leg whose dialog is up, CANCEL every pending INVITE (one that has had
        no response yet is waited for: see :attr:`.Leg.settled`), and read their answers
        until nothing is open, for at most 64·T1 (Timer F bounds each BYE)."""
        legs = [leg for leg in (self.contact, self.agent) if leg is not None]
        for leg in legs:
            if leg.dialog is not None:
                await leg.start_bye(self.txns)
            else:
                leg.cancel_wanted = True
                await leg.maybe_cancel(self.txns, trio.current_time())
        give_up_at = trio.current_time() + self.profile.timers.timeout
        while unsettled := [leg for leg in legs if not leg.settled]:
            now = trio.current_time()
            if now >= give_up_at:
                self._log.warning("sip.legs_unsettled", legs=[leg.name for leg in unsettled])
                return
            # Wake up when a silent INVITE's wait is over, too.
            event = await self.txns.next(
                min(give_up_at, *(leg.silent_until for leg in unsettled)))
            if event is None:
                continue
            if isinstance(event, Response) and any(
                    event.transaction is leg.invite for leg in legs):
                await self._late_final(event)
            else:
                await self._on_event(event)

    async def _late_final(self, event: Response) -> None:
        """A final to an INVITE we are ending: a 2xx is ACKed and hung up."""
        for leg in (self.contact, self.agent):
            if leg is not None and event.transaction is leg.invite:
                if leg is self.agent and event.response.status >= 200:
                    self.agent_status = event.response.status  # e.g. the 487 to our CANCEL
                if event.response.status < 300 and leg.dialog is None:
                    leg.open_dialog(self.txns, event.response)
                    if leg is self.contact:
                        await self._decline_contact(session_of(event.response))
                    else:
                        await leg.send_ack(self.txns)
                    await leg.start_bye(self.txns)
                elif event.response.status < 200:
                    await leg.maybe_cancel(self.txns, trio.current_time())

    # -- what either leg sends ----------------------------------------------------------

    def _leg_for(self, call_id: str) -> Leg | None:
        for leg in (self.contact, self.agent):
            if leg is not None and leg.call_id == call_id:
                return leg
        return None

    async def _on_event(self, event: Response | Timeout | Incoming) -> None:
        """Anything that is not what the flow waits for: BYE finals, requests from either
        side, retransmitted 2xx."""
        if isinstance(event, (Response, Timeout)):
            for leg in (self.contact, self.agent):
                if leg is not None and leg.bye is not None and event.transaction is leg.bye:
                    final = event.response if isinstance(event, Response) else None
                    if final is None or final.status >= 200:
                        await leg.on_bye_final(self.txns, final)
                elif leg is not None and isinstance(event, Response) and \
                        event.transaction is leg.invite and event.response.status < 200:
                    await leg.maybe_cancel(self.txns, trio.current_time())
            return
        leg = self._leg_for(event.message.call_id)
        if leg is None:
            return
        message = event.message
        if isinstance(message, SipResponse):
            if leg.acked and leg.dialog is not None and \
                    message.cseq == leg.dialog.invite.cseq:
                await leg.send_ack(self.txns)  # our ACK was lost: the very same ACK again
            elif message.cseq[1] == "INVITE" and message.cseq[0] in leg.acks:
                assert leg.dialog is not None  # a re-INVITE's 2xx, ACKed already
                await self.transport.send(leg.acks[message.cseq[0]], leg.dialog.destination())
            return  # a 2xx not ACKed yet: the ACK comes once the other leg is ready
        await self._on_request(leg, event)

    async def _on_request(self, leg: Leg, incoming: Incoming) -> None:
        message = incoming.message
        assert isinstance(message, SipRequest)
        if self.relay is not None and self.relay.repeats(message):
            await self.relay.on_repeat()
            return
        if message.method in RELAYED and leg.dialog is not None and \
                leg.dialog.matches(message) and self.talking and self.relay is None:
            other = self.agent if leg is self.contact else self.contact
            assert other is not None
            self.relay = Relay(self.txns, leg, other, message, incoming.source,
                               f"<sip:{self.profile.local_host}:{self.profile.local_port}>")
            try:
                await self.relay.start()
            except ValueError as exc:  # the request's headers cannot go out as they are
                self._log.debug("sip.relay_unsendable", error=str(exc))
                self.relay = None
            return
        try:
            reply = leg.reply_to(incoming, busy=self.talking)
            if reply is None:
                return
            response, is_bye = reply
            data = response.encode()
            self.transport.remember_response(message, data, incoming.source)
        except ValueError as exc:  # SipParseError included: drop it, the peer retransmits
            self._log.debug("sip.reply_unsendable", method=message.method, error=str(exc))
            return
        if is_bye:
            if leg is self.agent and not leg.ended:  # not a retransmission
                self._take_disposition(message)
            leg.ended = True
            if self.hangup_by is None:
                self.hangup_by = HangupBy.CONTACT if leg is self.contact else HangupBy.AGENT
            self._log.info("sip.remote_hangup", leg=leg.name)
        try:
            await self.transport.send(data, incoming.source)
        except TransportError as exc:  # a lost reply: the peer retransmits, the call goes on
            self._log.debug("sip.reply_failed", error=str(exc))

    def _take_disposition(self, bye: SipRequest) -> None:
        said, ignored = agent_disposition(bye, utcnow())
        if ignored:
            self._log.debug("sip.disposition_ignored", reasons=ignored)
        if said is not None:
            self.disposition = said
            self._log.debug("sip.agent_disposition", disposition=said.disposition)

    async def _abandon(self) -> None:
        """Clean-up after cancellation or an error: leave nothing open at either peer."""
        if self.hangup_by is None and self.answered_at is not None:
            self.hangup_by = HangupBy.GATEWAY
        try:
            contact = self.contact
            if contact.dialog is not None and contact.final is not None:
                await self._decline_contact(session_of(contact.final))
            await self._end_legs()
        except (TransportError, SipParseError) as exc:
            self._log.warning("sip.cleanup_failed", error=str(exc))
        except Exception as exc:  # never let a clean-up bug replace the exception in flight
            self._log.error("sip.cleanup_crashed", error=repr(exc), exc_info=exc)
