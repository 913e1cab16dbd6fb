"""A pacer: lets callers through at most ``rate`` a second on average, after a first
``burst`` at once, in the order they came.

The SIP adapter paces the clean-up of calls cancelled together (a shutdown past its grace
period, thousands of calls at the same instant): each clean-up is two BYEs, and each BYE's
200 comes back within milliseconds. Unpaced, ten thousand responses arrive faster than
one process reads them, the socket's buffer overflows, and a UAS that has answered a BYE
does not answer it again after its call is gone, so every lost 200 leaves that call's
clean-up waiting until it is given up. Paced, the same shutdown takes a few seconds longer
and loses nothing.

Time is trio's clock: tests drive it with ``trio.testing.MockClock``.
"""

from __future__ import annotations

import math

import trio


class Pacer:
    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.interval = 1.0 / rate
        self.burst = burst
        self._next = -math.inf  # when the next caller may pass, once the burst is spent

    async def wait(self) -> None:
        """Return at this caller's turn (at once while the burst lasts)."""
        now = trio.current_time()
        # An idle pacer has its burst back: at most `burst` callers pass before `now`.
        turn = max(self._next, now - (self.burst - 1) * self.interval)
        self._next = turn + self.interval
        if turn > now:
            await trio.sleep_until(turn)
