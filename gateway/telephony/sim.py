"""The simulated carrier: outcomes and timings from rules, else a seeded random mix.

A number's fate is a pure function of (seed, number, attempt): runs are reproducible in
any order and under any concurrency, and a retry can turn out differently from the first
try. Ring and talk time are slept on trio's clock, so tests can drive them.
"""

from __future__ import annotations

import random

import trio

from gateway.clock import utcnow
from gateway.config import SimSettings
from gateway.telephony.base import AnswerCallback, CallResult, DialRequest
from gateway.vocabulary import Outcome


class SimAdapter:
    def __init__(self, settings: SimSettings) -> None:
        self._settings = settings
        outcomes = sorted(settings.mix.items())
        self._outcomes = [Outcome(name) for name, _ in outcomes]
        self._weights = [weight for _, weight in outcomes]

    def plan(self, number: str, attempt: int) -> tuple[Outcome, float, float]:
        """(outcome, ring seconds, talk seconds) for this number's attempt."""
        for rule in self._settings.rules:
            if rule.matches(number):
                return Outcome(rule.outcome), rule.ring_seconds, rule.talk_seconds
        rng = random.Random(f"{self._settings.seed}:{number}:{attempt}")
        outcome = rng.choices(self._outcomes, self._weights)[0]
        ring = rng.uniform(*self._settings.ring_seconds)
        talk = rng.uniform(*self._settings.talk_seconds) if outcome == Outcome.ANSWERED else 0.0
        return outcome, ring, talk

    async def dial(self, request: DialRequest, on_answer: AnswerCallback) -> CallResult:
        outcome, ring, talk = self.plan(request.to_number, request.attempt)
        if outcome == Outcome.INVALID_NUMBER:
            return CallResult(Outcome.INVALID_NUMBER, ended_at=utcnow())
        await trio.sleep(ring)
        if outcome != Outcome.ANSWERED:
            return CallResult(outcome, ended_at=utcnow())
        answered_at = utcnow()
        await on_answer(answered_at)
        await trio.sleep(talk)
        return CallResult(Outcome.ANSWERED, answered_at=answered_at, ended_at=utcnow())
