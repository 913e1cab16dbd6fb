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

import trio

from gateway.clock import utcnow
from gateway.engine.budget import Slot
from gateway.engine.deps import EngineDeps
from gateway.engine.handle import CampaignHandle
from gateway.logs import get_logger
from gateway.store.dialing import Claim
from gateway.telephony.base import CallResult, DialRequest
from gateway.vocabulary import Outcome

log = get_logger(__name__)
RECORD_ON_CANCEL_SECONDS = 5.0


async def run_call(deps: EngineDeps, handle: CampaignHandle, request: DialRequest,
                   slot: Slot, claim: Claim, on_result: Callable[[CallResult], None]) -> None:
    """Run one call to its end. ``handle.in_flight`` was counted by the caller; this
    releases it and the slot whatever happens."""
    ids = {"campaign_id": str(request.campaign_id), "contact_id": str(request.contact_id),
           "call_id": str(request.call_id), "attempt": request.attempt}
    try:
        log.info("call.dialed", to=request.to_number, **ids)
        answered: list[datetime] = []

        async def on_answer(at: datetime) -> None:
            answered.append(at)
            log.info("call.answered", **ids)

        try:
            result = await deps.adapter.dial(request, on_answer)
        except trio.Cancelled:
            interrupted = CallResult(Outcome.INTERRUPTED,
                                     answered_at=answered[0] if answered else None,
                                     ended_at=utcnow())
            with trio.CancelScope(shield=True), trio.move_on_after(RECORD_ON_CANCEL_SECONDS):
                await deps.recorder.record(claim.attempt_id, interrupted)
                log.info("call.ended", outcome=Outcome.INTERRUPTED, **ids)
            raise
        except Exception as exc:  # an adapter bug must cost one call, not the campaign
            log.error("call.adapter_error", error=repr(exc), **ids)
            result = CallResult(Outcome.FAILED, ended_at=utcnow())
        if result.ended_at is None:
            result = CallResult(result.outcome, result.answered_at, utcnow(),
                                result.sip_call_id, result.sip_status)
        try:
            status = await deps.recorder.record(claim.attempt_id, result)
        except Exception as exc:  # not an outage (the recorder waits those out): a bad write
            # The attempt stays open without a call: the orphan sweep finishes it, so its
            # contact is not left in_progress (nor the campaign unfinished) until a restart.
            log.error("call.record_failed", error=repr(exc), outcome=result.outcome, **ids)
            deps.live.want_sweep()
            return
        log.info("call.ended", outcome=result.outcome, duration_seconds=result.duration_seconds,
                 contact_status=status, sip_status=result.sip_status, **ids)
        on_result(result)
    finally:
        deps.live.ids.discard(claim.attempt_id)
        deps.budget.release(slot)
        handle.in_flight -= 1
        handle.poke()

