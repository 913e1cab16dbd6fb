"""The telephony interface: dial a request, get a result; cancellable.

The campaign actor does not know which adapter it has. An adapter reports the moment the
contact answers through ``on_answer`` and the moment the agent leg is up through
``on_connect`` (so both are logged and counted as they happen), and returns a
:class:`CallResult` when the call is over. A call is ``answered`` only once the contact
is connected to the agent; a contact who answers but cannot be connected is
``agent_unavailable`` (``answered_at`` set, ``connected_at`` not). Cancelling ``dial``
must hang up or cancel the call at the far end before returning (shielding its own
clean-up), and then re-raise.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

import attrs

from gateway.vocabulary import Disposition, HangupBy, Outcome


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


@attrs.frozen
class CallResult:
    outcome: Outcome
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    sip_call_id: str | None = None
    sip_status: int | None = None
    connected_at: datetime | None = None   # the agent leg is up
    hangup_by: HangupBy | None = None      # who ended an answered call
    agent_sip_status: int | None = None    # the agent's final response to its INVITE
    agent_sip_call_id: str | None = None
    # What the agent said of the call when it hung up (X-Disposition on its BYE; the
    # simulated agent's rules): None when it said nothing.
    disposition: Disposition | None = None
    callback_at: datetime | None = None    # with a callback disposition: when to call
    disposition_notes: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        """Talk time: from answer to end (None if never answered)."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.answered_at).total_seconds())


AnswerCallback = Callable[[datetime], Awaitable[None]]


async def _ignore(at: datetime) -> None:
    return None


class TelephonyAdapter(Protocol):
    @property
    def ready(self) -> bool:
        """Can it place calls now (``/readyz``): the SIP adapter once its socket is bound
        and read, the simulated carrier always."""
        ...

    async def dial(self, request: DialRequest, on_answer: AnswerCallback,
                   on_connect: AnswerCallback = _ignore) -> CallResult:
        """Place the call, connect it to the agent, and return when it is over."""
        ...


IGNORE_PROGRESS: AnswerCallback = _ignore
