"""The pacer that spreads the clean-up of calls cancelled together (trio's mock clock)."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from gateway.telephony.sip.pacing import Pacer


async def _passing_times(pacer: Pacer, callers: int, start_gap: float = 0.0) -> list[float]:
    times: list[float] = []

    async def caller() -> None:
        await pacer.wait()
        times.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(callers):
            nursery.start_soon(caller)
            if start_gap:
                await trio.sleep(start_gap)
    return times


def test_a_crowd_passes_at_the_rate_after_its_burst():
    async def main() -> list[float]:
        return await _passing_times(Pacer(rate=100, burst=10), 50)

    times = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    start = min(times)
    offsets = sorted(round(t - start, 6) for t in times)
    assert offsets[:10] == [0.0] * 10                     # the burst, at once
    assert offsets[10:] == [round(0.01 * i, 6) for i in range(1, 41)]   # then 10 ms apart


def test_an_idle_pacer_lets_callers_through_at_once():
    async def main() -> list[float]:
        return await _passing_times(Pacer(rate=10, burst=1), 5, start_gap=0.5)

    times = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [0.5] * 4  # each came after the previous one's interval: no wait


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_bad_settings_are_refused(rate, burst):
    with pytest.raises(ValueError):
        Pacer(rate, burst)
