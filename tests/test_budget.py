"""The call budget (gateway/engine/budget.py): pure actor logic, no database, no network.

Rules every test here follows:

- Time is trio's mock clock (``autojump_clock``: it jumps to the next deadline as soon as
  every task is blocked), so minutes of dialing take milliseconds. ``wait_all_tasks_blocked``
  lets grants settle; nothing sleeps in real time.
- conftest bounds each test in real time (``timeout`` marker): 10 s here, for tests that
  take milliseconds.
- An autojump clock never moves while some task is runnable, so a budget actor that spins
  would stall a test until that bound. :class:`ActorWatch` (a trio Instrument)
  counts the actor's steps and ends the test with :class:`ActorSpinning` when the actor
  keeps running at one instant of time.
- Fake calls keep their own ledger (:class:`Ledger`): acquire -> count up and check the
  caps, sleep on the mock clock, count down and release in ``finally``.
- Durations are multiples of 1/8 s (exact in binary floating point), so the ledger's 60 s
  window arithmetic is exact; one test uses inexact times on purpose.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import asynccontextmanager
from itertools import pairwise

import attrs
import pytest
import trio
import trio.testing

from gateway.engine.budget import RATE_WINDOW_SECONDS, Budget, BudgetStatistics, Slot

UNLIMITED_RATE = 1_000_000
# conftest bounds each test in real time (60 s by default): these take milliseconds, so a
# hang (a deadlock leaves the autojump clock with nothing to jump to) fails fast
pytestmark = pytest.mark.timeout(10)


# -- helpers ---------------------------------------------------------------------------------


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def eighths(rng: random.Random, low: int, high: int) -> float:
    """A random duration in [low/8, high/8] s on a 1/8 s grid (exact in floats)."""
    return rng.randint(low, high) / 8


class CallCrashed(Exception):
    """Raised inside a fake call to play a call that blows up after its slot was granted."""


class ActorSpinning(AssertionError):
    """The budget actor kept running without the (mock) clock moving: it busy-loops."""


class ActorWatch(trio.abc.Instrument):
    """Counts the steps of the budget actor's task and catches it spinning.

    ``on_spin`` is called when the actor has run more than ``limit`` steps at one instant of
    the clock. A healthy actor runs once per window move or per notification, which never
    comes close to the limit.
    """

    def __init__(self, task: trio.lowlevel.Task, on_spin: Callable[[], None],
                 limit: int = 500) -> None:
        self.task = task
        self.on_spin = on_spin
        self.limit = limit
        self.steps = 0
        self._instant: float | None = None
        self._steps_at_instant = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is not self.task:
            return
        self.steps += 1
        now = trio.current_time()
        if now != self._instant:
            self._instant, self._steps_at_instant = now, 0
        self._steps_at_instant += 1
        if self._steps_at_instant > self.limit:
            self._steps_at_instant = 0
            self.on_spin()


@attrs.define
class Running:
    budget: Budget
    nursery: trio.Nursery
    watch: ActorWatch


@asynccontextmanager
async def running_budget():
    """A Budget with its actor started by ``nursery.start(budget.run)``; a spinning actor
    cancels the block and raises :class:`ActorSpinning`."""
    budget = Budget()
    spun = False
    async with trio.open_nursery() as nursery:
        await nursery.start(budget.run)
        (actor,) = nursery.child_tasks

        def fail() -> None:
            nonlocal spun
            spun = True
            nursery.cancel_scope.cancel()

        watch = ActorWatch(actor, fail)
        trio.lowlevel.add_instrument(watch)
        try:
            yield Running(budget, nursery, watch)
        finally:
            trio.lowlevel.remove_instrument(watch)
            nursery.cancel_scope.cancel()
    if spun:
        raise ActorSpinning(f"budget actor busy-loops at t={trio.current_time()}")


class CapHistory:
    """The values a cap took over (mock) time; ``allowed(t)`` is the largest value in force
    at any moment of the instant ``t`` (a grant and a cap change can share an instant)."""

    def __init__(self) -> None:
        self._changes: list[tuple[float, float]] = []

    def set(self, value: float) -> None:
        self._changes.append((trio.current_time(), value))

    def allowed(self, t: float) -> float:
        values = []
        for when, value in reversed(self._changes):
            values.append(value)
            if when < t:
                break
        return max(values)

    def current(self) -> float:
        return self._changes[-1][1]


@attrs.define
class Ledger:
    """What the fake calls hold, and what every grant saw. Violations are collected and
    asserted empty at the end of a test (assertions inside tasks would hide in groups)."""

    budget: Budget
    account_cap: dict[uuid.UUID, CapHistory] = attrs.field(factory=lambda: defaultdict(CapHistory))
    rate_cap: dict[uuid.UUID, CapHistory] = attrs.field(factory=lambda: defaultdict(CapHistory))
    campaign_cap: dict[uuid.UUID, CapHistory] = attrs.field(
        factory=lambda: defaultdict(CapHistory))
    agent_cap: dict[uuid.UUID, CapHistory] = attrs.field(factory=lambda: defaultdict(CapHistory))
    account_live: Counter = attrs.field(factory=Counter)
    campaign_live: Counter = attrs.field(factory=Counter)
    agent_live: Counter = attrs.field(factory=Counter)
    peak_account: Counter = attrs.field(factory=Counter)
    peak_campaign: Counter = attrs.field(factory=Counter)
    peak_agent: Counter = attrs.field(factory=Counter)
    grant_times: dict[uuid.UUID, list[float]] = attrs.field(factory=lambda: defaultdict(list))
    grants_by_campaign: Counter = attrs.field(factory=Counter)
    grant_serials: list[tuple[int, uuid.UUID]] = attrs.field(factory=list)
    violations: list[str] = attrs.field(factory=list)

    # configuration goes through the ledger so it knows the caps in force
    def set_caps(self, account: uuid.UUID, *, concurrent_max: int, calls_per_minute: int,
                 dials_left_today: int | None = None) -> None:
        self.account_cap[account].set(concurrent_max)
        self.rate_cap[account].set(calls_per_minute)
        self.budget.set_account_caps(account, concurrent_max=concurrent_max,
                                     calls_per_minute=calls_per_minute,
                                     dials_left_today=dials_left_today)

    def open_campaign(self, account: uuid.UUID, campaign: uuid.UUID, max_concurrent: int,
                      agent: uuid.UUID | None = None, agent_max: int | None = None) -> None:
        self.campaign_cap[campaign].set(max_concurrent)
        if agent is not None:
            self.agent_cap[agent].set(math.inf if agent_max is None else agent_max)
        self.budget.open_campaign(account, campaign, max_concurrent, agent_id=agent,
                                  agent_max=agent_max)

    def set_agent_cap(self, agent: uuid.UUID, max_concurrent: int | None) -> None:
        self.agent_cap[agent].set(math.inf if max_concurrent is None else max_concurrent)
        self.budget.set_agent_cap(agent, max_concurrent)

    def granted(self, slot: Slot) -> None:
        a, c, now = slot.account_id, slot.campaign_id, trio.current_time()
        self.account_live[a] += 1
        self.campaign_live[c] += 1
        self.peak_account[a] = max(self.peak_account[a], self.account_live[a])
        self.peak_campaign[c] = max(self.peak_campaign[c], self.campaign_live[c])
        self.grants_by_campaign[c] += 1
        self.grant_serials.append((slot.serial, c))
        if a in self.account_cap:
            cap = self.account_cap[a].allowed(now)
            live = max(self.account_live[a], self.budget.account_live(a))
            if live > cap:
                self.violations.append(f"t={now}: account live {live} > concurrent_max {cap}")
        if c in self.campaign_cap:
            cap = self.campaign_cap[c].allowed(now)
            if self.campaign_live[c] > cap:
                self.violations.append(
                    f"t={now}: campaign live {self.campaign_live[c]} > max_concurrent {cap}")
        if (agent := slot.agent_id) is not None:
            self.agent_live[agent] += 1
            self.peak_agent[agent] = max(self.peak_agent[agent], self.agent_live[agent])
            live = max(self.agent_live[agent], self.budget.agent_live(agent))
            if agent in self.agent_cap and live > (cap := self.agent_cap[agent].allowed(now)):
                self.violations.append(f"t={now}: agent live {live} > its cap {cap}")
        times = self.grant_times[a]
        times.append(now)   # in time order: count back to the window's start
        if a in self.rate_cap:
            cap = self.rate_cap[a].allowed(now)
            in_window = 0
            for t in reversed(times):
                if t + RATE_WINDOW_SECONDS <= now:   # a dial leaves the window at dial + 60
                    break
                in_window += 1
            if in_window > cap:
                self.violations.append(
                    f"t={now}: {in_window} grants in the last 60 s > calls_per_minute {cap}")

    @property
    def grant_order(self) -> list[uuid.UUID]:
        """The campaigns of the grants in the order the budget issued them (slot serials;
        tasks may notice grants of one instant in another order)."""
        return [campaign for _, campaign in sorted(self.grant_serials)]

    def released(self, slot: Slot) -> None:
        self.account_live[slot.account_id] -= 1
        self.campaign_live[slot.campaign_id] -= 1
        if slot.agent_id is not None:
            self.agent_live[slot.agent_id] -= 1

    async def call(self, campaign: uuid.UUID, duration: float, *, crash: bool = False) -> None:
        """One fake call: a slot, a call of ``duration`` s on the mock clock, the release."""
        slot = await self.budget.acquire(campaign)
        self.granted(slot)
        try:
            await trio.sleep(duration)
            if crash:
                raise CallCrashed
        finally:
            self.released(slot)
            self.budget.release(slot)

    async def dial_forever(self, campaign: uuid.UUID, rng: random.Random,
                           low: int = 1, high: int = 40) -> None:
        """A campaign worker: call after call, each of a random duration, until cancelled."""
        while True:
            await self.call(campaign, eighths(rng, low, high))


def max_in_any_window(times: list[float]) -> int:
    """The most grants in any 60 s window (a grant at t counts until t + 60, excluded)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] + RATE_WINDOW_SECONDS <= t:
            start += 1
        best = max(best, end - start + 1)
    return best


def one_account(budget: Budget, *, concurrent_max: int, calls_per_minute: int = UNLIMITED_RATE,
                campaigns: tuple[int, ...] = (10,), dials_left_today: int | None = None
                ) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """An account with caps and one open campaign per entry of ``campaigns`` (its max)."""
    account = new_id()
    budget.set_account_caps(account, concurrent_max=concurrent_max,
                            calls_per_minute=calls_per_minute, dials_left_today=dials_left_today)
    ids = []
    for max_concurrent in campaigns:
        ids.append(new_id())
        budget.open_campaign(account, ids[-1], max_concurrent)
    return account, ids


async def hold(budget: Budget, campaign: uuid.UUID, held: list[Slot]) -> None:
    """Acquire one slot and append it to ``held``; the test releases it (or not)."""
    held.append(await budget.acquire(campaign))


# -- 1. caps ---------------------------------------------------------------------------------


async def test_live_calls_never_exceed_account_or_campaign_caps(autojump_clock):
    """Many workers of three campaigns dial in parallel: the account never has more than
    concurrent_max live calls, nor a campaign more than its max_concurrent_calls; both caps
    are actually reached (the budget does not under-grant), and all calls end at 0 live."""
    rng = random.Random(1)
    budget = Budget()
    ledger = Ledger(budget)
    account = new_id()
    ledger.set_caps(account, concurrent_max=5, calls_per_minute=UNLIMITED_RATE)
    campaigns = [new_id() for _ in range(3)]
    for campaign, max_concurrent in zip(campaigns, (3, 2, 4), strict=True):
        ledger.open_campaign(account, campaign, max_concurrent)

    async def worker(campaign: uuid.UUID, seed: float) -> None:
        worker_rng = random.Random(seed)
        for _ in range(8):
            await trio.sleep(eighths(worker_rng, 0, 8))
            await ledger.call(campaign, eighths(worker_rng, 1, 80))

    async with trio.open_nursery() as nursery:
        for i in range(30):
            nursery.start_soon(worker, campaigns[i % 3], rng.random())

    assert ledger.violations == []
    assert sum(ledger.grants_by_campaign.values()) == 30 * 8
    assert ledger.peak_account[account] == 5
    assert ledger.peak_campaign[campaigns[1]] == 2
    assert all(ledger.peak_campaign[c] >= 2 for c in campaigns)
    assert budget.account_live(account) == 0
    for campaign in campaigns:
        assert budget.statistics(campaign) == BudgetStatistics(0, 0, 0)


async def test_campaign_cap_binds_below_a_roomy_account(autojump_clock):
    """With concurrent_max 10 and a campaign of max 2, ten waiters of that campaign get
    exactly 2 slots; another campaign of the account still gets slots beside it."""
    budget = Budget()
    account, (small, other) = one_account(budget, concurrent_max=10, campaigns=(2, 10))
    held: list[Slot] = []
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(hold, budget, small, held)
        await trio.sleep(300)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics(small) == BudgetStatistics(2, 2, 8)
        nursery.start_soon(hold, budget, other, held)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics(other) == BudgetStatistics(3, 1, 0)
        nursery.cancel_scope.cancel()
    for slot in held:
        budget.release(slot)
    assert budget.account_live(account) == 0
    assert budget.statistics(small) == BudgetStatistics(0, 0, 0)


# -- 2. kill-switch and cap changes ----------------------------------------------------------


async def test_concurrent_max_zero_blocks_until_raised(autojump_clock):
    """concurrent_max=0 is the kill-switch: waiters stay blocked while ten minutes pass.
    Raising the cap grants at once (inside set_account_caps, no restart, no actor tick)."""
    async with running_budget() as running:
        budget = running.budget
        account, (campaign,) = one_account(budget, concurrent_max=0, calls_per_minute=60)
        held: list[Slot] = []
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(hold, budget, campaign, held)
            await trio.sleep(600)
            await trio.testing.wait_all_tasks_blocked()
            assert budget.statistics(campaign) == BudgetStatistics(0, 0, 5)
            assert held == []

            budget.set_account_caps(account, concurrent_max=2, calls_per_minute=60)
            assert budget.statistics(campaign) == BudgetStatistics(2, 2, 3)  # synchronous
            await trio.testing.wait_all_tasks_blocked()
            assert len(held) == 2
            nursery.cancel_scope.cancel()
        assert budget.statistics(campaign) == BudgetStatistics(2, 2, 0)


async def test_calls_per_minute_zero_blocks_until_raised(autojump_clock):
    """calls_per_minute=0 is the kill-switch of the rate: with room for 10 live calls and
    the actor running, nothing is granted over ten minutes; raising it grants at once."""
    async with running_budget() as running:
        budget = running.budget
        account, (campaign,) = one_account(budget, concurrent_max=10, calls_per_minute=0)
        held: list[Slot] = []
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(hold, budget, campaign, held)
            await trio.sleep(600)
            await trio.testing.wait_all_tasks_blocked()
            assert budget.statistics(campaign) == BudgetStatistics(0, 0, 4)

            budget.set_account_caps(account, concurrent_max=10, calls_per_minute=3)
            assert budget.statistics(campaign) == BudgetStatistics(3, 3, 1)
            await trio.testing.wait_all_tasks_blocked()
            assert len(held) == 3
            nursery.cancel_scope.cancel()
        assert running.watch.steps < 50


async def test_lowering_concurrent_max_below_live_stops_new_grants(autojump_clock):
    """Lowering concurrent_max under the live count aborts nothing and grants nothing new
    until live drops below the new cap; then it grants up to (not beyond) the new cap."""
    budget = Budget()
    account, (campaign,) = one_account(budget, concurrent_max=4)
    first = [budget.try_acquire(campaign) for _ in range(4)]
    assert all(first)
    held: list[Slot] = []
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(hold, budget, campaign, held)
        await trio.testing.wait_all_tasks_blocked()
        budget.set_account_caps(account, concurrent_max=2, calls_per_minute=UNLIMITED_RATE)
        assert budget.statistics(campaign) == BudgetStatistics(4, 4, 3)

        budget.release(first[0])
        budget.release(first[1])
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics(campaign) == BudgetStatistics(2, 2, 3)  # live == cap: none
        assert held == []

        budget.release(first[2])
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics(campaign) == BudgetStatistics(2, 2, 2)  # one under: one
        budget.release(first[3])
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics(campaign) == BudgetStatistics(2, 2, 1)
        assert len(held) == 2
        nursery.cancel_scope.cancel()


# -- 3. rate ---------------------------------------------------------------------------------


@pytest.mark.parametrize("per_minute", [1, 7, 30])
async def test_rate_window_and_throughput(autojump_clock, per_minute):
    """calls_per_minute=N with short calls for ten simulated minutes: no 60 s window holds
    more than N grants, throughput still reaches ~N a minute (the actor wakes waiters when
    the window moves), and the actor wakes a bounded number of times (it does not poll)."""
    rng = random.Random(per_minute)
    async with running_budget() as running:
        budget = running.budget
        ledger = Ledger(budget)
        account = new_id()
        ledger.set_caps(account, concurrent_max=100, calls_per_minute=per_minute)
        campaigns = [new_id(), new_id()]
        for campaign in campaigns:
            ledger.open_campaign(account, campaign, 50)
        with trio.move_on_after(600):
            async with trio.open_nursery() as nursery:
                for i in range(per_minute + 5):
                    nursery.start_soon(ledger.dial_forever, campaigns[i % 2],
                                       random.Random(rng.random()), 1, 16)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.account_live(account) == 0

    times = ledger.grant_times[account]
    assert ledger.violations == []
    assert max_in_any_window(times) == per_minute
    assert sum(1 for t in times if t < 600) >= 9.5 * per_minute
    assert running.watch.steps <= 5 * len(times) + 20


# -- 4. fairness -----------------------------------------------------------------------------


async def test_equal_demand_shares_the_account_cap_equally(autojump_clock):
    """Two campaigns with ten workers each behind concurrent_max=2: grants alternate
    round-robin (in the order the budget issues them), 200 each out of 400."""
    rng = random.Random(4)
    budget = Budget()
    ledger = Ledger(budget)
    account = new_id()
    # Closed (cap 0) until every worker waits: trio starts tasks in a random order, and
    # two workers of one campaign that start first would take both slots at once.
    ledger.set_caps(account, concurrent_max=0, calls_per_minute=UNLIMITED_RATE)
    a, b = new_id(), new_id()
    ledger.open_campaign(account, a, 10)
    ledger.open_campaign(account, b, 10)
    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(ledger.dial_forever, (a, b)[i % 2], random.Random(rng.random()))
        await trio.testing.wait_all_tasks_blocked()
        ledger.set_caps(account, concurrent_max=2, calls_per_minute=UNLIMITED_RATE)
        while len(ledger.grant_order) < 400:
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    order = ledger.grant_order[:400]
    assert ledger.violations == []
    assert abs(order.count(a) - order.count(b)) <= 1
    # round-robin, not just equal totals: grants (in issue order) alternate
    assert all(x != y for x, y in pairwise(order)), order


async def test_small_campaign_is_not_starved_by_a_big_one_waiting_first(autojump_clock):
    """A big campaign queues 50 waiters first; a small one then asks for 5 calls. With one
    account slot, the small campaign gets every other grant, not the 51st."""
    rng = random.Random(5)
    budget = Budget()
    ledger = Ledger(budget)
    account = new_id()
    ledger.set_caps(account, concurrent_max=1, calls_per_minute=UNLIMITED_RATE)
    big, small = new_id(), new_id()
    ledger.open_campaign(account, big, 50)
    ledger.open_campaign(account, small, 50)

    async def small_campaign() -> None:
        for _ in range(5):
            await ledger.call(small, eighths(rng, 1, 16))

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(ledger.dial_forever, big, random.Random(rng.random()))
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics(big).campaign_waiting == 49
        start = len(ledger.grant_order)
        await small_campaign()
        nursery.cancel_scope.cancel()

    after = ledger.grant_order[start:]
    assert after.count(small) == 5
    # between two grants of the small campaign (and before its first) at most one big grant
    assert after.index(small) <= 1
    positions = [i for i, c in enumerate(after) if c == small]
    assert all(b - a <= 2 for a, b in pairwise(positions)), after


# -- 5. cancellation -------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["release-then-cancel", "cancel-then-release"])
async def test_cancel_in_the_same_tick_as_the_grant_leaks_nothing(autojump_clock, order):
    """A waiter is granted (by a release) and cancelled in one synchronous step, in either
    order. Whatever it ends with, the budget's live count equals the slots the surviving
    holders actually hold; a slot given back by the cancelled waiter goes to the next
    waiter (of another campaign) instead of vanishing."""
    budget = Budget()
    account, (first, second) = one_account(budget, concurrent_max=1, campaigns=(5, 5))
    holder = budget.try_acquire(first)
    assert holder is not None
    held: list[Slot] = []
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def cancellable_waiter() -> None:
            with scope:
                held.append(await budget.acquire(first))   # no checkpoint after: keeps it

        nursery.start_soon(cancellable_waiter)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(hold, budget, second, held)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics(first) == BudgetStatistics(1, 1, 1)

        if order == "release-then-cancel":
            budget.release(holder)   # grants to the waiter of `first` (round-robin)...
            scope.cancel()           # ...which is then cancelled in the same tick
        else:
            scope.cancel()
            budget.release(holder)
        await trio.testing.wait_all_tasks_blocked()

        assert len(held) == 1
        assert budget.account_live(account) == 1
        stats = budget.statistics(held[0].campaign_id)
        assert (stats.account_live, stats.campaign_live) == (1, 1)
        if order == "cancel-then-release":
            assert held[0].campaign_id == second   # the cancelled waiter passed it on
        assert budget.statistics(first).campaign_waiting == 0
        nursery.cancel_scope.cancel()
    budget.release(held[0])
    assert budget.account_live(account) == 0


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_random_cancellations_leak_no_slot(autojump_clock, seed):
    """Waiters and calls are cancelled at random moments (while waiting, right after a
    grant, mid-call). Whenever everything is blocked, the budget's live count equals what
    the fake calls hold; at the end it is 0 and the campaigns have no waiter left."""
    rng = random.Random(seed)
    budget = Budget()
    ledger = Ledger(budget)
    account = new_id()
    ledger.set_caps(account, concurrent_max=3, calls_per_minute=UNLIMITED_RATE)
    campaigns = [new_id(), new_id()]
    for campaign in campaigns:
        ledger.open_campaign(account, campaign, 2)
    scopes: list[trio.CancelScope] = []

    async def worker(campaign: uuid.UUID, worker_rng: random.Random,
                     scope: trio.CancelScope) -> None:
        with scope:
            await ledger.dial_forever(campaign, worker_rng, 1, 24)

    async with trio.open_nursery() as nursery:
        for step in range(120):
            if rng.random() < 0.5 or not scopes:
                scopes.append(trio.CancelScope())   # registered before the task first runs
                nursery.start_soon(worker, rng.choice(campaigns), random.Random(rng.random()),
                                   scopes[-1])
            if rng.random() < 0.5:
                await trio.sleep(eighths(rng, 0, 16))
            else:
                await trio.testing.wait_all_tasks_blocked()
            if scopes and rng.random() < 0.6:
                scopes.pop(rng.randrange(len(scopes))).cancel()
            if step % 10 == 0:
                await trio.testing.wait_all_tasks_blocked()
                assert budget.account_live(account) == ledger.account_live[account]
        for scope in scopes:
            scope.cancel()

    assert ledger.violations == []
    assert len(ledger.grant_order) > 50
    assert budget.account_live(account) == ledger.account_live[account] == 0
    for campaign in campaigns:
        assert budget.statistics(campaign) == BudgetStatistics(0, 0, 0)


async def test_crashing_calls_give_their_slots_back(autojump_clock):
    """Calls that raise after their grant release in ``finally``: live is back to 0 and
    the budget keeps granting afterwards."""
    budget = Budget()
    ledger = Ledger(budget)
    account, (campaign,) = one_account(budget, concurrent_max=2)
    crashes = 0

    async def crashing_call(i: int) -> None:
        nonlocal crashes
        try:
            await ledger.call(campaign, 1 + i % 3, crash=True)
        except CallCrashed:
            crashes += 1

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(crashing_call, i)
    assert crashes == 10
    assert budget.statistics(campaign) == BudgetStatistics(0, 0, 0)

    with pytest.raises(CallCrashed):
        await ledger.call(campaign, 1, crash=True)
    assert budget.account_live(account) == 0
    assert budget.try_acquire(campaign) is not None


async def test_double_release_raises_and_changes_nothing(autojump_clock):
    """Releasing a slot twice (or one never granted) raises RuntimeError and leaves the
    counts of the slots still live untouched."""
    budget = Budget()
    account, (campaign,) = one_account(budget, concurrent_max=5)
    a, b = budget.try_acquire(campaign), budget.try_acquire(campaign)
    assert a is not None and b is not None
    budget.release(a)
    with pytest.raises(RuntimeError):
        budget.release(a)
    with pytest.raises(RuntimeError):
        budget.release(Slot(account, campaign, 10_000))
    assert budget.statistics(campaign) == BudgetStatistics(1, 1, 0)
    budget.release(b)
    assert budget.statistics(campaign) == BudgetStatistics(0, 0, 0)


# -- 6. random sequences ---------------------------------------------------------------------


@attrs.define(eq=False)
class CampaignRun:
    """One started (or resumed) run of a campaign: its workers and their acquire scopes."""

    account: uuid.UUID
    campaign: uuid.UUID
    active: bool = True
    acquiring: set[trio.CancelScope] = attrs.field(factory=set)
    workers: list[trio.CancelScope] = attrs.field(factory=list)

    def pause(self) -> None:
        """Dial nothing new: cancel every acquire; calls in flight finish on their own."""
        self.active = False
        for scope in list(self.acquiring):
            scope.cancel()


async def run_worker(ledger: Ledger, run: CampaignRun, rng: random.Random) -> None:
    with trio.CancelScope() as outer:   # cancelled by the driver to abort mid-anything
        run.workers.append(outer)
        while run.active:
            with trio.CancelScope() as scope:
                run.acquiring.add(scope)
                try:
                    slot = await ledger.budget.acquire(run.campaign)
                finally:
                    run.acquiring.discard(scope)
            if scope.cancelled_caught:
                return
            # granted (possibly in the same tick as a pause: then it is a call in flight)
            ledger.granted(slot)
            try:
                await trio.sleep(eighths(rng, 1, 160))
                if rng.random() < 0.1:
                    raise CallCrashed
            except CallCrashed:
                pass
            finally:
                ledger.released(slot)
                ledger.budget.release(slot)


def check_work_conserving(ledger: Ledger, runs: dict[uuid.UUID, CampaignRun],
                          agents: dict[uuid.UUID, uuid.UUID]) -> None:
    """With everything blocked: a campaign with waiters, under its own cap and its agent's
    (``agents``: each campaign's), in an account under concurrent_max and without a rate
    cap, would be a missed grant."""
    budget = ledger.budget
    for campaign, run in runs.items():
        stats = budget.statistics(campaign)
        account, agent = run.account, agents[campaign]
        if (stats.campaign_waiting and ledger.rate_cap[account].current() >= UNLIMITED_RATE
                and stats.account_live < ledger.account_cap[account].current()
                and stats.campaign_live < ledger.campaign_cap[campaign].current()
                and budget.agent_live(agent) < ledger.agent_cap[agent].current()):
            ledger.violations.append(f"t={trio.current_time()}: missed grant {stats}")


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6, 7, 8])
async def test_random_sequences_keep_every_cap(autojump_clock, seed):
    """A seeded driver opens, starts, pauses, stops and restarts campaigns of 2-3
    accounts, each with one of its account's two agents, aborts workers, and changes caps
    (kill-switches and agent caps included) mid-run. At every grant the ledger checks
    account live <= concurrent_max, campaign live <= max_concurrent and agent live <= its
    cap (caps in force at that instant) and <= calls_per_minute grants in the last 60 s;
    when all is blocked, no waiter is left behind free capacity. At the end everything is
    0 live, 0 waiting (agents too), and closed campaigns are forgotten.

    The actor must not spin either (ActorWatch)."""
    rng = random.Random(seed)
    async with running_budget() as running:
        budget = running.budget
        ledger = Ledger(budget)
        accounts = [new_id() for _ in range(rng.randint(2, 3))]
        owner, agent_of = {}, {}
        agent_caps: dict[uuid.UUID, int | None] = {}
        for account in accounts:
            agents = [new_id(), new_id()]
            for agent in agents:
                agent_caps[agent] = rng.choice([None, 1, 2, 4])
            for _ in range(rng.randint(1, 3)):
                campaign = new_id()
                owner[campaign], agent_of[campaign] = account, rng.choice(agents)

        def random_caps(account: uuid.UUID) -> None:
            ledger.set_caps(account, concurrent_max=rng.choice([0, 1, 2, 3, 5, 8]),
                            calls_per_minute=rng.choice([0, 1, 3, 10, 30, UNLIMITED_RATE]))

        for account in accounts:
            random_caps(account)
        runs: dict[uuid.UUID, CampaignRun] = {}
        async with trio.open_nursery() as nursery:
            for _ in range(150):
                await trio.sleep(eighths(rng, 0, 240))
                if rng.random() < 0.3:
                    await trio.testing.wait_all_tasks_blocked()
                    check_work_conserving(ledger, runs, agent_of)
                campaign = rng.choice(list(owner))
                run = runs.get(campaign)
                action = rng.choices(["caps", "agent", "start", "pause", "stop", "abort"],
                                     weights=[2, 1, 4, 2, 1, 1])[0]
                if action == "caps":
                    random_caps(rng.choice(accounts))
                elif action == "agent":
                    agent = agent_of[campaign]
                    agent_caps[agent] = rng.choice([None, 0, 1, 2, 3])
                    ledger.set_agent_cap(agent, agent_caps[agent])
                elif action == "start" and run is None:
                    agent = agent_of[campaign]
                    ledger.open_campaign(owner[campaign], campaign, rng.randint(1, 4), agent,
                                         agent_caps[agent])
                    runs[campaign] = run = CampaignRun(owner[campaign], campaign)
                    for _ in range(rng.randint(1, 6)):
                        nursery.start_soon(run_worker, ledger, run, random.Random(rng.random()))
                elif action in ("pause", "stop") and run is not None:
                    run.pause()
                    del runs[campaign]
                    if action == "stop":
                        budget.close_campaign(campaign)
                elif action == "abort" and run is not None and run.workers:
                    run.workers.pop(rng.randrange(len(run.workers))).cancel()
            for run in runs.values():
                run.pause()
        # every worker has finished: calls in flight ran to their end

        await trio.testing.wait_all_tasks_blocked()
        assert ledger.violations == []
        assert len(ledger.grant_order) > 20
        for account in accounts:
            assert budget.account_live(account) == ledger.account_live[account] == 0
        for agent in agent_caps:
            assert budget.agent_live(agent) == ledger.agent_live[agent] == 0
        assert any(ledger.peak_agent[agent] for agent in agent_caps)
        for campaign in owner:
            assert budget.statistics(campaign) == BudgetStatistics(0, 0, 0)
            budget.close_campaign(campaign)
            with pytest.raises(KeyError):
                await budget.acquire(campaign)


# -- 7. try_acquire --------------------------------------------------------------------------


async def test_try_acquire_takes_a_free_slot(autojump_clock):
    """try_acquire returns a slot at once when there is room and nobody waits."""
    budget = Budget()
    account, (campaign,) = one_account(budget, concurrent_max=2, calls_per_minute=10)
    slot = budget.try_acquire(campaign)
    assert slot == Slot(account, campaign, slot.serial)
    assert budget.statistics(campaign) == BudgetStatistics(1, 1, 0)
    budget.release(slot)
    assert budget.statistics(campaign) == BudgetStatistics(0, 0, 0)


@pytest.mark.parametrize("limit", ["account", "campaign", "rate", "kill-switch", "daily"])
async def test_try_acquire_returns_none_at_a_cap(autojump_clock, limit):
    """try_acquire returns None (and holds nothing) when any one cap is reached."""
    budget = Budget()
    caps = {"account": dict(concurrent_max=1),
            "campaign": dict(concurrent_max=5, campaigns=(1,)),
            "rate": dict(concurrent_max=5, calls_per_minute=1),
            "kill-switch": dict(concurrent_max=0),
            "daily": dict(concurrent_max=5, dials_left_today=1)}[limit]
    account, (campaign,) = one_account(budget, **caps)
    if limit != "kill-switch":
        first = budget.try_acquire(campaign)
        assert first is not None
        if limit in ("rate", "daily"):
            budget.release(first)
    live = budget.account_live(account)
    assert budget.try_acquire(campaign) is None
    assert budget.account_live(account) == live


async def test_try_acquire_is_not_held_back_by_a_campaign_at_its_own_cap(autojump_clock):
    """A campaign waiting at its own cap could not use a free slot, so it does not stop
    another campaign's try_acquire (that would end every other campaign's batching)."""
    budget = Budget()
    account, (busy, other) = one_account(budget, concurrent_max=5, campaigns=(1, 5))
    first = budget.try_acquire(busy)
    assert first is not None
    held: list[Slot] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, budget, busy, held)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics(busy).campaign_waiting == 1
        assert budget.try_acquire(other) is not None
        assert budget.account_live(account) == 2
        budget.release(first)   # the waiter gets it
        await trio.testing.wait_all_tasks_blocked()
        assert len(held) == 1
        nursery.cancel_scope.cancel()


async def test_try_acquire_does_not_jump_a_waiter_the_rate_window_is_about_to_serve(
        autojump_clock):
    """When the rate window frees a dial, a waiting campaign below its cap is first in
    line: try_acquire from another campaign at that instant gets nothing."""
    budget = Budget()
    account, (waiting, other) = one_account(budget, concurrent_max=5, campaigns=(5, 5))
    budget.set_account_caps(account, concurrent_max=5, calls_per_minute=1)
    first = budget.try_acquire(other)
    assert first is not None
    budget.release(first)
    held: list[Slot] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, budget, waiting, held)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics(waiting).campaign_waiting == 1
        await trio.sleep(60)  # the window moves; the actor is not running in this test
        assert budget.try_acquire(other) is None
        nursery.cancel_scope.cancel()


# -- 8. dials left today ---------------------------------------------------------------------


async def test_dials_left_today_caps_grants_until_reset(autojump_clock):
    """dials_left_today=3: exactly three grants over ten minutes, then waiters block
    (though there is room for 10 live calls); setting it to 2 gives exactly two more;
    None lifts the cap."""
    async with running_budget() as running:
        budget = running.budget
        ledger = Ledger(budget)
        account, (campaign,) = one_account(budget, concurrent_max=10, calls_per_minute=100,
                                           dials_left_today=3)
        rng = random.Random(8)
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(ledger.dial_forever, campaign, random.Random(rng.random()))
            await trio.sleep(600)
            await trio.testing.wait_all_tasks_blocked()
            assert len(ledger.grant_order) == 3
            assert budget.statistics(campaign) == BudgetStatistics(0, 0, 5)

            budget.set_account_caps(account, concurrent_max=10, calls_per_minute=100,
                                    dials_left_today=2)
            await trio.sleep(600)
            await trio.testing.wait_all_tasks_blocked()
            assert len(ledger.grant_order) == 5
            assert budget.statistics(campaign) == BudgetStatistics(0, 0, 5)

            budget.set_account_caps(account, concurrent_max=10, calls_per_minute=100)
            await trio.sleep(600)
            assert len(ledger.grant_order) > 50
            nursery.cancel_scope.cancel()
    assert budget.account_live(account) == 0


# -- 9. close_campaign -----------------------------------------------------------------------


async def test_close_campaign_waits_for_the_last_release(autojump_clock):
    """A campaign closed with live slots stays known (and counted) until its last slot is
    released; then statistics are zeros and acquire/try_acquire raise KeyError. Reopening
    the id starts afresh."""
    budget = Budget()
    account, (campaign,) = one_account(budget, concurrent_max=5)
    a, b = budget.try_acquire(campaign), budget.try_acquire(campaign)
    assert a is not None and b is not None
    budget.close_campaign(campaign)
    assert budget.statistics(campaign) == BudgetStatistics(2, 2, 0)

    budget.release(a)
    assert budget.statistics(campaign) == BudgetStatistics(1, 1, 0)
    budget.release(b)
    assert budget.statistics(campaign) == BudgetStatistics(0, 0, 0)
    assert budget.account_live(account) == 0
    with pytest.raises(KeyError):
        await budget.acquire(campaign)
    with pytest.raises(KeyError):
        budget.try_acquire(campaign)

    budget.open_campaign(account, campaign, 1)
    assert budget.try_acquire(campaign) is not None
    assert budget.try_acquire(campaign) is None   # the new max_concurrent (1) applies


async def test_close_campaign_with_waiters_forgets_it_when_they_are_cancelled(autojump_clock):
    """Closing a campaign whose calls wait (but hold nothing): once the waiters are
    cancelled the campaign is forgotten, and the other campaign gets the capacity."""
    budget = Budget()
    _, (closing, other) = one_account(budget, concurrent_max=1, campaigns=(5, 5))
    blocker = budget.try_acquire(other)
    held: list[Slot] = []
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(hold, budget, closing, held)
        await trio.testing.wait_all_tasks_blocked()
        budget.close_campaign(closing)
        assert budget.statistics(closing).campaign_waiting == 3
        nursery.cancel_scope.cancel()
    assert held == []
    with pytest.raises(KeyError):
        budget.try_acquire(closing)
    budget.release(blocker)
    assert budget.try_acquire(other) is not None


# -- 10. agent seats -------------------------------------------------------------------------
#
# A campaign's agent takes a limited number of calls at once; the campaigns of an account
# that share an agent share its seats. A seat is taken with the slot, when the call is
# dialed, so a contact who answers always finds the agent free.


def shared_agent(budget: Budget, *, agent_max: int | None, concurrent_max: int = 20,
                 campaigns: tuple[int, ...] = (10, 10), other_agent: bool = False
                 ) -> tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    """An account whose campaigns (their max per entry) all use one agent capped at
    ``agent_max``; with ``other_agent``, one more campaign (max 10) uses another agent
    with no cap. (account, agent, campaigns)."""
    account, agent = new_id(), new_id()
    budget.set_account_caps(account, concurrent_max=concurrent_max,
                            calls_per_minute=UNLIMITED_RATE)
    ids = []
    for max_concurrent in campaigns:
        ids.append(new_id())
        budget.open_campaign(account, ids[-1], max_concurrent, agent_id=agent,
                             agent_max=agent_max)
    if other_agent:
        ids.append(new_id())
        budget.open_campaign(account, ids[-1], 10, agent_id=new_id())
    return account, agent, ids


async def test_campaigns_sharing_an_agent_never_exceed_its_cap_together(autojump_clock):
    """Two campaigns (max 10 each, account 20) dial through one agent capped at 3: at no
    grant do the two hold more than 3 calls together, the cap is reached, both campaigns
    are served, and every seat is back at the end."""
    rng = random.Random(21)
    budget = Budget()
    ledger = Ledger(budget)
    account, agent = new_id(), new_id()
    ledger.set_caps(account, concurrent_max=20, calls_per_minute=UNLIMITED_RATE)
    campaigns = [new_id(), new_id()]
    for campaign in campaigns:
        ledger.open_campaign(account, campaign, 10, agent, 3)

    async def worker(campaign: uuid.UUID, seed: float) -> None:
        worker_rng = random.Random(seed)
        for _ in range(6):
            await trio.sleep(eighths(worker_rng, 0, 8))
            await ledger.call(campaign, eighths(worker_rng, 8, 160))

    async with trio.open_nursery() as nursery:
        for i in range(16):
            nursery.start_soon(worker, campaigns[i % 2], rng.random())
        await trio.sleep(5)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.agent_live(agent) == 3  # saturated: 13 workers wait for a seat
        assert sum(budget.statistics(c).campaign_waiting for c in campaigns) == 13

    assert ledger.violations == []
    assert ledger.peak_agent[agent] == 3 and ledger.peak_account[account] == 3
    assert all(ledger.peak_campaign[c] <= 3 for c in campaigns)
    assert [ledger.grants_by_campaign[c] for c in campaigns] == [8 * 6, 8 * 6]
    assert budget.agent_live(agent) == ledger.agent_live[agent] == 0
    assert budget.account_live(account) == 0


async def test_a_campaign_waiting_for_its_agent_does_not_block_another_agents(autojump_clock):
    """The agent of campaigns A and B is full (A holds its one seat): B's waiters wait,
    while C (same account, another agent) is granted at once, by acquire and by
    try_acquire alike: a campaign waiting on a full agent could not use the slot."""
    budget = Budget()
    account, agent, (a, b, c) = shared_agent(budget, agent_max=1, other_agent=True)
    seat = budget.try_acquire(a)
    assert seat is not None and seat.agent_id == agent
    assert budget.try_acquire(a) is None and budget.try_acquire(b) is None
    held: list[Slot] = []
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(hold, budget, b, held)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics(b) == BudgetStatistics(1, 0, 3)
        nursery.start_soon(hold, budget, c, held)
        await trio.testing.wait_all_tasks_blocked()
        assert [slot.campaign_id for slot in held] == [c]
        assert budget.try_acquire(c) is not None
        assert budget.account_live(account) == 3 and budget.agent_live(agent) == 1
        nursery.cancel_scope.cancel()


async def test_release_gives_the_seat_to_the_other_campaign_of_the_agent(autojump_clock):
    """A holds both seats of the agent, B waits. A release of A's hands the seat to B
    synchronously (the agent stays full); B's release frees it."""
    budget = Budget()
    _, agent, (a, b) = shared_agent(budget, agent_max=2)
    first, second = budget.try_acquire(a), budget.try_acquire(a)
    assert first is not None and second is not None
    held: list[Slot] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, budget, b, held)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics(b).campaign_waiting == 1 and held == []
        budget.release(first)
        assert budget.statistics(b) == BudgetStatistics(2, 1, 0)  # granted in release
        assert budget.agent_live(agent) == 2
        await trio.testing.wait_all_tasks_blocked()
    [got] = held
    assert got.campaign_id == b and got.agent_id == agent
    budget.release(got)
    assert budget.agent_live(agent) == 1
    assert budget.try_acquire(b) is not None   # the freed seat
    assert budget.try_acquire(b) is None


async def test_agent_cap_changes_take_effect_at_once(autojump_clock):
    """Raising the agent's cap grants to its waiters inside set_agent_cap; lowering it
    under the live count cuts nothing and grants nothing until live is under the new cap;
    None lifts it (the campaigns' own caps remain)."""
    budget = Budget()
    _, agent, (a, b) = shared_agent(budget, agent_max=2, campaigns=(4, 4))
    held: list[Slot] = []
    async with trio.open_nursery() as nursery:
        for campaign in (a, b) * 4:
            nursery.start_soon(hold, budget, campaign, held)
        await trio.testing.wait_all_tasks_blocked()
        assert (len(held), budget.agent_live(agent)) == (2, 2)

        budget.set_agent_cap(agent, 5)
        assert budget.agent_live(agent) == 5  # synchronous
        await trio.testing.wait_all_tasks_blocked()
        assert len(held) == 5

        budget.set_agent_cap(agent, 2)
        assert budget.agent_live(agent) == 5  # live calls go on
        for slot in held[:3]:
            budget.release(slot)
        await trio.testing.wait_all_tasks_blocked()
        assert (len(held), budget.agent_live(agent)) == (5, 2)  # live == cap: no grant
        budget.release(held[3])
        await trio.testing.wait_all_tasks_blocked()
        assert (len(held), budget.agent_live(agent)) == (6, 2)  # one under: one

        budget.set_agent_cap(agent, None)
        await trio.testing.wait_all_tasks_blocked()
        assert len(held) == 8  # every waiter, within each campaign's 4
        assert budget.agent_live(agent) == 4
        nursery.cancel_scope.cancel()


async def test_the_agent_cap_read_at_open_replaces_the_budgets(autojump_clock):
    """A campaign opened later reads the agent's cap then: its value applies to the agent's
    seats in every campaign. An agent is one account's, and a campaign keeps its agent."""
    budget = Budget()
    account, agent, (a,) = shared_agent(budget, agent_max=1, campaigns=(10,))
    assert budget.try_acquire(a) is not None and budget.try_acquire(a) is None
    b = new_id()
    budget.open_campaign(account, b, 10, agent_id=agent, agent_max=3)
    assert [budget.try_acquire(c) is not None for c in (a, b, a, b)] == [True, True, False,
                                                                         False]
    assert budget.agent_live(agent) == 3
    with pytest.raises(ValueError, match="another agent"):
        budget.open_campaign(account, a, 10, agent_id=new_id())
    other_account = new_id()
    budget.set_account_caps(other_account, concurrent_max=5, calls_per_minute=UNLIMITED_RATE)
    with pytest.raises(ValueError, match="another account"):
        budget.open_campaign(other_account, new_id(), 5, agent_id=agent)
    assert budget.agent_live(agent) == 3  # the refusals changed nothing


@pytest.mark.parametrize("order", ["release-then-cancel", "cancel-then-release"])
async def test_agent_waiters_cancelled_leak_no_seat(autojump_clock, order):
    """The agent's one seat is held by A; waiters of A and B wait for it. The A waiter is
    cancelled in the same tick as the seat is released, in either order: the seat ends
    with exactly one holder (B's waiter when the cancel came first). Once every call is
    over and the campaigns closed, the agent is forgotten: its seats count from zero."""
    budget = Budget()
    account, agent, (a, b) = shared_agent(budget, agent_max=1)
    holder = budget.try_acquire(a)
    assert holder is not None
    held: list[Slot] = []
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def cancellable_waiter() -> None:
            with scope:
                held.append(await budget.acquire(a))

        nursery.start_soon(cancellable_waiter)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(hold, budget, b, held)
        await trio.testing.wait_all_tasks_blocked()
        if order == "release-then-cancel":
            budget.release(holder)
            scope.cancel()
        else:
            scope.cancel()
            budget.release(holder)
        await trio.testing.wait_all_tasks_blocked()
        assert len(held) == 1 and budget.agent_live(agent) == 1
        if order == "cancel-then-release":
            assert held[0].campaign_id == b
        assert budget.statistics(a).campaign_waiting == 0
        nursery.cancel_scope.cancel()
    # Cancelling B's waiters (if still waiting) left nothing behind either.
    assert budget.statistics(a).campaign_waiting == budget.statistics(b).campaign_waiting == 0
    budget.release(held[0])
    assert budget.agent_live(agent) == 0 and budget.account_live(account) == 0
    budget.close_campaign(a)
    budget.close_campaign(b)
    budget.set_agent_cap(agent, 0)  # an agent no campaign uses: ignored
    again = new_id()
    budget.open_campaign(account, again, 10, agent_id=agent, agent_max=2)
    assert [budget.try_acquire(again) is not None for _ in range(3)] == [True, True, False]


# -- regressions ---------------------------------------------------------------------------


@pytest.mark.parametrize("cap", ["daily", "rate"])
async def test_cancelled_waiter_does_not_use_up_a_dial(autojump_clock, cap):
    """One dial is left (dials_left_today=1, or calls_per_minute=2 with one dial made).
    Two waiters; the first is cancelled and, in the same tick, the only live slot is
    released. Only the second waiter will ever dial, so it must get that last dial now,
    as with trio.CapacityLimiter, where a cancelled waiter leaves the queue when cancelled."""
    async with running_budget() as running:
        budget = running.budget
        per_minute = 2 if cap == "rate" else UNLIMITED_RATE
        account, (first, second) = one_account(budget, concurrent_max=1,
                                               calls_per_minute=per_minute, campaigns=(5, 5))
        holder = budget.try_acquire(first)
        assert holder is not None
        if cap == "daily":
            budget.set_account_caps(account, concurrent_max=1, calls_per_minute=per_minute,
                                    dials_left_today=1)
        held: list[Slot] = []
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def cancelled_waiter() -> None:
                with scope:
                    held.append(await budget.acquire(first))

            nursery.start_soon(cancelled_waiter)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(hold, budget, second, held)
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(1)

            scope.cancel()
            budget.release(holder)
            await trio.testing.wait_all_tasks_blocked()
            assert [slot.campaign_id for slot in held] == [second]
            nursery.cancel_scope.cancel()


# -- the actor's liveness: it sleeps until something can change -----------------------------
#
# These three failed (the actor busy-looped; under a mock clock, for ever) on the version of
# budget.py first tested: _Account.can_grant short-circuits before rate_limited() prunes the
# window, so at concurrent_max (or 0) _next_window_move kept returning a deadline in the
# past; and the window test ``dial <= now - 60`` disagreed by one ulp with the actor's
# deadline ``dial + 60`` (for a dial at t=0.3, (0.3 + 60) - 60 < 0.3).


async def test_actor_sleeps_when_window_moves_at_concurrent_max(autojump_clock):
    """calls_per_minute=1, concurrent_max=1: a call granted at t=0 lasts 120 s; a second
    waiter is held back by both caps. When the window moves (t=60) the account is still at
    concurrent_max, so there is nothing to grant: the actor must sleep until the release at
    t=120 (then the waiter is granted), not busy-loop (with a real clock: 60 s of 100% CPU)."""
    async with running_budget() as running:
        budget = running.budget
        account, (campaign,) = one_account(budget, concurrent_max=1, calls_per_minute=1)
        ledger = Ledger(budget)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ledger.call, campaign, 120)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(ledger.call, campaign, 1)
        assert ledger.grant_times[account] == [0, 120]
        assert running.watch.steps < 20


async def test_actor_sleeps_under_the_kill_switch(autojump_clock):
    """A waiter is held by calls_per_minute=1; the operator sets concurrent_max=0. When the
    window moves the actor must stay asleep (nothing may be granted) until the cap is
    raised again at t=300, which grants at once. (A spin here would never end by itself.)"""
    async with running_budget() as running:
        budget = running.budget
        account, (campaign,) = one_account(budget, concurrent_max=5, calls_per_minute=1)
        ledger = Ledger(budget)
        async with trio.open_nursery() as nursery:
            await ledger.call(campaign, 1)
            nursery.start_soon(ledger.call, campaign, 1)
            await trio.sleep_until(30)
            budget.set_account_caps(account, concurrent_max=0, calls_per_minute=1)
            await trio.sleep_until(300)
            assert ledger.grant_times[account] == [0]
            budget.set_account_caps(account, concurrent_max=5, calls_per_minute=1)
        assert ledger.grant_times[account] == [0, 300]
        assert running.watch.steps < 20


@pytest.mark.parametrize("first_dial", [0.3, 0.1, 1 / 3, 7.7])
async def test_actor_wakes_rate_limited_waiter_at_any_float_time(autojump_clock, first_dial):
    """calls_per_minute=1: a dial at a time not exact in binary (0.3: (0.3 + 60) - 60 <
    0.3) holds the next waiter until 60 s later; at that moment the actor must grant it,
    whatever the float rounding, without spinning."""
    async with running_budget() as running:
        budget = running.budget
        account, (campaign,) = one_account(budget, concurrent_max=5, calls_per_minute=1)
        ledger = Ledger(budget)
        await trio.sleep(first_dial)
        await ledger.call(campaign, 0.5)
        await ledger.call(campaign, 0.5)
        assert ledger.grant_times[account] == [first_dial, first_dial + RATE_WINDOW_SECONDS]
        assert running.watch.steps < 20


# -- 9. grants given back, windows seeded, dials not yet counted ------------------------------


async def test_an_undialed_release_gives_the_rate_window_and_the_day_their_dial_back(
        autojump_clock):
    """A claim that came back short: its unused slots are released with dialed=False, and
    neither the rate window nor the day's count keeps them."""
    budget = Budget()
    account, campaign = new_id(), new_id()
    budget.set_account_caps(account, concurrent_max=10, calls_per_minute=2, dials_left_today=3)
    budget.open_campaign(account, campaign, 10)
    first, second = budget.try_acquire(campaign), budget.try_acquire(campaign)
    assert first is not None and second is not None
    assert budget.try_acquire(campaign) is None  # the window is full
    budget.release(second, dialed=False)
    third = budget.try_acquire(campaign)  # the same instant: the refund freed it
    assert third is not None
    budget.release(third, dialed=False)
    budget.release(first)  # a real dial stays counted
    await trio.sleep(RATE_WINDOW_SECONDS)
    got = [budget.try_acquire(campaign) for _ in range(3)]
    # Of the 3 dials of the day, 1 was used: 2 left, both within the new window's 2.
    assert [slot is not None for slot in got] == [True, True, False]


async def test_seeded_dials_hold_the_rate_window_after_a_restart(autojump_clock):
    """A new budget seeded with the previous process's dials (10 s and 30 s ago) grants
    the third dial of calls_per_minute=3 only, and the fourth once the first leaves."""
    budget = Budget()
    account, campaign = new_id(), new_id()
    now = trio.current_time()
    budget.seed_dials(account, [now - 30, now - 10, now - 61])  # the last one is outside
    budget.set_account_caps(account, concurrent_max=10, calls_per_minute=3)
    budget.open_campaign(account, campaign, 10)
    assert budget.try_acquire(campaign) is not None
    assert budget.try_acquire(campaign) is None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(budget.run)
        slot = await budget.acquire(campaign)
        assert trio.current_time() == now + 30  # the dial of 30 s ago left the window
        nursery.cancel_scope.cancel()
    assert slot is not None


async def test_seed_dials_leaves_an_account_that_has_dialed_alone(autojump_clock):
    budget = Budget()
    account, campaign = new_id(), new_id()
    budget.set_account_caps(account, concurrent_max=10, calls_per_minute=2)
    budget.open_campaign(account, campaign, 10)
    assert budget.try_acquire(campaign) is not None
    budget.seed_dials(account, [])  # would empty the window: ignored
    assert budget.try_acquire(campaign) is not None
    assert budget.try_acquire(campaign) is None


async def test_daily_left_from_the_database_subtracts_dials_it_cannot_see_yet(autojump_clock):
    """A caps refresh reads today's dials from the database: grants not confirmed (their
    claim not yet committed) when the mark was taken are subtracted from what it says."""
    budget = Budget()
    account, campaign = new_id(), new_id()
    budget.set_account_caps(account, concurrent_max=10, calls_per_minute=UNLIMITED_RATE,
                            dials_left_today=5)
    budget.open_campaign(account, campaign, 10)
    confirmed = budget.try_acquire(campaign)
    budget.confirm(confirmed)          # in the database now
    budget.try_acquire(campaign)       # granted, its claim still running
    mark = budget.counted_mark(account)
    budget.try_acquire(campaign)       # granted while the refresh query ran
    # The database saw only the confirmed dial: 4 left by its count, 2 by the truth.
    budget.set_account_caps(account, concurrent_max=10, calls_per_minute=UNLIMITED_RATE,
                            dials_left_today=4, counted_mark=mark)
    assert [budget.try_acquire(campaign) is not None for _ in range(3)] == [True, True, False]
