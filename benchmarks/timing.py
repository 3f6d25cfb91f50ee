"""The one timing rule of the benchmarks: the best wall time of ``repeats`` calls.

The best, not the mean, because the machine is shared: other work only ever adds time.

>>> best_seconds(lambda: None, repeats=3, warmup=1) >= 0.0
True
"""

from __future__ import annotations

import time
from collections.abc import Callable


def best_seconds(step: Callable[[], object], repeats: int, warmup: int = 0) -> float:
    """Call ``step`` ``warmup`` times untimed, then ``repeats`` times; the shortest call's seconds."""
    for _ in range(warmup):
        step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best
