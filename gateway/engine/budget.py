"""The global call budget: one slot per live call, within every cap at once.

A slot is granted only while the account is under ``concurrent_max``, the campaign under
its ``max_concurrent_calls``, the campaign's agent under its ``max_concurrent_calls`` (if
capped), the account's dials in the last 60 s under ``calls_per_minute`` and its dials left
today (if capped) above zero. A cap of 0 blocks (the kill-switch). Waiting campaigns of one
account are served round-robin, so a big campaign cannot starve a small one; a campaign
whose agent is full is passed over like one at its own cap.

The agent's seat is part of the slot: it is taken when the call is dialed and given back
with the slot, so a contact who answers always finds the agent free (no call is abandoned
for want of an agent). Agents belong to accounts, so the campaigns sharing an agent are in
one account's rotation, and its grant loop is where the agent's cap is checked.

Slots follow :class:`trio.CapacityLimiter`'s rules: a slot is owned by the call it was
acquired for and released synchronously (``release`` never blocks, so it is safe in
``finally`` and in cancelled code). A waiter leaves the queue the moment it is cancelled,
so no grant is spent on it: no path leaks or double-counts a slot or a dial.

Grants happen synchronously on acquire, release and cap changes. The only thing that needs
a task is time: :meth:`Budget.run` wakes rate-limited waiters when the 60 s window moves.
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections import deque

import attrs
import trio

RATE_WINDOW_SECONDS = 60.0


@attrs.frozen
class Slot:
    account_id: uuid.UUID
    campaign_id: uuid.UUID
    serial: int
    granted_at: float = attrs.field(default=0.0, eq=False)  # its instant in the rate window
    agent_id: uuid.UUID | None = attrs.field(default=None, eq=False)  # whose seat it holds


@attrs.frozen
class BudgetStatistics:
    """A point-in-time view, for metrics and tests."""

    account_live: int
    campaign_live: int
    campaign_waiting: int


@attrs.frozen
class AccountStatistics:
    """One account's caps and what it uses of them, for /metrics: live slots, grants in
    the rate window, dials left today (None: no daily cap), campaigns waiting for a slot."""

    account_id: uuid.UUID
    live: int
    concurrent_max: int
    in_window: int
    calls_per_minute: int
    dials_left_today: int | None
    waiting_campaigns: int


@attrs.define(eq=False)
class _Waiter:
    task: trio.lowlevel.Task
    slot: Slot | None = None
    parked: bool = False


@attrs.define(eq=False)
class _Agent:
    """An agent's seats, shared by the open campaigns that use it (``campaigns`` of them:
    it is forgotten with the last)."""

    id: uuid.UUID
    account: _Account
    max_concurrent: int | None = None  # None: no cap
    live: int = 0
    campaigns: int = 0

    def full(self) -> bool:
        return self.max_concurrent is not None and self.live >= self.max_concurrent


@attrs.define(eq=False)
class _Campaign:
    id: uuid.UUID
    account: _Account
    max_concurrent: int
    agent: _Agent | None = None
    live: int = 0
    waiters: deque[_Waiter] = attrs.field(factory=deque)
    closing: bool = False

    def can_take(self) -> bool:
        """Under its own cap and its agent's: a slot granted to it now could be used."""
        return self.live < self.max_concurrent and (self.agent is None or not self.agent.full())


@attrs.define(eq=False)
class _Account:
    id: uuid.UUID
    concurrent_max: int = 0
    calls_per_minute: int = 0
    dials_left_today: int | None = None
    live: int = 0
    dials: deque[float] = attrs.field(factory=deque)   # grant times in the rate window
    rotation: deque[_Campaign] = attrs.field(factory=deque)
    # Dials granted (net of refunds) and dials confirmed as written to the database, both
    # since the process started: the difference is what a database count cannot see yet.
    granted: int = 0
    confirmed: int = 0

    def rate_limited(self, now: float) -> bool:
        # A dial leaves the window at dial + 60 exactly: the same float the actor sleeps
        # until (comparing with now - 60 instead can disagree by one ulp and spin).
        while self.dials and self.dials[0] + RATE_WINDOW_SECONDS <= now:
            self.dials.popleft()
        return len(self.dials) >= self.calls_per_minute

    def in_window(self, now: float) -> int:
        """The grants of the last 60 s (older ones leave the window, as they do here)."""
        self.rate_limited(now)
        return len(self.dials)

    def can_grant(self, now: float) -> bool:
        return (self.live < self.concurrent_max and not self.rate_limited(now)
                and (self.dials_left_today is None or self.dials_left_today > 0))


class Budget:
    def __init__(self) -> None:
        self._accounts: dict[uuid.UUID, _Account] = {}
        self._campaigns: dict[uuid.UUID, _Campaign] = {}
        self._agents: dict[uuid.UUID, _Agent] = {}
        self._live: set[Slot] = set()
        self._serials = itertools.count(1)
        self._changed = trio.Event()

    # -- configuration -------------------------------------------------------------------

    def set_account_caps(self, account_id: uuid.UUID, *, concurrent_max: int,
                         calls_per_minute: int, dials_left_today: int | None = None,
                         counted_mark: int | None = None) -> None:
        """Set (or change, at any time) an account's caps; takes effect at once.

        ``dials_left_today`` read from the database misses the dials granted but not yet
        written there: pass ``counted_mark`` (:meth:`counted_mark` taken before the read)
        and every dial granted since that was not yet confirmed when the mark was taken is
        subtracted (an over-count at worst, so the cap holds between refreshes)."""
        account = self._accounts.setdefault(account_id, _Account(account_id))
        account.concurrent_max = concurrent_max
        account.calls_per_minute = calls_per_minute
        if dials_left_today is not None and counted_mark is not None:
            dials_left_today = max(0, dials_left_today - (account.granted - counted_mark))
        account.dials_left_today = dials_left_today
        self._grant(account)

    def knows_account(self, account_id: uuid.UUID) -> bool:
        return account_id in self._accounts

    def forget_account(self, account_id: uuid.UUID) -> None:
        """Drop an account with no open campaign and no live slot (its lease went to
        another process): if it comes back, its caps and rate window are read afresh,
        with the dials the other process made meanwhile."""
        account = self._accounts.get(account_id)
        if account is not None and not account.rotation and account.live == 0:
            del self._accounts[account_id]

    def seed_dials(self, account_id: uuid.UUID, dialed_at: list[float]) -> None:
        """Start an account's rate window with dials made before this process (their
        ``trio.current_time()`` instants, past ones): after a restart the window holds what
        the previous process dialed in the last 60 s. Only for an account that has not
        been granted anything yet."""
        account = self._accounts.setdefault(account_id, _Account(account_id))
        if account.granted == 0:
            now = trio.current_time()
            account.dials = deque(sorted(t for t in dialed_at
                                         if t + RATE_WINDOW_SECONDS > now))
            self._grant(account)

    def counted_mark(self, account_id: uuid.UUID) -> int:
        """The account's dials confirmed so far (see ``set_account_caps``)."""
        account = self._accounts.get(account_id)
        return 0 if account is None else account.confirmed

    def confirm(self, slot: Slot) -> None:
        """The slot's dial is written to the database (its claim committed)."""
        self._accounts[slot.account_id].confirmed += 1

    def open_campaign(self, account_id: uuid.UUID, campaign_id: uuid.UUID,
                      max_concurrent: int, *, agent_id: uuid.UUID | None = None,
                      agent_max: int | None = None) -> None:
        """Make a campaign able to acquire slots (idempotent). Its account's caps stay 0
        (blocking) until :meth:`set_account_caps` is called.

        ``agent_id``: the campaign's agent, whose seats (``agent_max``, None: no cap; the
        value read now replaces the one the budget had) it shares with the account's other
        campaigns of that agent. None: the campaign needs no agent seat (the budget's own
        tests of the other caps). An agent belongs to one account and a campaign keeps its
        agent: ValueError otherwise."""
        account = self._accounts.setdefault(account_id, _Account(account_id))
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            campaign = _Campaign(campaign_id, account, max_concurrent,
                                 self._bind_agent(account, agent_id))
            self._campaigns[campaign_id] = campaign
            account.rotation.append(campaign)
        elif (None if campaign.agent is None else campaign.agent.id) != agent_id:
            raise ValueError(f"campaign {campaign_id} is open with another agent")
        campaign.max_concurrent = max_concurrent
        campaign.closing = False
        if campaign.agent is not None:
            campaign.agent.max_concurrent = agent_max
        self._grant(account)

    def set_agent_cap(self, agent_id: uuid.UUID, max_concurrent: int | None) -> None:
        """Change an agent's cap (None: no cap); takes effect at once: a raised cap grants
        to waiting calls now, a lowered one grants nothing until enough live calls have
        ended (none is cut). An agent no open campaign uses is ignored."""
        agent = self._agents.get(agent_id)
        if agent is not None:
            agent.max_concurrent = max_concurrent
            self._grant(agent.account)

    def close_campaign(self, campaign_id: uuid.UUID) -> None:
        """Forget a campaign once its last slot is released."""
        campaign = self._campaigns.get(campaign_id)
        if campaign is not None:
            campaign.closing = True
            self._forget_if_idle(campaign)

    # -- slots ---------------------------------------------------------------------------

    async def acquire(self, campaign_id: uuid.UUID) -> Slot:
        """Wait for a slot for one call of this campaign.

        Cancellation (as :meth:`trio.CapacityLimiter.acquire`): a cancelled waiter leaves
        the queue at the moment it is cancelled, so no grant (nor any dial of the rate
        window or of the day) is ever spent on it; once granted, the slot is returned.
        """
        campaign = self._campaigns[campaign_id]
        await trio.lowlevel.checkpoint_if_cancelled()
        waiter = _Waiter(trio.lowlevel.current_task())
        campaign.waiters.append(waiter)
        self._grant(campaign.account)
        if waiter.slot is not None:  # granted at once
            await trio.lowlevel.cancel_shielded_checkpoint()
            return waiter.slot

        def abort(_raise_cancel: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            campaign.waiters.remove(waiter)  # never granted: _grant pops before it wakes
            self._forget_if_idle(campaign)
            return trio.lowlevel.Abort.SUCCEEDED

        waiter.parked = True
        await trio.lowlevel.wait_task_rescheduled(abort)
        assert waiter.slot is not None
        return waiter.slot

    def try_acquire(self, campaign_id: uuid.UUID) -> Slot | None:
        """A slot now if one is free and no other campaign of the account waits for it,
        else None. A campaign waiting at its own cap, or on its full agent, does not count:
        it could not use the slot, and counting it would stop every other campaign's
        batching."""
        campaign = self._campaigns[campaign_id]
        account = campaign.account
        if any(c is not campaign and c.waiters and c.can_take() for c in account.rotation):
            return None
        if not campaign.can_take() or not account.can_grant(trio.current_time()):
            return None
        return self._issue(campaign, trio.current_time())

    def release(self, slot: Slot, *, dialed: bool = True) -> None:
        """Give a slot back. Synchronous; raises RuntimeError if it is not live.

        ``dialed=False``: the slot was never used for a dial (a claim came back short), so
        its grant is taken back out of the rate window and the day's count too."""
        try:
            self._live.remove(slot)
        except KeyError:
            raise RuntimeError(f"slot {slot} released twice or never granted") from None
        campaign = self._campaigns[slot.campaign_id]
        campaign.live -= 1
        if campaign.agent is not None:
            campaign.agent.live -= 1
        account = campaign.account
        account.live -= 1
        if not dialed:
            self._refund(account, slot)
        self._forget_if_idle(campaign)
        self._grant(campaign.account)

    def statistics(self, campaign_id: uuid.UUID) -> BudgetStatistics:
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            return BudgetStatistics(0, 0, 0)
        return BudgetStatistics(campaign.account.live, campaign.live, len(campaign.waiters))

    def accounts(self) -> list[AccountStatistics]:
        """Every account the budget knows, as it stands now (a scrape's view: no grant)."""
        now = trio.current_time()
        return [AccountStatistics(
                    account.id, account.live, account.concurrent_max, account.in_window(now),
                    account.calls_per_minute, account.dials_left_today,
                    sum(1 for campaign in account.rotation if campaign.waiters))
                for account in self._accounts.values()]

    def account_live(self, account_id: uuid.UUID) -> int:
        account = self._accounts.get(account_id)
        return 0 if account is None else account.live

    def agent_live(self, agent_id: uuid.UUID) -> int:
        """The agent's seats in use: live slots of every campaign that uses it."""
        agent = self._agents.get(agent_id)
        return 0 if agent is None else agent.live

    # -- the actor -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Budget] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Wake waiters held back by the rate window when it moves. Runs until cancelled."""
        task_status.started(self)
        while True:
            changed = self._changed
            with trio.move_on_at(self._next_window_move()):
                await changed.wait()
            if changed is self._changed:
                self._changed = trio.Event()
            for account in list(self._accounts.values()):
                self._grant(account, notify=False)

    # -- internals -----------------------------------------------------------------------

    def _issue(self, campaign: _Campaign, now: float) -> Slot:
        account = campaign.account
        agent = campaign.agent
        slot = Slot(account.id, campaign.id, next(self._serials), now,
                    None if agent is None else agent.id)
        self._live.add(slot)
        campaign.live += 1
        if agent is not None:
            agent.live += 1
        account.live += 1
        account.granted += 1
        account.dials.append(now)
        if account.dials_left_today is not None:
            account.dials_left_today -= 1
        return slot

    @staticmethod
    def _refund(account: _Account, slot: Slot) -> None:
        account.granted -= 1
        if account.dials_left_today is not None:
            account.dials_left_today += 1
        # The grant's instant, if it is still in the window (the newest match: grants are
        # appended in time order, so it is near the right end).
        for index in range(len(account.dials) - 1, -1, -1):
            if account.dials[index] == slot.granted_at:
                del account.dials[index]
                break
            if account.dials[index] < slot.granted_at:
                break

    def _grant(self, account: _Account, *, notify: bool = True) -> None:
        """Hand slots to waiters, round-robin over the account's campaigns, while it can;
        a campaign at its own cap or its agent's is passed over.

        ``notify``: wake the actor if waiters are left behind by the rate window (the
        actor itself passes False: it recomputes its deadline anyway)."""
        now = trio.current_time()
        while account.can_grant(now):
            for _ in range(len(account.rotation)):
                campaign = account.rotation[0]
                account.rotation.rotate(-1)
                if campaign.waiters and campaign.can_take():
                    waiter = campaign.waiters.popleft()
                    waiter.slot = self._issue(campaign, now)
                    if waiter.parked:
                        trio.lowlevel.reschedule(waiter.task)
                    break
            else:
                break
        if notify and account.rate_limited(now) and any(c.waiters for c in account.rotation):
            self._changed.set()  # the actor recomputes when the window next moves

    def _next_window_move(self) -> float:
        """When the rate window next frees a dial for an account that has waiters and is
        held back by it (an account at its concurrency cap needs no timer: a release wakes
        it)."""
        now = trio.current_time()
        moves = [account.dials[0] + RATE_WINDOW_SECONDS for account in self._accounts.values()
                 if any(c.waiters for c in account.rotation) and account.rate_limited(now)
                 and account.dials]
        return min(moves, default=math.inf)

    def _bind_agent(self, account: _Account, agent_id: uuid.UUID | None) -> _Agent | None:
        if agent_id is None:
            return None
        agent = self._agents.setdefault(agent_id, _Agent(agent_id, account))
        if agent.account is not account:
            raise ValueError(f"agent {agent_id} is another account's")
        agent.campaigns += 1
        return agent

    def _forget_if_idle(self, campaign: _Campaign) -> None:
        if campaign.closing and campaign.live == 0 and not campaign.waiters:
            del self._campaigns[campaign.id]
            campaign.account.rotation.remove(campaign)
            agent = campaign.agent
            if agent is not None:
                agent.campaigns -= 1
                if agent.campaigns == 0:  # its live calls were its campaigns': none left
                    del self._agents[agent.id]
