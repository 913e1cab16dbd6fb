"""The telephony interface: dial a request, get a result; cancellable.

The campaign actor does not know which adapter it has. An adapter reports the answer
moment through ``on_answer`` (so ``answered_at`` is recorded as it happens) and returns a
:class:`CallResult` when the call is over. Cancelling ``dial`` must hang up or cancel the
call at the far end before returning (shielding its own clean-up), and then re-raise.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

import attrs

from gateway.vocabulary import Outcome


@attrs.frozen
class DialRequest:
    call_id: uuid.UUID          # the attempt's id
    campaign_id: uuid.UUID
    contact_id: uuid.UUID
    agent_id: uuid.UUID
    attempt: int
    to_number: str              # E.164
    from_number: str            # E.164 caller ID
    variables: dict[str, str]   # the contact's custom fields
    agent_sip_uri: str | None = None
    agent_media_address: str | None = None  # SDP media address; None: the adapter's


@attrs.frozen
class CallResult:
    outcome: Outcome
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    sip_call_id: str | None = None
    sip_status: int | None = None

    @property
    def duration_seconds(self) -> float | None:
        """Talk time: from answer to end (None if never answered)."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.answered_at).total_seconds())


AnswerCallback = Callable[[datetime], Awaitable[None]]


class TelephonyAdapter(Protocol):
    async def dial(self, request: DialRequest, on_answer: AnswerCallback) -> CallResult:
        """Place the call and return when it is over."""
        ...
