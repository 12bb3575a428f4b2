"""How every benchmark here times a step: median wall time after untimed warm-up calls."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
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


def logged_seconds_per_step(workdir: str | Path) -> float:
    """Seconds per step of a trainer run, from its first logged train step to its last (start-up
    and compilation, which come before the first log line, are left out)."""
    rows = [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    if len(train) < 2:
        raise ValueError(f"{workdir}/metrics.jsonl: fewer than two train log lines; run more steps than train.log_every")
    first, last = train[0], train[-1]
    return (last["time"] - first["time"]) / (last["step"] - first["step"])
