"""Training steps per second with the CPU host as one XLA device vs split into N devices.

    python -m benchmarks.host_split [--config configs/prontoqa_cpu_cot.yaml] [--steps 60] [--devices 1 2]

Runs the real trainer (`python -m train.cot`, a fresh run directory each time) in a subprocess
per device count, with XLA_FLAGS set for that count, and times the steps from the metrics log
(from the first logged step to the last, so start-up and compilation are left out). Prints one
JSON line: seconds per step for each count and the ratio against one device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

from benchmarks.timing import logged_seconds_per_step


def time_run(config: str, devices: int, steps: int, overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        cmd = [sys.executable, "-m", "train.cot", "--config", config, "--workdir", work, "--no-progress",
               "--set", f"train.max_steps={steps}", "--set", "train.log_every=10", "--set", "train.eval_limit=4",
               *[x for o in overrides for x in ("--set", o)]]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return logged_seconds_per_step(work)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/prontoqa_cpu_cot.yaml")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    p.add_argument("--set", action="append", default=[], help="extra config overrides")
    args = p.parse_args(argv)
    per_step = {d: time_run(args.config, d, args.steps, args.set) for d in args.devices}
    base = per_step[args.devices[0]]
    print(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                      "config": args.config, "steps": args.steps, "s_per_step": per_step,
                      "speedup_vs_first": {d: base / s for d, s in per_step.items()}}))


if __name__ == "__main__":
    main()
