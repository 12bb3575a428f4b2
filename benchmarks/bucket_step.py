"""Training steps with question-width buckets against one padded width (issue #3: a faster step
buys more steps per CPU minute).

    python -m benchmarks.bucket_step [--config configs/prosqa_cpu_cot.yaml] [--records 3200] [--set KEY=VALUE ...]

Runs the trainer twice on the same generated records for two epochs: with the config's
`data.question_buckets`, and with them removed, so that every batch is padded to
`data.max_question_len`. Timed: the steps of the second epoch (every width is compiled by then;
the step after the epoch boundary, which follows a checkpoint and an evaluation, is left out).
Step time is throughput: the loop reads each step's loss after dispatching the next one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time

from lrm_jax.host_devices import malloc_summary, prepare_cpu_host

prepare_cpu_host()  # as the trainer's entry points do

import jax  # noqa: E402
import numpy as np  # noqa: E402

from lrm_jax.config import RunConfig, load  # noqa: E402
from lrm_jax.training.loop import run  # noqa: E402
from lrm_jax.training.setup import resolve  # noqa: E402


def second_epoch_seconds_per_step(cfg: RunConfig, inputs) -> tuple[float, int, int]:
    stamps = []
    with tempfile.TemporaryDirectory() as workdir:
        result = run(cfg, workdir, progress=False, inputs=inputs, on_step=lambda step: stamps.append(time.perf_counter()))
    per_epoch = result.step // cfg.train.num_epochs
    return float(np.diff(stamps[per_epoch:]).mean()), per_epoch, result.compiles


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/prosqa_cpu_cot.yaml")
    p.add_argument("--records", type=int, default=3200, help="training records generated (one epoch)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, as the trainer's --set (applied last)")
    args = p.parse_args(argv)
    cfg = load(RunConfig, args.config, [
        f"data.n_train={args.records}", "train.num_epochs=2", "train.time_limit_minutes=0", "train.eval_limit=8",
        "train.checkpoint_every_steps=100000", "train.init_from=", *args.overrides,
    ])
    if not cfg.data.question_buckets:
        raise SystemExit(f"{args.config} sets no data.question_buckets: nothing to compare")
    inputs = resolve(cfg)
    one_width = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, question_buckets=()))
    rows = {}
    for name, c in ((f"buckets {list(cfg.data.question_buckets)} + {cfg.data.max_question_len}", cfg),
                    (f"one width {cfg.data.max_question_len}", one_width)):
        sec, per_epoch, compiles = second_epoch_seconds_per_step(c, inputs)
        rows[name] = sec
        print(f"{name}: {sec:.4g} s/step ({per_epoch} steps per epoch, {compiles} compiles)", flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} {jax.default_backend()} "
          f"device(s), {malloc_summary()}, jax {jax.__version__}; {args.config}, method {cfg.method.name}, batch {cfg.train.batch_size}, "
          f"micro_batches {cfg.train.micro_batches}, {args.records} records")
    print("| padding | s/step | steps per minute |")
    print("|---|---|---|")
    for name, sec in rows.items():
        print(f"| {name} | {sec:.4g} | {60 / sec:.0f} |")
    bucketed, single = rows.values()
    print(json.dumps({"bucket_speedup": round(single / bucketed, 3)}))


if __name__ == "__main__":
    main()
