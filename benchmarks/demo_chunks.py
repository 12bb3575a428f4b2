"""Steps per second of the demo's training jobs with each batch's rows in one chunk vs several.

    python -m benchmarks.demo_chunks [--steps 100] [--chunks 1 4] [--jobs arithmetic/cot ...]

Runs the real trainer in this process on each job's resolved demo config (`analysis.demo`),
for `train.max_steps` steps, once per chunk count (`train.micro_batches`), and times the steps
from the run's metrics log (start-up and compilation left out). COCONUT jobs start from random
weights here: a step costs the same from any weights. CODI jobs are not chunkable (several
losses) and are skipped. Prints a Markdown table with the speed-up against the first count.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
from pathlib import Path

from analysis import demo  # splits the CPU host into XLA devices before jax is imported
from benchmarks.timing import logged_seconds_per_step
from lrm_jax.training.loop import run as train

DEFAULT_JOBS = ("arithmetic/cot", "arithmetic/coconut", "logic/cot", "logic/coconut")


def seconds_per_step(task: str, job: demo.Job, chunks: int, steps: int) -> float:
    common, _ = demo.TASKS[task]
    with tempfile.TemporaryDirectory() as work:
        extra = (f"train.max_steps={steps}", f"train.micro_batches={chunks}", "train.eval_limit=8")
        cfg = demo.job_config(Path(work), task, common, dataclasses.replace(job, init_from=""), extra=extra)
        train(cfg, Path(work) / "run", progress=False)
        return logged_seconds_per_step(Path(work) / "run")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100, help="steps per run (logged every 20)")
    p.add_argument("--chunks", type=int, nargs="+", default=[1, 4])
    p.add_argument("--jobs", nargs="+", default=list(DEFAULT_JOBS), help="TASK/JOB names of analysis/demo.py")
    args = p.parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {args.steps} steps a run")
    print("| job | " + " | ".join(f"{c} chunk(s): steps/s" for c in args.chunks) + " | speed-up |")
    print("|---|" + "---|" * (len(args.chunks) + 1))
    for name in args.jobs:
        task, job_name = name.split("/")
        jobs = {j.name: j for j in demo.TASKS[task][1]}
        if job_name not in jobs:
            raise SystemExit(f"--jobs {name}: the demo's {task} jobs are {', '.join(jobs)}")
        job = jobs[job_name]
        if job.method == "codi":
            print(f"| {name} | CODI combines several losses: not chunkable |")
            continue
        rates = [1 / seconds_per_step(task, job, c, args.steps) for c in args.chunks]
        print(f"| {name} | " + " | ".join(f"{r:.2f}" for r in rates) + f" | {rates[-1] / rates[0]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
