"""A markdown table of training runs from their `metrics.jsonl` (for RESULTS.md).

    python -m analysis.summarize_runs checkpoints/arith_cot checkpoints/arith_coconut ...

Columns: run, method, task, steps, wall minutes (first log line to the stop line: training,
evaluation and compilation included), the validation accuracy after each evaluation, the final
one in bold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lrm_jax.training.checkpoint import CheckpointError, read_run_files


def summarize(run_dir: str) -> str:
    cfg, _ = read_run_files(run_dir)
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    start = rows[0]["time"]
    end = max(r["time"] for r in rows)
    valid = [r for r in rows if r["split"] == "valid"]
    key = "accuracy" if cfg.method.name not in ("multimode", "codi_multimode") else "accuracy_latent"
    curve = ", ".join(f"{r[key]:.3f}" for r in valid[:-1])
    final = f"**{valid[-1][key]:.3f}**" if valid else "n/a"
    thoughts = int(valid[-1]["thoughts"]) if valid else 0
    steps = max(r["step"] for r in rows)
    return (f"| {Path(run_dir).name} | {cfg.method.name} | {cfg.data.task} | {steps} | "
            f"{(end - start) / 60:.1f} | {thoughts} | {curve}{', ' if curve else ''}{final} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    args = p.parse_args(argv)
    print("| run | method | task | steps | wall min | thoughts at eval | val accuracy per epoch |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        try:
            print(summarize(run))
        except (CheckpointError, OSError) as e:
            print(f"error: {run}: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
