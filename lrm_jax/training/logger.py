"""Metrics to JSON lines and TensorBoard (tensorboardX, no TensorFlow); process 0 only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax


class MetricsLogger:
    def __init__(self, workdir: str | Path, tensorboard: bool = True):
        self.enabled = jax.process_index() == 0
        self.path = Path(workdir) / "metrics.jsonl"
        self.tb = None
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from tensorboardX import SummaryWriter

                self.tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

    def log(self, step: int, split: str, **metrics) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), "split": split, "time": round(time.time(), 3)}
        row.update({k: (float(v) if hasattr(v, "__float__") else v) for k, v in metrics.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "split", "time") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{split}/{k}", v, int(step))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
