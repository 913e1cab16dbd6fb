"""Final SIP status → call outcome."""

from __future__ import annotations

from gateway.vocabulary import Outcome

BUSY = frozenset({486, 600})
NO_ANSWER = frozenset({408, 480, 487})
INVALID_NUMBER = frozenset({404, 484, 604})


def outcome_for_status(status: int | None) -> Outcome:
    """2xx answered; 486/600 busy; 408/480/487 no_answer; 404/484/604 invalid_number;
    any other final status, or none at all (transaction timeout, transport error), failed."""
    if status is None:
        return Outcome.FAILED
    if 200 <= status < 300:
        return Outcome.ANSWERED
    if status in BUSY:
        return Outcome.BUSY
    if status in NO_ANSWER:
        return Outcome.NO_ANSWER
    if status in INVALID_NUMBER:
        return Outcome.INVALID_NUMBER
    return Outcome.FAILED
