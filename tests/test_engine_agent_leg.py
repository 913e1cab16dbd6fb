"""The agent leg in the engine, on trio's mock clock: one call through ``run_call`` with the
simulated carrier and agent (or an adapter that misbehaves), the live phases it counts on
its campaign's handle, the result it records; the failure streak's decision and reasons;
the simulator's plans.

The clock jumps to the next deadline as soon as every task waits (autojump 0), so each
``trio.sleep`` of the test lands between two steps of the call, exactly: the phases are
checked at instants, not raced. The recorder is a stand-in that keeps what it is given
(the database's side is tested end to end in test_engine_run and test_events).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import trio
import trio.testing

from gateway.clock import utcnow
from gateway.config import EngineSettings, SimRule, SimSettings
from gateway.engine.call import run_call
from gateway.engine.campaign import _FailureStreak, describe_agent
from gateway.engine.deps import EngineDeps
from gateway.engine.handle import CampaignHandle
from gateway.store.dialing import Claim
from gateway.telephony.base import CallResult, DialRequest
from gateway.telephony.sim import SimAdapter
from gateway.vocabulary import HangupBy, Outcome

# Mock time runs these in well under a second of real time.
pytestmark = pytest.mark.timeout(20)
NUMBER = "+12025550143"
RING, AGENT_ANSWER, TALK = 1.0, 2.0, 10.0  # the call: answered at 1 s, connected at 3 s


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class _Recorder:
    """Keeps each result, and the handle's (ringing, connected) when it was recorded."""

    def __init__(self, handle: CampaignHandle) -> None:
        self.handle = handle
        self.results: list[CallResult] = []
        self.phases_at_record: list[tuple[int, int]] = []

    async def record(self, attempt_id: uuid.UUID, result: CallResult) -> str:
        self.phases_at_record.append((self.handle.ringing, self.handle.connected))
        await trio.sleep(0.5)  # a write takes time: the call is over meanwhile
        self.results.append(result)
        return "completed"


class _Budget:
    def __init__(self) -> None:
        self.released: list[object] = []

    def release(self, slot: object) -> None:
        self.released.append(slot)


def _sim(**rule) -> SimAdapter:
    fields = {"pattern": "*", "outcome": "answered", "ring_seconds": RING,
              "talk_seconds": TALK, **rule}
    return SimAdapter(SimSettings(rules=[SimRule(**fields)], agent_answer_seconds=AGENT_ANSWER))


class _Call:
    """One call of a campaign through run_call, and what it left behind."""

    def __init__(self, adapter) -> None:
        self.handle = CampaignHandle(uuid.uuid4(), uuid.uuid4())
        self.recorder, self.budget = _Recorder(self.handle), _Budget()
        self.deps = EngineDeps(db=None, budget=self.budget, recorder=self.recorder,
                               adapter=adapter, settings=EngineSettings())
        self.on_result: list[CallResult] = []

    @property
    def phases(self) -> tuple[int, int, int]:
        handle = self.handle
        return handle.ringing, handle.connected, handle.in_flight

    async def run(self) -> None:
        attempt_id = uuid.uuid4()
        request = DialRequest(call_id=attempt_id, campaign_id=self.handle.campaign_id,
                              contact_id=uuid.uuid4(), agent_id=uuid.uuid4(), attempt=1,
                              to_number=NUMBER, from_number="+14155550100", variables={})
        claim = Claim(attempt_id, request.contact_id, 0, 1, NUMBER, {})
        self.deps.live.ids.add(attempt_id)
        self.handle.in_flight += 1
        await run_call(self.deps, self.handle, request, "slot", claim, self.on_result.append)

    def ended_cleanly(self) -> CallResult:
        """Every count back to zero (the phases before the result was written), the slot
        given back: the one result recorded."""
        assert self.phases == (0, 0, 0)
        assert self.recorder.phases_at_record == [(0, 0)]
        assert self.budget.released == ["slot"] and self.deps.live.ids == set()
        [result] = self.recorder.results
        return result


def _seconds(start: datetime | None, end: datetime | None) -> float:
    assert start is not None and end is not None
    return (end - start).total_seconds()


async def test_a_call_counts_ringing_then_connected_then_nothing(clock):
    call = _Call(_sim(hangup_by="agent"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call.run)
        await trio.sleep(RING / 2)
        assert call.phases == (1, 0, 1)  # dialed, not answered
        await trio.sleep(RING)
        assert call.phases == (0, 0, 1)  # answered; the agent is answering
        await trio.sleep(AGENT_ANSWER)
        assert call.phases == (0, 1, 1)  # connected to the agent
        await trio.sleep(TALK)
    result = call.ended_cleanly()
    assert call.on_result == [result]
    assert (result.outcome, result.hangup_by) == (Outcome.ANSWERED, HangupBy.AGENT)
    assert _seconds(result.answered_at, result.connected_at) == pytest.approx(AGENT_ANSWER)
    assert _seconds(result.connected_at, result.ended_at) == pytest.approx(TALK)
    assert result.duration_seconds == pytest.approx(AGENT_ANSWER + TALK)


async def test_an_unavailable_agent_answers_the_contact_and_never_connects(clock):
    call = _Call(_sim(agent_outcome="agent_unavailable"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call.run)
        await trio.sleep(RING + AGENT_ANSWER / 2)
        assert call.phases == (0, 0, 1)
    result = call.ended_cleanly()
    assert result.outcome == Outcome.AGENT_UNAVAILABLE and result.hangup_by == HangupBy.GATEWAY
    assert result.connected_at is None and result.answered_at is not None
    assert _seconds(result.answered_at, result.ended_at) == pytest.approx(AGENT_ANSWER)


@pytest.mark.parametrize(("cut_at", "answered", "connected"), [
    (RING / 2, False, False), (RING + AGENT_ANSWER / 2, True, False),
    (RING + AGENT_ANSWER + TALK / 2, True, True)])
async def test_a_cancelled_call_is_interrupted_and_counted_out_at_once(clock, cut_at, answered,
                                                                      connected):
    """A shutdown past its grace cancels the call in whatever phase it is: the phases are
    counted out before the (shielded) record, which keeps the instants reached."""
    call = _Call(_sim())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call.run)
        await trio.sleep(cut_at)
        nursery.cancel_scope.cancel()
    result = call.ended_cleanly()
    assert result.outcome == Outcome.INTERRUPTED and call.on_result == []
    assert (result.answered_at is not None, result.connected_at is not None) == \
        (answered, connected)
    assert result.hangup_by == (HangupBy.GATEWAY if answered else None)
    assert result.ended_at is not None


class _Erratic:
    """An adapter that reports its progress oddly, then fails or returns ``result``."""

    def __init__(self, *, raises: bool, answer: bool = True, result: CallResult | None = None
                 ) -> None:
        self.raises, self.answer, self.result = raises, answer, result
        self.live = trio.Event()
        self.go = trio.Event()

    async def dial(self, request, on_answer, on_connect):
        at = utcnow()
        if self.answer:
            await on_answer(at)
            await on_answer(at)  # twice: counted once
        await on_connect(at)  # without an answer first: the connection implies it
        await on_connect(at)
        self.live.set()
        await self.go.wait()
        if self.raises:
            raise RuntimeError("adapter bug")
        assert self.result is not None
        return self.result


@pytest.mark.parametrize("answer", [True, False])
async def test_an_adapter_error_after_the_connection_counts_the_call_out(clock, answer):
    adapter = _Erratic(raises=True, answer=answer)
    call = _Call(adapter)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call.run)
        await adapter.live.wait()
        assert call.phases == (0, 1, 1)
        adapter.go.set()
    result = call.ended_cleanly()
    assert result.outcome == Outcome.FAILED and result.answered_at is None
    assert call.on_result == [result]  # it counts for the failure streak


async def test_the_instants_the_callbacks_reported_complete_an_adapters_result(clock):
    """An adapter that reports the answer and the connection but leaves them out of its
    result (and the end time): the record has them."""
    adapter = _Erratic(raises=False, result=CallResult(Outcome.ANSWERED,
                                                       hangup_by=HangupBy.CONTACT))
    call = _Call(adapter)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call.run)
        await adapter.live.wait()
        adapter.go.set()
    result = call.ended_cleanly()
    assert result.answered_at is not None and result.connected_at == result.answered_at
    assert result.ended_at is not None and result.hangup_by == HangupBy.CONTACT


# -- the failure streak -------------------------------------------------------------------------

AGENT = describe_agent("Ava", "sip:ava@10.0.0.5")


async def test_the_streak_fails_after_its_time_and_its_calls_whatever_the_mix(clock):
    streak = _FailureStreak(seconds=60, min_calls=3)
    assert not streak.add(Outcome.AGENT_UNAVAILABLE)
    await trio.sleep(61)
    assert not streak.add(Outcome.FAILED)  # long enough, but 2 calls
    assert streak.add(Outcome.AGENT_UNAVAILABLE)
    assert streak.reason(AGENT) == (
        "no call reached the agent Ava (sip:ava@10.0.0.5) for 60 s (3 calls in a row: 1 "
        "rejected by the carrier, 2 answered but the agent was unavailable): check the "
        "trunk, and the agent's sip_uri and that it answers")


@pytest.mark.parametrize("reset_by", [Outcome.ANSWERED, Outcome.BUSY, Outcome.NO_ANSWER,
                                      Outcome.INTERRUPTED, Outcome.INVALID_NUMBER])
async def test_any_other_outcome_ends_the_streak(clock, reset_by):
    streak = _FailureStreak(seconds=60, min_calls=3)
    for _ in range(3):
        assert not streak.add(Outcome.AGENT_UNAVAILABLE)
    await trio.sleep(59)
    assert not streak.add(reset_by)
    await trio.sleep(2)  # 61 s after the first failure, but the streak began again
    for _ in range(3):
        assert not streak.add(Outcome.AGENT_UNAVAILABLE)
    await trio.sleep(60)
    assert streak.add(Outcome.AGENT_UNAVAILABLE) and streak.count == 4


async def test_the_streaks_reason_names_what_failed(clock):
    agent_only = _FailureStreak(seconds=0.5, min_calls=2)
    carrier_only = _FailureStreak(seconds=0.5, min_calls=2)
    for _ in range(2):
        agent_only.add(Outcome.AGENT_UNAVAILABLE)
        carrier_only.add(Outcome.FAILED)
    assert agent_only.reason(describe_agent("Ava", None)) == (
        "the agent Ava (no sip_uri) was unavailable for every call for 0.5 s (2 answered "
        "calls in a row could not be connected to it): check its sip_uri and that it answers")
    assert carrier_only.reason(AGENT) == \
        "the carrier rejected every call for 0.5 s (2 calls in a row failed)"


# -- the simulator's plans ----------------------------------------------------------------------

def test_the_agent_unavailable_rate_is_seeded_and_leaves_the_carriers_draws_alone():
    """The agent's draw comes after the carrier's: a rate changes which answered calls the
    agent takes, never a number's carrier outcome or times; a plan is a pure function of
    (seed, number, attempt)."""
    numbers = [f"+1212555{i:04d}" for i in range(2000)]
    plain = SimAdapter(SimSettings(seed=7))
    rated = SimAdapter(SimSettings(seed=7, agent_unavailable_rate=0.25))
    again = SimAdapter(SimSettings(seed=7, agent_unavailable_rate=0.25))
    plans = [rated.plan(number, 1) for number in numbers]
    assert plans == [again.plan(number, 1) for number in numbers]
    assert [plan[:3] for plan in plans] == [plain.plan(number, 1)[:3] for number in numbers]
    assert {plain.plan(number, 1).agent_outcome for number in numbers} == {Outcome.ANSWERED}
    answered = [plan for plan in plans if plan.outcome == Outcome.ANSWERED]
    unavailable = sum(plan.agent_outcome == Outcome.AGENT_UNAVAILABLE for plan in answered)
    assert 0.2 < unavailable / len(answered) < 0.3
    assert {plan.hangup_by for plan in plans} == {HangupBy.CONTACT}
    # A retry is drawn anew.
    assert [rated.plan(number, 2) for number in numbers] != plans


def test_a_rule_decides_the_agent_and_the_rate_does_not_apply_to_it():
    adapter = SimAdapter(SimSettings(
        agent_unavailable_rate=1.0,
        rules=[SimRule(pattern="*1", outcome="answered", agent_outcome="agent_unavailable"),
               SimRule(pattern="*2", outcome="answered", hangup_by="agent"),
               SimRule(pattern="*3", outcome="busy")]))
    assert adapter.plan("+12025550141", 1).agent_outcome == Outcome.AGENT_UNAVAILABLE
    two = adapter.plan("+12025550142", 1)
    assert (two.agent_outcome, two.hangup_by) == (Outcome.ANSWERED, HangupBy.AGENT)
    assert adapter.plan("+12025550143", 1).outcome == Outcome.BUSY
    # Numbers no rule matches: the rate (here every answered call).
    assert adapter.plan("+12025550149", 1).agent_outcome == Outcome.AGENT_UNAVAILABLE


async def test_a_busy_number_never_reaches_the_agent(clock):
    connected: list[datetime] = []

    async def on_connect(at: datetime) -> None:
        connected.append(at)

    async def on_answer(at: datetime) -> None:
        raise AssertionError("not answered")

    adapter = _sim(outcome="busy")
    request = DialRequest(call_id=uuid.uuid4(), campaign_id=uuid.uuid4(),
                          contact_id=uuid.uuid4(), agent_id=uuid.uuid4(), attempt=1,
                          to_number=NUMBER, from_number="+14155550100", variables={})
    started = trio.current_time()
    result = await adapter.dial(request, on_answer, on_connect)
    assert trio.current_time() - started == pytest.approx(RING)
    assert (result.outcome, result.answered_at, result.connected_at, result.hangup_by) == \
        (Outcome.BUSY, None, None, None)
    assert connected == [] and result.ended_at is not None


def test_sim_settings_bound_the_agent_settings():
    with pytest.raises(ValueError, match="agent_unavailable_rate"):
        SimSettings(agent_unavailable_rate=1.5)
    with pytest.raises(ValueError, match="agent_answer_seconds"):
        SimSettings(agent_answer_seconds=-1)
    with pytest.raises(ValueError, match="hangup_by"):
        SimRule(pattern="*", outcome="answered", hangup_by="gateway")
    with pytest.raises(ValueError, match="agent_outcome"):
        SimRule(pattern="*", outcome="answered", agent_outcome="busy")
