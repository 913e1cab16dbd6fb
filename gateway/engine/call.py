"""One call: dial through the adapter, record the result, give the slot back.

The attempt row was written when the contact was claimed; here the result is written
(through the batching :class:`~gateway.engine.recorder.Recorder`, which waits out a
database outage: no result is lost).
Cancellation (shutdown past the grace period) records the call as ``interrupted`` before
it propagates, shielded and bounded, so a restart has as little as possible to recover.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import attrs
import trio

from gateway.clock import utcnow
from gateway.engine.budget import Slot
from gateway.engine.deps import EngineDeps
from gateway.engine.handle import CampaignHandle
from gateway.logs import get_logger
from gateway.metrics import AccountFigures
from gateway.store.dialing import Claim
from gateway.telephony.base import CallResult, DialRequest
from gateway.vocabulary import HangupBy, Outcome

log = get_logger(__name__)
RECORD_ON_CANCEL_SECONDS = 5.0


@attrs.define
class LivePhase:
    """How far one live call got, counted on its campaign's handle: ``ringing`` from the
    dial to the contact's answer, ``connected`` from the agent leg's set-up to the end.

    :meth:`dialed` counts the call in, :meth:`ended` counts it out of whichever it is in;
    the callbacks may repeat (counted once) and ``connected`` implies an answer (an
    adapter that reports only the connection is counted out of ringing there)."""

    handle: CampaignHandle
    answered_at: datetime | None = None
    connected_at: datetime | None = None
    live: bool = False

    def dialed(self) -> None:
        self.live = True
        self.handle.ringing += 1

    def answered(self, at: datetime) -> bool:
        """True the first time."""
        if self.answered_at is not None:
            return False
        self.answered_at = at
        if self.live:
            self.handle.ringing -= 1
        return True

    def connected(self, at: datetime) -> bool:
        """True the first time."""
        if self.connected_at is not None:
            return False
        self.answered(at)
        self.connected_at = at
        if self.live:
            self.handle.connected += 1
        return True

    def ended(self) -> None:
        if not self.live:
            return
        self.live = False
        if self.answered_at is None:
            self.handle.ringing -= 1
        if self.connected_at is not None:
            self.handle.connected -= 1

    def complete(self, result: CallResult) -> CallResult:
        """``result`` with its end time, and the answer and connection instants the
        callbacks reported where the adapter's result leaves them out (an ``answered``
        call was answered and connected; an ``agent_unavailable`` one answered)."""
        answered_at, connected_at = result.answered_at, result.connected_at
        if result.outcome in (Outcome.ANSWERED, Outcome.AGENT_UNAVAILABLE):
            answered_at = answered_at or self.answered_at
        if result.outcome == Outcome.ANSWERED:
            connected_at = connected_at or self.connected_at
        return attrs.evolve(result, ended_at=result.ended_at or utcnow(),
                            answered_at=answered_at, connected_at=connected_at)


async def run_call(deps: EngineDeps, handle: CampaignHandle, request: DialRequest,
                   slot: Slot, claim: Claim, on_result: Callable[[CallResult], None],
                   figures: AccountFigures | None = None) -> None:
    """Run one call to its end. ``handle.in_flight`` was counted by the caller; this
    releases it and the slot whatever happens, and counts the call in and out of
    ``handle.ringing`` and ``handle.connected`` as it goes (out of both once the dial
    has returned or raised). ``figures``: the account's counters (the campaign actor's),
    where the recorded outcome is counted."""
    if figures is None:
        figures = deps.metrics.account(handle.account_id)
    ids = {"campaign_id": str(request.campaign_id), "contact_id": str(request.contact_id),
           "call_id": str(request.call_id), "attempt": request.attempt}
    phase = LivePhase(handle)
    try:
        log.debug("call.dialed", to=request.to_number, **ids)

        async def on_answer(at: datetime) -> None:
            if phase.answered(at):
                log.debug("call.answered", **ids)

        async def on_connect(at: datetime) -> None:
            if phase.connected(at):
                log.info("call.connected", **ids)

        try:
            phase.dialed()
            result = await deps.adapter.dial(request, on_answer, on_connect)
        except trio.Cancelled:
            phase.ended()
            interrupted = CallResult(
                Outcome.INTERRUPTED, answered_at=phase.answered_at, ended_at=utcnow(),
                connected_at=phase.connected_at,
                hangup_by=HangupBy.GATEWAY if phase.answered_at is not None else None)
            with trio.CancelScope(shield=True):
                with trio.move_on_after(RECORD_ON_CANCEL_SECONDS) as recording:
                    if await deps.recorder.record(claim.attempt_id, interrupted) is not None:
                        figures.ended(Outcome.INTERRUPTED)
                # recorded false: the database did not take the result in time (it is cut
                # off): whoever takes the account over finishes the attempt.
                log.info("call.ended", outcome=Outcome.INTERRUPTED,
                         hangup_by=interrupted.hangup_by,
                         connected=phase.connected_at is not None,
                         recorded=not recording.cancelled_caught, **ids)
            raise
        except Exception as exc:  # an adapter bug must cost one call, not the campaign
            log.error("call.adapter_error", error=repr(exc), **ids)
            result = CallResult(Outcome.FAILED, ended_at=utcnow())
        finally:
            phase.ended()
        result = phase.complete(result)
        try:
            status = await deps.recorder.record(claim.attempt_id, result)
        except Exception as exc:  # not an outage (the recorder waits those out): a bad write
            # The attempt stays open without a call: the orphan sweep finishes it, so its
            # contact is not left in_progress (nor the campaign unfinished) until a restart.
            log.error("call.record_failed", error=repr(exc), outcome=result.outcome, **ids)
            deps.live.want_sweep()
            return
        if status is not None:  # None: finished already (the orphan sweep's, not this one)
            figures.ended(result.outcome)
        log.info("call.ended", outcome=result.outcome, duration_seconds=result.duration_seconds,
                 contact_status=status, sip_status=result.sip_status,
                 hangup_by=result.hangup_by, connected=result.connected_at is not None,
                 agent_sip_status=result.agent_sip_status,
                 agent_sip_call_id=result.agent_sip_call_id, **ids)
        on_result(result)
    finally:
        phase.ended()
        deps.live.ids.discard(claim.attempt_id)
        deps.budget.release(slot)
        handle.in_flight -= 1
        handle.poke()
