"""How every benchmark here times a step: median wall time after untimed warm-up calls."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_step_seconds(run_step: Callable[[], None], steps: int, warmup: int = 2) -> float:
    """`run_step` must return only once its work is finished (block_until_ready / synchronize):
    asynchronous dispatch would otherwise time the launch, not the step."""
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        run_step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)
