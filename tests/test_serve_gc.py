"""``gateway serve`` tunes the cyclic collector for a long-running server (serve._tune_gc)."""

from __future__ import annotations

import gc

from gateway import serve


def test_tune_gc_freezes_start_up_heap_and_raises_young_threshold():
    before = gc.get_threshold()
    try:
        serve._tune_gc()
        young, older, oldest = gc.get_threshold()
        assert young == serve.GC_YOUNG_THRESHOLD > before[0]
        assert (older, oldest) == before[1:]  # only the young generation changes
        assert gc.get_freeze_count() > 10_000  # the start-up heap is out of reach
        # Objects made afterwards are still collected: a cycle is found and freed.
        cycle: list = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
