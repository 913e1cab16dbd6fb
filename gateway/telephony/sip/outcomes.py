"""Final SIP status → call outcome."""

from __future__ import annotations

from gateway.telephony.base import Outcome

BUSY = frozenset({486, 600})
NO_ANSWER = frozenset({408, 480, 487})
INVALID_NUMBER = frozenset({404, 484, 604})


def outcome_for_status(status: int | None) -> Outcome:
    """2xx answered; 486/600 busy; 408/480/487 no_answer; 404/484/604 invalid_number;
    any other final status, or none at all (transaction timeout, transport error), failed."""
    if status is None:
        return "failed"
    if 200 <= status < 300:
        return "answered"
    if status in BUSY:
        return "busy"
    if status in NO_ANSWER:
        return "no_answer"
    if status in INVALID_NUMBER:
        return "invalid_number"
    return "failed"
