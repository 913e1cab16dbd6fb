"""The global call budget: one slot per live call, within every cap at once.

A slot is granted only while the account is under ``concurrent_max``, the campaign under
its ``max_concurrent_calls``, the account's dials in the last 60 s under
``calls_per_minute`` and its dials left today (if capped) above zero. A cap of 0 blocks
(the kill-switch). Waiting campaigns of one account are served round-robin, so a big
campaign cannot starve a small one.

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


@attrs.frozen
class BudgetStatistics:
    """A point-in-time view, for metrics and tests."""

    account_live: int
    campaign_live: int
    campaign_waiting: int


@attrs.define(eq=False)
class _Waiter:
    task: trio.lowlevel.Task
    slot: Slot | None = None
    parked: bool = False


@attrs.define(eq=False)
class _Campaign:
    id: uuid.UUID
    account: _Account
    max_concurrent: int
    live: int = 0
    waiters: deque[_Waiter] = attrs.field(factory=deque)
    closing: bool = False


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

    def can_grant(self, now: float) -> bool:
        return (self.live < self.concurrent_max and not self.rate_limited(now)
                and (self.dials_left_today is None or self.dials_left_today > 0))


class Budget:
    def __init__(self) -> None:
        self._accounts: dict[uuid.UUID, _Account] = {}
        self._campaigns: dict[uuid.UUID, _Campaign] = {}
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
                      max_concurrent: int) -> None:
        """Make a campaign able to acquire slots (idempotent). Its account's caps stay 0
        (blocking) until :meth:`set_account_caps` is called."""
        account = self._accounts.setdefault(account_id, _Account(account_id))
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            campaign = _Campaign(campaign_id, account, max_concurrent)
            self._campaigns[campaign_id] = campaign
            account.rotation.append(campaign)
        campaign.max_concurrent = max_concurrent
        campaign.closing = False
        self._grant(account)

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
        else None. A campaign waiting at its own cap does not count: it could not use the
        slot, and counting it would stop every other campaign's batching."""
        campaign = self._campaigns[campaign_id]
        account = campaign.account
        if any(c is not campaign and c.waiters and c.live < c.max_concurrent
               for c in account.rotation):
            return None
        if campaign.live >= campaign.max_concurrent or not account.can_grant(trio.current_time()):
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

    def account_live(self, account_id: uuid.UUID) -> int:
        account = self._accounts.get(account_id)
        return 0 if account is None else account.live

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
        slot = Slot(account.id, campaign.id, next(self._serials), now)
        self._live.add(slot)
        campaign.live += 1
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
        """Hand slots to waiters, round-robin over the account's campaigns, while it can.

        ``notify``: wake the actor if waiters are left behind by the rate window (the
        actor itself passes False: it recomputes its deadline anyway)."""
        now = trio.current_time()
        while account.can_grant(now):
            for _ in range(len(account.rotation)):
                campaign = account.rotation[0]
                account.rotation.rotate(-1)
                if campaign.waiters and campaign.live < campaign.max_concurrent:
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

    def _forget_if_idle(self, campaign: _Campaign) -> None:
        if campaign.closing and campaign.live == 0 and not campaign.waiters:
            del self._campaigns[campaign.id]
            campaign.account.rotation.remove(campaign)
