"""The simulated carrier and agent: outcomes and timings from rules, else a seeded random mix.

A number's fate is a pure function of (seed, number, attempt): runs are reproducible in
any order and under any concurrency, and a retry can turn out differently from the first
try. Ring, agent-answer and talk time are slept on trio's clock, so tests can drive them.

A call the contact answers goes on to the agent leg: ``on_answer``, then
``agent_answer_seconds`` later either ``on_connect`` and the talk (``answered``, hung up
by the contact or the agent) or, for an agent that cannot take it, ``agent_unavailable``
(answered, never connected, hung up by the gateway). A rule may give the agent a
disposition for the calls it takes (``callback_at`` ``callback_after_seconds`` after the
call ended, for a callback), reported in the result as the SIP agent's BYE reports it.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import NamedTuple

import trio

from gateway.clock import utcnow
from gateway.config import SimSettings
from gateway.telephony.base import IGNORE_PROGRESS, AnswerCallback, CallResult, DialRequest
from gateway.vocabulary import Disposition, HangupBy, Outcome


class SimPlan(NamedTuple):
    """What one attempt will do: the carrier's outcome, then (if the contact answers)
    the agent's, and the times slept. A tuple whose first items are (outcome, ring, talk),
    as the plan was before the agent leg (``plan(number, 1)[0]`` is the outcome)."""

    outcome: Outcome  # the contact's side: answered, busy, no_answer, failed, invalid_number
    ring_seconds: float
    talk_seconds: float
    agent_outcome: Outcome = Outcome.ANSWERED  # answered or agent_unavailable
    hangup_by: HangupBy = HangupBy.CONTACT  # of a call that reached the agent
    # What the agent says of a call that reached it (rules only).
    disposition: Disposition | None = None
    callback_after_seconds: float | None = None


class SimAdapter:
    def __init__(self, settings: SimSettings) -> None:
        self._settings = settings
        outcomes = sorted(settings.mix.items())
        self._outcomes = [Outcome(name) for name, _ in outcomes]
        self._weights = [weight for _, weight in outcomes]

    @property
    def ready(self) -> bool:
        return True  # nothing to start: it dials from the moment it is made

    def plan(self, number: str, attempt: int) -> SimPlan:
        """The plan of this number's attempt: the first rule matching the number, else
        the seeded mix (outcome, ring and talk time, then whether the agent is
        unavailable, drawn in that order)."""
        for rule in self._settings.rules:
            if rule.matches(number):
                return SimPlan(Outcome(rule.outcome), rule.ring_seconds, rule.talk_seconds,
                               Outcome(rule.agent_outcome), HangupBy(rule.hangup_by),
                               rule.disposition, rule.callback_after_seconds)
        rng = random.Random(f"{self._settings.seed}:{number}:{attempt}")
        outcome = rng.choices(self._outcomes, self._weights)[0]
        ring = rng.uniform(*self._settings.ring_seconds)
        talk = rng.uniform(*self._settings.talk_seconds) if outcome == Outcome.ANSWERED else 0.0
        unavailable = rng.random() < self._settings.agent_unavailable_rate
        return SimPlan(outcome, ring, talk,
                       Outcome.AGENT_UNAVAILABLE if unavailable else Outcome.ANSWERED)

    async def dial(self, request: DialRequest, on_answer: AnswerCallback,
                   on_connect: AnswerCallback = IGNORE_PROGRESS) -> CallResult:
        plan = self.plan(request.to_number, request.attempt)
        if plan.outcome == Outcome.INVALID_NUMBER:
            return CallResult(Outcome.INVALID_NUMBER, ended_at=utcnow())
        await trio.sleep(plan.ring_seconds)
        if plan.outcome != Outcome.ANSWERED:
            return CallResult(plan.outcome, ended_at=utcnow())
        answered_at = utcnow()
        await on_answer(answered_at)
        await trio.sleep(self._settings.agent_answer_seconds)
        if plan.agent_outcome == Outcome.AGENT_UNAVAILABLE:
            return CallResult(Outcome.AGENT_UNAVAILABLE, answered_at=answered_at,
                              ended_at=utcnow(), hangup_by=HangupBy.GATEWAY)
        connected_at = utcnow()
        await on_connect(connected_at)
        await trio.sleep(plan.talk_seconds)
        ended_at = utcnow()
        callback_at = None
        if plan.disposition == Disposition.CALLBACK and plan.callback_after_seconds is not None:
            callback_at = ended_at + timedelta(seconds=plan.callback_after_seconds)
        return CallResult(Outcome.ANSWERED, answered_at=answered_at, ended_at=ended_at,
                          connected_at=connected_at, hangup_by=plan.hangup_by,
                          disposition=plan.disposition, callback_at=callback_at)
